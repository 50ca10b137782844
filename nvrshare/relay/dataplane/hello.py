"""The relay side of the data-plane handshake over an accepted connection.

A thin adapter around the sans-IO `HandshakeConnection` (role RELAY): read
until one hello frame has arrived (bounded in time and, by the framing
config, in bytes), answer with one frame, then hand over whatever bytes came
in behind the hello so that not one stream byte is lost.  On plain TCP the
connection is the raw socket rather than an asyncio stream, because the
splice engine needs the socket itself with nothing buffered in user space.
"""

from __future__ import annotations

import asyncio

from nvrshare.protocol import codec
from nvrshare.protocol.errors import ProtocolError
from nvrshare.protocol.framing import (
    NEED_DATA,
    ConnectionClosed,
    FrameReceived,
    HandshakeConnection,
    encode_frame,
)
from nvrshare.protocol.handshake import AgentHello, ClientHello, HelloAccepted, HelloRefused
from nvrshare.protocol.handshake_state import HandshakeState, Role
from nvrshare.protocol.reasons import RefusalReason
from nvrshare.relay.dataplane.connection import Connection
from nvrshare.relay.errors import RelayError

__all__ = ["HelloChannel", "HelloError", "read_hello"]

RECV_SIZE = 4096


class HelloChannel:
    """A connection whose hello has been read; answer it once, then take the early bytes."""

    def __init__(self, connection: Connection, handshake: HandshakeConnection) -> None:
        self.connection = connection
        self._connection = handshake

    async def accept(self, session_id: bytes) -> bytes:
        """Send `HelloAccepted`; returns the stream bytes already read behind the hello."""
        await self.connection.sendall(self._connection.send(HelloAccepted(session_id=session_id)))
        early, _eof = self._connection.switch_to_raw()
        # An EOF seen here is seen again by the byte mover: a socket's EOF is sticky.
        return early

    async def refuse(self, reason: RefusalReason, message: str = "") -> None:
        """Send `HelloRefused` (best effort: the peer may be gone already)."""
        refusal = HelloRefused(reason=reason, message=message[:256])
        if self._connection.state in {HandshakeState.AWAIT_DECISION, HandshakeState.ERROR}:
            wire = self._connection.send(refusal)
        else:
            # No complete hello (timeout, EOF): the state machine has no answer to
            # give, but the peer still deserves to learn why it is being closed.
            wire = encode_frame(codec.encode(refusal))
        await self.connection.sendall(wire)


class HelloError(RelayError):
    """The peer did not send a usable hello; `reason` is what to tell it.

    `channel` answers it; `answer` is False when the peer is gone and nobody
    would read a refusal.
    """

    code = "bad_hello"
    status = 400

    def __init__(
        self, reason: RefusalReason, message: str, channel: HelloChannel, *, answer: bool = True
    ) -> None:
        super().__init__(message, code=reason.value)
        self.reason = reason
        self.channel = channel
        self.answer = answer


async def read_hello(
    connection: Connection, *, within: float
) -> tuple[HelloChannel, ClientHello | AgentHello]:
    """Read one hello from `connection` within `within` seconds.

    Raises `HelloError`: TIMEOUT if it did not arrive in time, BAD_REQUEST for
    anything that is not a well-formed hello (or too many bytes), and
    BAD_REQUEST with `answer=False` if the peer closed or reset the connection.
    """
    handshake = HandshakeConnection(Role.RELAY)
    channel = HelloChannel(connection, handshake)
    try:
        async with asyncio.timeout(within):
            while True:
                try:
                    event = handshake.next_event()
                    if isinstance(event, FrameReceived):
                        message = event.message
                        # The relay role accepts nothing else; a decoder bug must not pass.
                        if not isinstance(message, ClientHello | AgentHello):
                            raise HelloError(RefusalReason.BAD_REQUEST, "not a hello", channel)
                        return channel, message
                    if isinstance(event, ConnectionClosed):
                        raise HelloError(RefusalReason.BAD_REQUEST, "closed", channel, answer=False)
                    if event is not NEED_DATA:
                        raise HelloError(RefusalReason.BAD_REQUEST, "unexpected state", channel)
                    handshake.receive_data(await connection.recv(RECV_SIZE))
                except ProtocolError as exc:
                    raise HelloError(RefusalReason.BAD_REQUEST, str(exc)[:200], channel) from None
                except OSError:
                    raise HelloError(
                        RefusalReason.BAD_REQUEST, "reset", channel, answer=False
                    ) from None
    except TimeoutError:
        raise HelloError(RefusalReason.TIMEOUT, "no hello in time", channel) from None
