"""The data port end to end over loopback: handshake, pairing, refusals, revocation."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable

import pytest

from nvrshare.protocol import codec
from nvrshare.protocol.framing import NEED_DATA, HandshakeConnection, encode_frame
from nvrshare.protocol.handshake import (
    AgentHello,
    ClientHello,
    HelloAccepted,
    HelloRefused,
    agent_proof,
)
from nvrshare.protocol.handshake_state import Role
from nvrshare.protocol.messages import SessionKind, SessionRequest
from nvrshare.protocol.permissions import Permission, TimeWindow
from nvrshare.protocol.reasons import RefusalReason
from nvrshare.protocol.signing import SigningKey
from nvrshare.protocol.tokens import Audience, TokenIssuer
from nvrshare.relay.dataplane.relaying import CloseReason
from tests.relay.dataplane.conftest import (
    OTHER_SERIAL,
    SERIAL,
    FakeControlPlane,
    Harness,
    echo,
    handshake,
    open_socket,
    plane_config_with,
)

# Bounds what happens at once on a quiet machine: generous, it costs nothing when all is well.
DEADLINE = 10.0

# For the tests whose point is that a timeout fires: short, yet long enough to be a real wait.
agent_times_out_quickly = pytest.mark.parametrize(
    "plane_config", [plane_config_with(agent_timeout=0.5)], ids=["agent-timeout-0.5s"]
)
hello_times_out_quickly = pytest.mark.parametrize(
    "plane_config", [plane_config_with(hello_timeout=0.5)], ids=["hello-timeout-0.5s"]
)


async def read_to_eof(sock: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    chunks = []
    try:
        while chunk := await loop.sock_recv(sock, 1 << 20):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def refusal(answer: object) -> RefusalReason:
    assert isinstance(answer, HelloRefused), answer
    return answer.reason


async def until(predicate: Callable[[], object], within: float = DEADLINE) -> None:
    """Poll a condition the code under test exposes no event for."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


# -- the happy path -----------------------------------------------------------


async def test_paired_session_relays_bytes_both_ways(harness: Harness) -> None:
    token = harness.token()
    sock, answer = await harness.connect(token)
    assert isinstance(answer, HelloAccepted)
    [offer] = harness.agent.offers
    assert offer.session_id == answer.session_id
    assert offer.relay_port == harness.plane.port
    assert offer.request.channel == 1
    assert offer.token == token  # the agent checks the same token itself
    assert len(offer.session_secret) == 32
    loop = asyncio.get_running_loop()
    payload = os.urandom(3 * 1024 * 1024)
    sender = asyncio.create_task(loop.sock_sendall(sock, payload))
    received = bytearray()
    while len(received) < len(payload):
        received += await loop.sock_recv(sock, 1 << 20)
    await sender
    assert received == payload
    assert len(harness.plane.live_sessions) == 1
    text = harness.plane.metrics.render()
    assert "nvrshare_relay_sessions_open 1" in text
    assert "nvrshare_relay_session_setup_seconds_count 1" in text
    sock.shutdown(socket.SHUT_WR)
    assert await read_to_eof(sock) == b""
    await until(lambda: not harness.plane.live_sessions)
    text = harness.plane.metrics.render()
    assert "nvrshare_relay_sessions_open 0" in text
    assert f'nvrshare_relay_bytes_relayed_total{{direction="up"}} {len(payload)}' in text
    assert f'nvrshare_relay_bytes_relayed_total{{direction="down"}} {len(payload)}' in text
    assert 'nvrshare_relay_sessions_closed_total{reason="eof"} 1' in text


async def test_playback_inside_the_window_is_accepted(harness: Harness) -> None:
    now = int(harness.now[0])
    token = harness.token(playback_window=TimeWindow(start=now - 86400, end=now))
    request = SessionRequest(
        device_serial=SERIAL,
        channel=1,
        kind=SessionKind.PLAYBACK,
        playback_window=TimeWindow(start=now - 3600, end=now - 1800),
    )
    _, answer = await harness.connect(token, request)
    assert isinstance(answer, HelloAccepted)


# -- refusals -------------------------------------------------------------------


async def test_unshared_channel_is_refused(harness: Harness) -> None:
    request = SessionRequest(device_serial=SERIAL, channel=3, kind=SessionKind.LIVE_MAIN)
    _, answer = await harness.connect(request=request)
    assert refusal(answer) is RefusalReason.CHANNEL_NOT_GRANTED
    assert harness.agent.offers == []


