"""The relay's hello reader: whatever bytes arrive, a hello or a typed refusal, in bounded time."""

from __future__ import annotations

import asyncio
import socket

from hypothesis import given, settings
from hypothesis import strategies as st

from nvrshare.protocol import codec
from nvrshare.protocol.framing import encode_frame
from nvrshare.protocol.handshake import AgentHello, ClientHello
from nvrshare.protocol.reasons import RefusalReason
from nvrshare.relay.dataplane.connection import SocketConnection
from nvrshare.relay.dataplane.hello import HelloError, read_hello


def outcome(data: bytes, *, close: bool = True) -> object:
    async def main() -> object:
        relay_end, peer = socket.socketpair()
        relay_end.setblocking(False)
        try:
            peer.sendall(data)
            if close:
                peer.shutdown(socket.SHUT_WR)
            try:
                _, hello = await read_hello(SocketConnection(relay_end), within=0.2)
            except HelloError as exc:
                return exc
            return hello
        finally:
            relay_end.close()
            peer.close()

    return asyncio.run(main())


@settings(max_examples=150)
@given(st.binary(max_size=300))
def test_any_bytes_give_a_hello_or_a_typed_refusal(data: bytes) -> None:
    result = outcome(data)
    assert isinstance(result, ClientHello | AgentHello | HelloError)
    if isinstance(result, HelloError):
        assert result.reason in {RefusalReason.BAD_REQUEST, RefusalReason.TIMEOUT}


@settings(max_examples=50)
@given(st.binary(min_size=1, max_size=40))
def test_bytes_behind_a_hello_are_kept_for_the_stream(extra: bytes) -> None:
    hello = AgentHello(session_id=b"s" * 16, proof=b"p" * 32)

    async def main() -> bytes:
        relay_end, peer = socket.socketpair()
        relay_end.setblocking(False)
        try:
            peer.sendall(encode_frame(codec.encode(hello)) + extra)
            # Generous: these bound success only (a loaded machine may stall a while).
            channel, received = await read_hello(SocketConnection(relay_end), within=10.0)
            assert received == hello
            async with asyncio.timeout(10.0):
                return await channel.accept(b"s" * 16)
        finally:
            relay_end.close()
            peer.close()

    assert asyncio.run(main()) == extra


def test_silence_times_out() -> None:
    result = outcome(b"", close=False)
    assert isinstance(result, HelloError)
    assert result.reason is RefusalReason.TIMEOUT
    assert result.answer


def test_hangup_is_not_answered() -> None:
    result = outcome(b"")
    assert isinstance(result, HelloError)
    assert not result.answer


def test_oversized_prelude_is_refused() -> None:
    result = outcome(b"\x3f\xff" + b"x" * 20000)
    assert isinstance(result, HelloError)
    assert result.reason is RefusalReason.BAD_REQUEST
