"""The byte movers, both engines, over real loopback TCP connections."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import struct
from collections.abc import AsyncIterator

import pytest

from nvrshare.relay.dataplane.relaying import CloseReason, RelayConfig, RelaySession
from nvrshare.relay.dataplane.splice import HAVE_SPLICE, PipePool, start_relay

ENGINES = [
    pytest.param(
        "splice", marks=pytest.mark.skipif(not HAVE_SPLICE, reason="needs Linux os.splice")
    ),
    "protocol",
]

# Bounds what happens at once on a quiet machine: generous, it costs nothing when all is well.
DEADLINE = 10.0


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """(peer, relay-side) ends of one loopback TCP connection, both non-blocking."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        peer = socket.create_connection(listener.getsockname())
        inner, _ = listener.accept()
    peer.setblocking(False)
    inner.setblocking(False)
    return peer, inner


class Rig:
    """An app client and an agent joined through a relayed session."""

    def __init__(self) -> None:
        self.client, self.client_inner = tcp_pair()
        self.agent, self.agent_inner = tcp_pair()
        self.session: RelaySession | None = None

    async def start(self, engine: str, config: RelayConfig, **kwargs: object) -> RelaySession:
        self.session = await start_relay(
            self.client_inner, self.agent_inner, config, engine=engine, **kwargs
        )
        return self.session

    async def close(self) -> None:
        if self.session is not None:
            self.session.close(CloseReason.SHUTDOWN)
            await asyncio.sleep(0.01)  # transports close their sockets on the next loop turns
        for sock in (self.client, self.agent, self.client_inner, self.agent_inner):
            sock.close()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    rig = Rig()
    try:
        yield rig
    finally:
        await rig.close()


async def send_all(sock: socket.socket, payload: bytes, *, eof: bool = True) -> None:
    loop = asyncio.get_running_loop()
    view = memoryview(payload)
    for offset in range(0, len(view), 256 * 1024):
        await loop.sock_sendall(sock, view[offset : offset + 256 * 1024])
    if eof:
        sock.shutdown(socket.SHUT_WR)