async def test_missing_permission_is_refused(harness: Harness) -> None:
    request = SessionRequest(device_serial=SERIAL, channel=2, kind=SessionKind.LIVE_SUB)
    _, answer = await harness.connect(request=request)
    assert refusal(answer) is RefusalReason.PERMISSION_DENIED
    talk = SessionRequest(device_serial=SERIAL, channel=1, kind=SessionKind.TALK)
    _, answer = await harness.connect(request=talk)
    assert refusal(answer) is RefusalReason.PERMISSION_DENIED


async def test_playback_outside_the_window_is_refused(harness: Harness) -> None:
    now = int(harness.now[0])
    token = harness.token(playback_window=TimeWindow(start=now - 3600, end=now))
    request = SessionRequest(
        device_serial=SERIAL,
        channel=1,
        kind=SessionKind.PLAYBACK,
        playback_window=TimeWindow(start=now - 7200, end=now - 1800),
    )
    _, answer = await harness.connect(token, request)
    assert refusal(answer) is RefusalReason.OUTSIDE_PLAYBACK_WINDOW


async def test_expired_token_is_refused(harness: Harness) -> None:
    token = harness.token()
    harness.now[0] += 7200
    _, answer = await harness.connect(token)
    assert refusal(answer) is RefusalReason.TOKEN_EXPIRED


async def test_forged_tokens_are_refused(harness: Harness) -> None:
    stranger = TokenIssuer(SigningKey.generate(), "test-relay")
    forged = stranger.issue(
        account_id="viewer@example.com",
        device_serial=SERIAL,
        channels={1: Permission.LIVE_VIEW},
        not_before=int(harness.now[0]) - 60,
        expires_at=int(harness.now[0]) + 3600,
        share_epoch=3,
    )
    _, answer = await harness.connect(forged)
    assert refusal(answer) is RefusalReason.TOKEN_INVALID
    genuine = bytearray(harness.token())
    genuine[-1] ^= 0x01  # a flipped bit in the signature
    _, answer = await harness.connect(bytes(genuine))
    assert refusal(answer) is RefusalReason.TOKEN_INVALID
    agent_only = harness.token(audience=frozenset({Audience.AGENT}))
    _, answer = await harness.connect(agent_only)
    assert refusal(answer) is RefusalReason.TOKEN_INVALID
    _, answer = await harness.connect(b"\x93\x01not a token")
    assert refusal(answer) is RefusalReason.TOKEN_INVALID


async def test_token_for_another_device_is_refused(harness: Harness) -> None:
    request = SessionRequest(device_serial=OTHER_SERIAL, channel=1, kind=SessionKind.LIVE_MAIN)
    _, answer = await harness.connect(request=request)
    assert refusal(answer) is RefusalReason.WRONG_DEVICE


async def test_stale_share_epoch_is_refused(harness: Harness) -> None:
    token = harness.token()
    harness.control.epochs[SERIAL] = 4  # the owner stopped a share since
    _, answer = await harness.connect(token)
    assert refusal(answer) is RefusalReason.REVOKED
    del harness.control.epochs[SERIAL]  # the device is gone altogether
    _, answer = await harness.connect(token)
    assert refusal(answer) is RefusalReason.REVOKED


async def test_revoked_token_id_is_refused(harness: Harness) -> None:
    token_id = b"r" * 16
    harness.control.revoked.add(token_id)
    _, answer = await harness.connect(harness.token(token_id=token_id))
    assert refusal(answer) is RefusalReason.REVOKED


async def test_offline_device_is_refused(harness: Harness) -> None:
    harness.control.online.clear()
    _, answer = await harness.connect()
    assert refusal(answer) is RefusalReason.DEVICE_OFFLINE


async def test_undeliverable_offer_reads_as_offline(harness: Harness) -> None:
    harness.agent.fail_publish = True
    _, answer = await harness.connect()
    assert refusal(answer) is RefusalReason.DEVICE_OFFLINE


@agent_times_out_quickly
async def test_device_that_never_dials_in_times_out(harness: Harness) -> None:
    harness.agent.behaviour = None
    _, answer = await harness.connect()
    assert refusal(answer) is RefusalReason.TIMEOUT
    assert len(harness.plane._pairing) == 0


async def test_session_limits(harness: Harness) -> None:
    for _ in range(3):  # per_channel = 3
        _, answer = await harness.connect()
        assert isinstance(answer, HelloAccepted)
    _, answer = await harness.connect()
    assert refusal(answer) is RefusalReason.DEVICE_BUSY
    # Another channel still has room, until the account's limit (4).
    alarm = SessionRequest(device_serial=SERIAL, channel=2, kind=SessionKind.ALARM)
    _, answer = await harness.connect(request=alarm)
    assert isinstance(answer, HelloAccepted)
    _, answer = await harness.connect(request=alarm)
    assert refusal(answer) is RefusalReason.DEVICE_BUSY
    assert harness.plane.refusal_count(RefusalReason.DEVICE_BUSY) == 2


