"""The RTSP gate's asyncio adapter: tunnel ⇄ `GateExchange` ⇄ the recorder's RTSP server.

It owns the two sockets and nothing else: every byte goes through the
exchange, which decides what passes.  The recorder side has an idle timeout
(a stalled recorder must not pin a session forever); the app side is bounded
by the session's own lifetime and revocation, which cancel this coroutine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from nvrshare.agent.sessions.errors import UpstreamError
from nvrshare.agent.sessions.rtsp_exchange import GateExchange
from nvrshare.agent.sessions.rtsp_gate import GatePolicy
from nvrshare.firmware_shim.models import StreamSource

__all__ = ["ProxyConfig", "serve_rtsp"]

READ_SIZE = 64 * 1024


@dataclass(frozen=True, kw_only=True, slots=True)
class ProxyConfig:
    """Timeouts of the gate's sockets, in seconds."""

    connect_timeout: float = 5.0
    upstream_idle_timeout: float = 30.0


def _upstream_address(url: str) -> tuple[str, int]:
    try:
        parts = urlsplit(url)
        port = parts.port or 554
    except ValueError as exc:
        raise UpstreamError(f"bad recorder URL: {exc}") from exc
    if parts.scheme.lower() != "rtsp" or not parts.hostname:
        raise UpstreamError("only rtsp:// recorder URLs are served")
    return parts.hostname, port


class _Pumps:
    """The two directions of one gated connection, sharing one exchange."""

    def __init__(
        self,
        exchange: GateExchange,
        tunnel: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        idle_timeout: float,
    ) -> None:
        self.exchange = exchange
        self.tunnel_reader, self.tunnel_writer = tunnel
        self.upstream_reader, self.upstream_writer = upstream
        self.idle_timeout = idle_timeout

    async def flush(self) -> None:
        to_upstream = self.exchange.data_for_upstream()
        to_client = self.exchange.data_for_client()
        if to_upstream:
            self.upstream_writer.write(to_upstream)
        if to_client:
            self.tunnel_writer.write(to_client)
        if to_upstream:
            await self.upstream_writer.drain()
        if to_client:
            await self.tunnel_writer.drain()

    async def from_client(self, initial: bytes) -> None:
        if initial:
            self.exchange.client_data(initial)
            await self.flush()
        while not self.exchange.closed:
            self.exchange.client_data(await self.tunnel_reader.read(READ_SIZE))
            await self.flush()

    async def from_upstream(self) -> None:
        while not self.exchange.closed:
            try:
                data = await asyncio.wait_for(
                    self.upstream_reader.read(READ_SIZE), self.idle_timeout
                )
            except TimeoutError:
                self.exchange.upstream_data(b"")
                self.exchange.close_reason = "recorder idle timeout"
                return
            self.exchange.upstream_data(data)
            await self.flush()


async def serve_rtsp(
    tunnel_reader: asyncio.StreamReader,
    tunnel_writer: asyncio.StreamWriter,
    policy: GatePolicy,
    source: StreamSource,
    *,
    initial: bytes = b"",
    config: ProxyConfig | None = None,
    logger: logging.Logger | None = None,
) -> str:
    """Gate one RTSP conversation until either side ends; returns why it ended.

    `initial` is what arrived on the tunnel together with the handshake.
    Raises `UpstreamError` if the recorder cannot be reached.  The tunnel is
    not closed here (its owner closes it); the recorder connection is.
    """
    config = config or ProxyConfig()
    log = logger or logging.getLogger(__name__)
    host, port = _upstream_address(source.url)
    username, password = source.username, source.password
    if not username:
        parts = urlsplit(source.url)
        username, password = parts.username or "", parts.password or ""
    try:
        # asyncio.timeout, not wait_for: see `tunnel.dial_relay` (3.11 can drop the stream).
        async with asyncio.timeout(config.connect_timeout):
            upstream = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError) as exc:
        raise UpstreamError(f"cannot reach the recorder's RTSP server: {exc!r}") from exc
    exchange = GateExchange(
        policy, upstream_url=source.url, username=username, password=password, logger=log
    )
    pumps = _Pumps(exchange, (tunnel_reader, tunnel_writer), upstream, config.upstream_idle_timeout)
    tasks = [
        asyncio.create_task(pumps.from_client(initial), name="rtsp-gate.client"),
        asyncio.create_task(pumps.from_upstream(), name="rtsp-gate.upstream"),
    ]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            error = task.exception()
            if isinstance(error, OSError):
                return f"connection lost: {error!r}"
            if error is not None:
                raise error
        return exchange.close_reason or "closed"
    finally:
        # Close before the first await: a cancellation arriving while we tidy up
        # must not leave the recorder connection open.
        upstream[1].close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(OSError):
            await upstream[1].wait_closed()
