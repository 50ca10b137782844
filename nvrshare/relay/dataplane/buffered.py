"""The portable byte mover: asyncio `BufferedProtocol` with one reused buffer per side.

Used where `os.splice` does not exist (and selectable for benchmarks).  Each
socket gets a transport (`loop.connect_accepted_socket`) and a `_Side`
protocol; the kernel copies received bytes straight into the side's reused
buffer (`get_buffer`/`buffer_updated`) and they are handed to the peer
transport's `write`, which sends at once and copies only what the socket
would not take.  Backpressure is the transports' own flow control: when the
peer's write buffer passes `high_water` it calls `pause_writing` on its
protocol, which pauses reading on this side, and `resume_writing` undoes it.

A transport may keep a view of the written memory when it buffers (newer
Pythons do), so a side switches to a fresh buffer whenever its peer still
holds unsent bytes instead of overwriting memory the peer may still send.
"""

from __future__ import annotations

import asyncio
import socket
from typing import cast

from nvrshare.relay.dataplane.relaying import CloseReason, RelayConfig, RelaySession

__all__ = ["BufferedProtocolSession"]


class _Side(asyncio.BufferedProtocol):
    """The protocol on one socket; bytes it receives go to `peer`'s transport."""

    def __init__(self, session: BufferedProtocolSession, counter: str, buffer_size: int) -> None:
        self.session = session
        self.counter = counter
        self.buffer_size = buffer_size
        self.buffer = bytearray(buffer_size)
        self.view = memoryview(self.buffer)
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.early: list[bytes] = []  # received before the peer's transport existed
        self.eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.pause_reading()
        self.transport.set_write_buffer_limits(high=self.session.config.high_water)

    def get_buffer(self, sizehint: int) -> memoryview:
        del sizehint  # always offer the whole buffer: fewer, larger reads
        return self.view

    def buffer_updated(self, nbytes: int) -> None:
        if self.counter == "up":
            self.session.bytes_up += nbytes
        else:
            self.session.bytes_down += nbytes
        peer = self.peer
        if peer is None or peer.transport is None:
            self.early.append(bytes(self.view[:nbytes]))
            return
        peer_transport = peer.transport
        peer_transport.write(self.view[:nbytes])
        if peer_transport.get_write_buffer_size():
            self.buffer = bytearray(self.buffer_size)
            self.view = memoryview(self.buffer)

    def eof_received(self) -> bool:
        self.eof = True
        self.session._forward_eof(self)
        return True  # keep our write side open: the other direction may still flow

    def pause_writing(self) -> None:
        # Our peer can't keep up with what we send it: stop reading on the other socket.
        other = self.peer
        if other is not None and other.transport is not None:
            other.transport.pause_reading()

    def resume_writing(self) -> None:
        other = self.peer
        if other is not None and other.transport is not None and not other.eof:
            other.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.session._lost(exc)


class BufferedProtocolSession(RelaySession):
    """A relayed session moved by two asyncio transports; see the module docstring."""

    __slots__ = ("_agent", "_client", "_eofs", "agent_sock", "client_sock")

    def __init__(
        self,
        client_sock: socket.socket,
        agent_sock: socket.socket,
        config: RelayConfig,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(config, loop)
        self.client_sock = client_sock
        self.agent_sock = agent_sock
        self._client = _Side(self, "up", config.buffer_size)
        self._agent = _Side(self, "down", config.buffer_size)
        self._client.peer, self._agent.peer = self._agent, self._client
        self._eofs = 0

    @classmethod
    async def start(
        cls,
        client_sock: socket.socket,
        agent_sock: socket.socket,
        config: RelayConfig,
        loop: asyncio.AbstractEventLoop,
    ) -> BufferedProtocolSession:
        session = cls(client_sock, agent_sock, config, loop)
        try:
            await loop.connect_accepted_socket(lambda: session._client, client_sock)
            await loop.connect_accepted_socket(lambda: session._agent, agent_sock)
        except BaseException:
            session.close(CloseReason.RESET)
            raise
        for side in (session._client, session._agent):
            assert side.transport is not None
            assert side.peer is not None
            peer_transport = side.peer.transport
            assert peer_transport is not None
            for chunk in side.early:
                peer_transport.write(chunk)
            side.early.clear()
            if side.eof:
                session._forward_eof(side)  # arrived while the peer had no transport yet
            else:
                side.transport.resume_reading()
        if session.closed:
            return session
        session._start_idle_timer()
        return session

    def _forward_eof(self, side: _Side) -> None:
        peer = side.peer
        if peer is None or peer.transport is None:
            return  # start() has not finished; it will see side.eof
        if peer.transport.can_write_eof():
            peer.transport.write_eof()
        self._eofs += 1
        if self._eofs == 2:
            self.close(CloseReason.EOF)

    def _lost(self, exc: Exception | None) -> None:
        self.close(CloseReason.RESET if exc is not None else CloseReason.EOF)

    def _teardown(self, reason: CloseReason) -> None:
        for side, sock in ((self._client, self.client_sock), (self._agent, self.agent_sock)):
            transport = side.transport
            if transport is None:
                sock.close()  # start() failed before this socket got its transport
            elif reason is CloseReason.EOF:
                transport.close()  # after a clean double EOF, still flush what it holds
            else:
                transport.abort()