async def test_one_talk_session_per_channel(harness: Harness) -> None:
    token = harness.token(channels={1: Permission.TWO_WAY_AUDIO})
    talk = SessionRequest(device_serial=SERIAL, channel=1, kind=SessionKind.TALK)
    _, first = await harness.connect(token, talk)
    assert isinstance(first, HelloAccepted)
    _, second = await harness.connect(token, talk)
    assert refusal(second) is RefusalReason.DEVICE_BUSY


async def test_slots_are_released_when_sessions_end(harness: Harness) -> None:
    for _ in range(6):
        sock, answer = await harness.connect()
        assert isinstance(answer, HelloAccepted)
        sock.shutdown(socket.SHUT_WR)
        assert await read_to_eof(sock) == b""
        await until(lambda: not harness.plane.live_sessions)


@hello_times_out_quickly
async def test_hello_timeout_is_refused(harness: Harness) -> None:
    sock = await open_socket(harness.plane.port)
    harness.sockets.append(sock)
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, b"\x00")  # half a length prefix, then nothing
    async with asyncio.timeout(DEADLINE):
        answer = await read_to_eof(sock)
    assert b"timeout" in answer
    assert harness.plane.refusal_count(RefusalReason.TIMEOUT) == 1


@pytest.mark.parametrize(
    "garbage",
    [b"\x00\x00", b"\xff\xff" + b"x" * 10, b"\x00\x05hello", b"GET / HTTP/1.1\r\n\r\n"],
)
async def test_garbage_hello_is_refused(harness: Harness, garbage: bytes) -> None:
    sock = await open_socket(harness.plane.port)
    harness.sockets.append(sock)
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, garbage)
    async with asyncio.timeout(DEADLINE):
        answer = await read_to_eof(sock)
    assert b"bad_request" in answer


async def test_server_message_is_not_a_hello(harness: Harness) -> None:
    sock = await open_socket(harness.plane.port)
    harness.sockets.append(sock)
    # A relay's answer sent to the relay: well-framed, but not a hello.
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, encode_frame(codec.encode(HelloAccepted(session_id=b"s" * 16))))
    async with asyncio.timeout(DEADLINE):
        answer = await read_to_eof(sock)
    assert b"bad_request" in answer


async def test_replayed_and_forged_agent_proofs_are_refused(harness: Harness) -> None:
    _, answer = await harness.connect()
    assert isinstance(answer, HelloAccepted)
    [offer] = harness.agent.offers
    proof = agent_proof(offer.session_secret, offer.session_id)
    replay = await open_socket(harness.plane.port)
    harness.sockets.append(replay)
    answer, _ = await handshake(
        replay, Role.AGENT, AgentHello(session_id=offer.session_id, proof=proof)
    )
    assert refusal(answer) is RefusalReason.REPLAYED
    unknown = await open_socket(harness.plane.port)
    harness.sockets.append(unknown)
    answer, _ = await handshake(
        unknown, Role.AGENT, AgentHello(session_id=os.urandom(16), proof=proof)
    )
    assert refusal(answer) is RefusalReason.TOKEN_INVALID


async def test_wrong_proof_does_not_cancel_the_pending_session(harness: Harness) -> None:
    harness.agent.behaviour = None
    client = asyncio.create_task(harness.connect())
    await until(lambda: harness.agent.offers)
    [offer] = harness.agent.offers
    impostor = await open_socket(harness.plane.port)
    harness.sockets.append(impostor)
    answer, _ = await handshake(
        impostor, Role.AGENT, AgentHello(session_id=offer.session_id, proof=b"\x00" * 32)
    )
    assert refusal(answer) is RefusalReason.TOKEN_INVALID
    genuine = await open_socket(harness.plane.port)
    harness.sockets.append(genuine)
    proof = agent_proof(offer.session_secret, offer.session_id)
    answer, _ = await handshake(
        genuine, Role.AGENT, AgentHello(session_id=offer.session_id, proof=proof)
    )
    assert isinstance(answer, HelloAccepted)
    _, client_answer = await client
    assert isinstance(client_answer, HelloAccepted)


# -- revocation and expiry ------------------------------------------------------------


