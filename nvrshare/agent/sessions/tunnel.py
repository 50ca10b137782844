"""Dialling the relay's data port for one offer: connect out, prove the secret, get raw bytes.

The agent never listens: it connects to the endpoint named in the offer,
sends `AgentHello(session_id, HMAC(secret, session_id))` and waits for the
relay's answer.  Every step is bounded in time; the bytes that arrived behind
the relay's `HelloAccepted` frame belong to the stream and are handed over.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nvrshare.agent.sessions.errors import SessionRefused
from nvrshare.protocol.errors import ProtocolError
from nvrshare.protocol.framing import (
    NEED_DATA,
    ConnectionClosed,
    FrameReceived,
    HandshakeConnection,
)
from nvrshare.protocol.handshake import AgentHello, HelloAccepted, HelloRefused, agent_proof
from nvrshare.protocol.handshake_state import Role
from nvrshare.protocol.messages import SessionOffer
from nvrshare.protocol.reasons import RefusalReason

__all__ = ["Dialer", "Tunnel", "dial_relay", "tls_dialer"]

READ_SIZE = 16 * 1024

Dialer = Callable[[str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


@dataclass(slots=True)
class Tunnel:
    """An accepted data-plane connection: raw bytes from here on."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    initial: bytes  # stream bytes that arrived with the relay's answer
    peer_closed: bool = False

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


async def _open(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(host, port)


def tls_dialer(context: ssl.SSLContext) -> Dialer:
    """A dialer for a relay whose data port speaks TLS (the relay's name is verified)."""

    async def dial(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(host, port, ssl=context, server_hostname=host)

    return dial


async def dial_relay(
    offer: SessionOffer, *, time_limit: float = 5.0, dialer: Dialer = _open
) -> Tunnel:
    """Connect to the offer's relay endpoint and complete the agent handshake.

    Raises `SessionRefused` (TIMEOUT when the relay is unreachable or slow,
    the relay's own reason when it refused, BAD_REQUEST for protocol errors).
    """
    # asyncio.timeout, not wait_for: on 3.11 wait_for runs the dial in a second task and,
    # when a cancellation meets a dial that just completed, either swallows the
    # cancellation or drops the connected stream unclosed.  Here the dial runs in our task.
    try:
        async with asyncio.timeout(time_limit):
            reader, writer = await dialer(offer.relay_host, offer.relay_port)
    except (OSError, TimeoutError) as exc:
        raise SessionRefused(RefusalReason.TIMEOUT, f"cannot reach the relay: {exc!r}") from exc
    try:
        async with asyncio.timeout(time_limit):
            return await _handshake(offer, reader, writer)
    except BaseException as exc:
        writer.close()  # whatever happened (refusal, timeout, cancellation), release the socket
        if isinstance(exc, TimeoutError):
            raise SessionRefused(RefusalReason.TIMEOUT, "relay did not answer the hello") from exc
        if isinstance(exc, OSError | ProtocolError):
            raise SessionRefused(RefusalReason.BAD_REQUEST, f"handshake failed: {exc}") from exc
        raise


async def _handshake(
    offer: SessionOffer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> Tunnel:
    connection = HandshakeConnection(Role.AGENT)
    proof = agent_proof(offer.session_secret, offer.session_id)
    writer.write(connection.send(AgentHello(session_id=offer.session_id, proof=proof)))
    await writer.drain()
    while True:
        event = connection.next_event()
        if event is NEED_DATA:
            connection.receive_data(await reader.read(READ_SIZE))
            continue
        if isinstance(event, FrameReceived):
            message = event.message
            if isinstance(message, HelloAccepted):
                if message.session_id != offer.session_id:
                    raise SessionRefused(RefusalReason.BAD_REQUEST, "accepted another session")
                initial, eof = connection.switch_to_raw()
                return Tunnel(reader, writer, initial, eof)
            if isinstance(message, HelloRefused):
                raise SessionRefused(message.reason, f"relay refused: {message.message}")
        if isinstance(event, ConnectionClosed):
            raise SessionRefused(RefusalReason.TIMEOUT, "relay closed the connection")
        raise SessionRefused(RefusalReason.BAD_REQUEST, f"unexpected handshake event {event!r}")
