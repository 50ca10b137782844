"""The byte mover for TLS sessions: two pump tasks over asyncio streams.

TLS is terminated at the relay (each side has its own TLS session with us),
so bytes must pass through user space to be decrypted and re-encrypted:
splice cannot help.  Each direction is a task that reads up to `buffer_size`
and writes it to the other side, awaiting `drain()`, so a slow reader stops
the pump for its direction (asyncio's write-buffer limits are set to
`high_water`).

asyncio's TLS transport cannot half-close (no `write_eof` under TLS), so EOF
from either side ends the whole session once what was read has been written.
"""

from __future__ import annotations

import asyncio

from nvrshare.relay.dataplane.connection import TlsConnection
from nvrshare.relay.dataplane.relaying import CloseReason, RelayConfig, RelaySession

__all__ = ["StreamRelaySession"]


class StreamRelaySession(RelaySession):
    """A relayed session between two TLS connections; see the module docstring."""

    __slots__ = ("_pumps", "agent", "client")

    def __init__(
        self,
        client: TlsConnection,
        agent: TlsConnection,
        config: RelayConfig,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(config, loop)
        self.client = client
        self.agent = agent
        self._pumps: list[asyncio.Task[None]] = []

    @classmethod
    async def start(
        cls,
        client: TlsConnection,
        agent: TlsConnection,
        config: RelayConfig,
        *,
        to_agent: bytes = b"",
        to_client: bytes = b"",
    ) -> StreamRelaySession:
        """Start both pumps; the early bytes (read past the handshake) go first."""
        session = cls(client, agent, config, asyncio.get_running_loop())
        for connection in (client, agent):
            connection.writer.transport.set_write_buffer_limits(high=config.high_water)
        session._pumps = [
            asyncio.create_task(session._pump(client, agent, to_agent, "up")),
            asyncio.create_task(session._pump(agent, client, to_client, "down")),
        ]
        session._start_idle_timer()
        return session

    async def _pump(
        self, source: TlsConnection, sink: TlsConnection, early: bytes, direction: str
    ) -> None:
        try:
            if early:
                await sink.sendall(early)
            while data := await source.reader.read(self.config.buffer_size):
                if direction == "up":
                    self.bytes_up += len(data)
                else:
                    self.bytes_down += len(data)
                sink.writer.write(data)
                await sink.writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            self.close(CloseReason.RESET)
            return
        # Flush what the sink holds before closing: an orderly end loses nothing.
        try:
            await sink.writer.drain()
        except OSError:
            self.close(CloseReason.RESET)
            return
        self._finish_cleanly()

    def _finish_cleanly(self) -> None:
        for connection in (self.client, self.agent):
            connection.writer.close()  # flushes, then TLS close_notify
        self.close(CloseReason.EOF)

    def _teardown(self, reason: CloseReason) -> None:
        current = asyncio.current_task()
        for pump in self._pumps:
            if pump is not current:
                pump.cancel()
        if reason is not CloseReason.EOF:
            self.client.close()
            self.agent.close()