async def test_revocation_cuts_live_sessions_within_a_second(harness: Harness) -> None:
    mine, answer = await harness.connect()
    assert isinstance(answer, HelloAccepted)
    other_token = harness.token(account_id="someone-else")
    theirs, answer = await harness.connect(other_token)
    assert isinstance(answer, HelloAccepted)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert harness.plane.revoke(SERIAL, account_id="viewer@example.com") == 1
    assert await asyncio.wait_for(read_to_eof(mine), DEADLINE) == b""
    elapsed = loop.time() - started
    print(f"revocation reached the live session in {elapsed * 1000:.1f} ms")
    assert elapsed < 1.0  # the issue's bar; DEADLINE only lets a miss report its figure
    # The other account's session is untouched.
    await loop.sock_sendall(theirs, b"still here")
    assert await loop.sock_recv(theirs, 100) == b"still here"
    text = harness.plane.metrics.render()
    assert 'nvrshare_relay_sessions_closed_total{reason="revoked"} 1' in text


async def test_revocation_by_token_id_and_whole_device(harness: Harness) -> None:
    first, _ = await harness.connect(harness.token(token_id=b"a" * 16))
    second, _ = await harness.connect(harness.token(token_id=b"b" * 16))
    assert harness.plane.revoke(SERIAL, token_ids=[b"a" * 16]) == 1
    assert await asyncio.wait_for(read_to_eof(first), DEADLINE) == b""
    assert harness.plane.revoke(OTHER_SERIAL) == 0
    assert harness.plane.revoke(SERIAL) == 1
    assert await asyncio.wait_for(read_to_eof(second), DEADLINE) == b""


async def test_revocation_reaches_pending_sessions(harness: Harness) -> None:
    harness.agent.behaviour = None
    client = asyncio.create_task(harness.connect())
    await until(lambda: harness.agent.offers)
    assert harness.plane.revoke(SERIAL) == 1
    _, answer = await asyncio.wait_for(client, DEADLINE)
    assert refusal(answer) is RefusalReason.REVOKED


async def test_the_device_can_refuse_its_pending_session_with_its_reason(
    harness: Harness,
) -> None:
    harness.agent.behaviour = None
    client = asyncio.create_task(harness.connect())
    await until(lambda: harness.agent.offers)
    session_id = harness.agent.offers[0].session_id
    reason = RefusalReason.CHANNEL_NOT_GRANTED
    # Another device cannot refuse it, nor can anyone refuse a session that is not waiting.
    assert not harness.plane.refuse_pending(OTHER_SERIAL, session_id, reason)
    assert not harness.plane.refuse_pending(SERIAL, bytes(len(session_id)), reason)
    assert not client.done()
    assert harness.plane.refuse_pending(SERIAL, session_id, reason)
    _, answer = await asyncio.wait_for(client, DEADLINE)
    assert refusal(answer) is reason
    assert len(harness.plane._pairing) == 0
    assert not harness.plane.refuse_pending(SERIAL, session_id, reason)  # gone once answered


@pytest.mark.parametrize(
    "plane_config",
    [plane_config_with(close_at_token_expiry=True), plane_config_with(max_session_seconds=1.0)],
    ids=["token-expiry", "max-duration"],
)
async def test_session_lifetime_is_bounded(harness: Harness) -> None:
    token = harness.token(expires_at=int(harness.now[0]) + 1)
    sock, answer = await harness.connect(token)
    assert isinstance(answer, HelloAccepted)
    assert await asyncio.wait_for(read_to_eof(sock), DEADLINE) == b""
    await until(lambda: not harness.plane.live_sessions)
    assert 'reason="expired"' in harness.plane.metrics.render()


async def test_sessions_outlive_their_token_by_default(harness: Harness) -> None:
    token = harness.token(expires_at=int(harness.now[0]) + 1)
    sock, answer = await harness.connect(token)
    assert isinstance(answer, HelloAccepted)
    await asyncio.sleep(1.5)
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, b"still live")
    assert await loop.sock_recv(sock, 100) == b"still live"


async def test_shutdown_closes_everything(harness: Harness) -> None:
    sock, answer = await harness.connect()
    assert isinstance(answer, HelloAccepted)
    live = harness.plane.live_sessions[0]
    await harness.plane.__aexit__(None, None, None)
    assert live.relay.reason is CloseReason.SHUTDOWN
    assert await asyncio.wait_for(read_to_eof(sock), DEADLINE) == b""


# -- races and overload ---------------------------------------------------------------


@agent_times_out_quickly
async def test_agent_arriving_after_the_client_gave_up_is_refused(harness: Harness) -> None:
    harness.agent.behaviour = None
    _, answer = await harness.connect()
    assert refusal(answer) is RefusalReason.TIMEOUT
    [offer] = harness.agent.offers
    late = await open_socket(harness.plane.port)
    harness.sockets.append(late)
    proof = agent_proof(offer.session_secret, offer.session_id)
    answer, _ = await handshake(
        late, Role.AGENT, AgentHello(session_id=offer.session_id, proof=proof)
    )
    assert refusal(answer) is RefusalReason.REPLAYED