async def read_to_eof(sock: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    chunks = []
    while chunk := await loop.sock_recv(sock, 1024 * 1024):
        chunks.append(chunk)
    return b"".join(chunks)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("engine", ENGINES)
async def test_large_random_payloads_both_ways_arrive_intact(rig: Rig, engine: str) -> None:
    up, down = os.urandom(24 * 1024 * 1024 + 17), os.urandom(24 * 1024 * 1024 + 5)
    session = await rig.start(engine, RelayConfig(idle_timeout=30))
    results = await asyncio.gather(
        send_all(rig.client, up),
        send_all(rig.agent, down),
        read_to_eof(rig.agent),
        read_to_eof(rig.client),
    )
    assert digest(results[2]) == digest(up)
    assert digest(results[3]) == digest(down)
    assert await asyncio.wait_for(session.wait_closed(), DEADLINE) is CloseReason.EOF
    assert (session.bytes_up, session.bytes_down) == (len(up), len(down))


@pytest.mark.parametrize("engine", ENGINES)
async def test_bytes_read_past_the_handshake_go_first(rig: Rig, engine: str) -> None:
    await rig.start(engine, RelayConfig(), to_agent=b"early-up|", to_client=b"early-down|")
    loop = asyncio.get_running_loop()
    await send_all(rig.client, b"rest-up")
    await send_all(rig.agent, b"rest-down")
    assert await read_to_eof(rig.agent) == b"early-up|rest-up"
    assert await read_to_eof(rig.client) == b"early-down|rest-down"
    del loop


@pytest.mark.parametrize("engine", ENGINES)
async def test_slow_reader_holds_back_the_writer(rig: Rig, engine: str) -> None:
    # Small kernel buffers everywhere so that what the relay holds dominates.
    for sock in (rig.client, rig.client_inner, rig.agent, rig.agent_inner):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    config = RelayConfig(pipe_size=64 * 1024, high_water=64 * 1024, buffer_size=64 * 1024)
    session = await rig.start(engine, config)
    payload = os.urandom(32 * 1024 * 1024)
    writer = asyncio.create_task(send_all(rig.client, payload))
    await asyncio.sleep(0.5)  # the agent reads nothing meanwhile
    held = session.bytes_up
    assert not writer.done()
    # Kernel buffers on both hops plus one pipe / one high-water mark: well under 2 MiB.
    assert held < 2 * 1024 * 1024, held
    received = await read_to_eof(rig.agent)
    await writer
    assert digest(received) == digest(payload)


@pytest.mark.parametrize("engine", ENGINES)
async def test_half_close_keeps_the_other_direction_open(rig: Rig, engine: str) -> None:
    session = await rig.start(engine, RelayConfig())
    loop = asyncio.get_running_loop()
    await send_all(rig.client, b"request", eof=True)
    assert await read_to_eof(rig.agent) == b"request"  # the agent saw the client's EOF
    assert not session.closed
    await loop.sock_sendall(rig.agent, b"still streaming")
    assert await loop.sock_recv(rig.client, 100) == b"still streaming"
    rig.agent.shutdown(socket.SHUT_WR)
    assert await read_to_eof(rig.client) == b""
    assert await asyncio.wait_for(session.wait_closed(), DEADLINE) is CloseReason.EOF


@pytest.mark.parametrize("engine", ENGINES)
async def test_idle_session_is_closed(rig: Rig, engine: str) -> None:
    loop = asyncio.get_running_loop()
    # Sent before the session starts, so a slow test cannot let it go idle before the byte.
    await loop.sock_sendall(rig.client, b"x")
    session = await rig.start(engine, RelayConfig(idle_timeout=1.0))
    assert await loop.sock_recv(rig.agent, 10) == b"x"
    assert await asyncio.wait_for(session.wait_closed(), DEADLINE) is CloseReason.IDLE
    assert await read_to_eof(rig.agent) == b""
    assert await read_to_eof(rig.client) == b""


@pytest.mark.parametrize("engine", ENGINES)
async def test_traffic_keeps_a_session_alive(rig: Rig, engine: str) -> None:
    session = await rig.start(engine, RelayConfig(idle_timeout=2.0))
    loop = asyncio.get_running_loop()
    for _ in range(25):  # 2.5 s of traffic, longer than the idle timeout
        await loop.sock_sendall(rig.agent, b"frame")
        assert await loop.sock_recv(rig.client, 10) == b"frame"
        await asyncio.sleep(0.1)
    assert not session.closed


@pytest.mark.parametrize("engine", ENGINES)
async def test_close_from_outside_cuts_both_peers_at_once(rig: Rig, engine: str) -> None:
    session = await rig.start(engine, RelayConfig())
    streaming = asyncio.create_task(send_all(rig.agent, bytes(64 * 1024 * 1024)))
    await asyncio.sleep(0.05)
    session.close(CloseReason.REVOKED)
    session.close(CloseReason.SHUTDOWN)  # later calls change nothing
    assert await session.wait_closed() is CloseReason.REVOKED

    async def drained(sock: socket.socket) -> None:
        with contextlib.suppress(ConnectionResetError):
            await read_to_eof(sock)

    await asyncio.wait_for(asyncio.gather(drained(rig.client), drained(rig.agent)), DEADLINE)
    with pytest.raises((ConnectionResetError, BrokenPipeError)):  # not TimeoutError
        await asyncio.wait_for(streaming, DEADLINE)


@pytest.mark.parametrize("engine", ENGINES)
async def test_peer_reset_ends_the_session(rig: Rig, engine: str) -> None:
    session = await rig.start(engine, RelayConfig())
    rig.agent.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    rig.agent.close()  # RST
    await send_all(rig.client, b"x" * 200_000, eof=False)
    reason = await asyncio.wait_for(session.wait_closed(), DEADLINE)
    assert reason in {CloseReason.RESET, CloseReason.EOF}


@pytest.mark.skipif(not HAVE_SPLICE, reason="needs Linux os.splice")
async def test_sessions_share_a_few_pipes() -> None:
    pool = PipePool(64 * 1024, max_free=8)
    rigs = [Rig() for _ in range(20)]
    try:
        sessions = [await rig.start("splice", RelayConfig(), pool=pool) for rig in rigs]
        loop = asyncio.get_running_loop()
        for rig in rigs:
            await loop.sock_sendall(rig.client, b"ping")
            assert await loop.sock_recv(rig.agent, 10) == b"ping"
        # Each chunk borrowed a pipe only while it was in flight.
        assert pool.created <= 2
        for session in sessions:
            session.close(CloseReason.SHUTDOWN)
    finally:
        for rig in rigs:
            await rig.close()
        pool.close()


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        RelayConfig(idle_timeout=0)
    with pytest.raises(ValueError):
        RelayConfig(pipe_size=10)


async def test_unknown_engine_is_refused(rig: Rig) -> None:
    with pytest.raises(ValueError):
        await rig.start("carrier-pigeon", RelayConfig())