async def test_sessions_whose_client_left_free_their_slots(harness: Harness) -> None:
    dialled = asyncio.Event()
    release = asyncio.Event()

    async def slow_agent(sock: socket.socket, offer: object) -> None:
        del sock, offer
        dialled.set()
        await release.wait()

    harness.agent.behaviour = slow_agent
    for _ in range(3):  # per_channel = 3: fill the channel, then leave
        sock, answer = await harness.connect()
        assert isinstance(answer, HelloAccepted)
        sock.close()
    release.set()
    await until(lambda: not harness.plane.live_sessions)
    harness.agent.behaviour = echo
    _, answer = await harness.connect()
    assert isinstance(answer, HelloAccepted)  # admitted: the channel's slots were freed


# The idle connections must still be in their hello phase when the extra one comes.
@pytest.mark.parametrize("plane_config", [plane_config_with(max_handshakes=2, hello_timeout=30)])
async def test_handshake_overload_is_shed(harness: Harness) -> None:
    idle = [await open_socket(harness.plane.port) for _ in range(2)]
    harness.sockets.extend(idle)
    await until(lambda: harness.plane._handshakes == 2)
    extra = await open_socket(harness.plane.port)
    harness.sockets.append(extra)
    assert await asyncio.wait_for(read_to_eof(extra), DEADLINE) == b""
    assert 'reason="overload"' in harness.plane.metrics.render()


async def test_control_plane_failure_is_an_internal_refusal(harness: Harness) -> None:
    async def broken(device_serial: str) -> int | None:
        raise ConnectionError(f"database down while asking about {device_serial}")

    harness.control.share_epoch = broken  # type: ignore[method-assign]
    _, answer = await harness.connect()
    assert refusal(answer) is RefusalReason.INTERNAL
    # The data port itself keeps serving.
    harness.control.share_epoch = FakeControlPlane.share_epoch.__get__(harness.control)  # type: ignore[method-assign]
    _, answer = await harness.connect()
    assert isinstance(answer, HelloAccepted)


async def test_revocation_during_admission_is_not_missed(harness: Harness) -> None:
    checking = asyncio.Event()
    proceed = asyncio.Event()

    async def slow_presence(device_serial: str) -> bool:
        checking.set()
        await proceed.wait()
        return device_serial in harness.control.online

    harness.control.is_online = slow_presence  # type: ignore[method-assign]
    client = asyncio.create_task(harness.connect())
    await checking.wait()
    assert harness.plane.revoke(SERIAL) == 0  # nothing indexed yet...
    proceed.set()
    _, answer = await client
    assert refusal(answer) is RefusalReason.REVOKED  # ...yet the session was stopped
    assert harness.agent.offers == []
    # A revocation older than the admission does not affect a new session.
    _, answer = await harness.connect()
    assert isinstance(answer, HelloAccepted)


async def test_live_sessions_do_not_count_as_handshakes(harness: Harness) -> None:
    for _ in range(2):
        _, answer = await harness.connect()
        assert isinstance(answer, HelloAccepted)
    await until(lambda: harness.plane._handshakes == 0)
    assert len(harness.plane.live_sessions) == 2


async def test_bytes_pipelined_behind_the_hello_reach_the_device(harness: Harness) -> None:
    sock = await open_socket(harness.plane.port)
    harness.sockets.append(sock)
    connection = HandshakeConnection(Role.CLIENT)
    hello = ClientHello(
        token=harness.token(),
        request=SessionRequest(device_serial=SERIAL, channel=1, kind=SessionKind.LIVE_MAIN),
        client_nonce=b"n" * 16,
    )
    loop = asyncio.get_running_loop()
    # The hello and the first stream bytes in one write: nothing may be lost.
    await loop.sock_sendall(sock, connection.send(hello) + b"OPTIONS rtsp://x RTSP/1.0\r\n\r\n")
    async with asyncio.timeout(DEADLINE):
        while True:
            connection.receive_data(await loop.sock_recv(sock, 4096))
            event = connection.next_event()
            if event is not NEED_DATA:
                break
    early, _ = connection.switch_to_raw()
    received = early
    async with asyncio.timeout(DEADLINE):
        while len(received) < 29:
            received += await loop.sock_recv(sock, 4096)
    assert received == b"OPTIONS rtsp://x RTSP/1.0\r\n\r\n"  # echoed by the fake agent
