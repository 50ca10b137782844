"""What every byte-moving engine shares: configuration, close reasons, the session surface.

A relayed session joins two connected sockets (the app client's and the
agent's) and moves bytes both ways until one of: both sides finished (EOF
forwarded each way), an error on either socket, the idle timeout, or a close
from outside (revocation, shutdown).  Whatever ended it, both sockets are
closed exactly once and `wait_closed()` returns the reason.

"up" is client → agent (requests, talk audio); "down" is agent → client
(video).  The counters are plain ints read by the metrics renderer; they are
updated on the hot path without any callback.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass

__all__ = ["CloseReason", "RelayConfig", "RelaySession"]


class CloseReason(enum.StrEnum):
    """Why a relayed session ended (also a metrics label)."""

    EOF = "eof"  # both sides finished cleanly
    RESET = "reset"  # a socket error on either side
    IDLE = "idle"  # no byte either way for the idle timeout
    REVOKED = "revoked"  # the share was stopped or the token revoked
    SHUTDOWN = "shutdown"  # the data plane is closing
    EXPIRED = "expired"  # the session outlived its maximum duration


@dataclass(frozen=True, kw_only=True, slots=True)
class RelayConfig:
    """Tuning of the byte mover.

    idle_timeout: seconds without a byte either way before the session is
        closed (checked with a quarter of that granularity).
    pipe_size: capacity of each kernel pipe (splice engine); Linux caps it at
        /proc/sys/fs/pipe-max-size and a refused size falls back to the default.
    buffer_size: the reused receive buffer per direction (protocol engine).
    high_water: bytes queued towards a slow peer before reading from the
        other side pauses (protocol engine; the splice engine's bound is the pipe).
    max_free_pipes: pipes kept for reuse; the rest are closed when released.
    """

    idle_timeout: float = 60.0
    pipe_size: int = 1024 * 1024
    buffer_size: int = 256 * 1024
    high_water: int = 1024 * 1024
    max_free_pipes: int = 64

    def __post_init__(self) -> None:
        if self.idle_timeout <= 0:
            raise ValueError("idle_timeout must be positive")
        if self.pipe_size < 4096 or self.buffer_size < 4096 or self.high_water < 4096:
            raise ValueError("pipe_size, buffer_size and high_water must be at least 4096")
        if self.max_free_pipes < 0:
            raise ValueError("max_free_pipes must not be negative")


class RelaySession:
    """The surface both engines offer; subclasses move the bytes.

    Not constructed directly: use `nvrshare.relay.dataplane.splice.start_relay`.
    """

    __slots__ = (
        "_closed",
        "_idle_handle",
        "_idle_seen",
        "_idle_since",
        "_loop",
        "bytes_down",
        "bytes_up",
        "config",
        "reason",
    )

    def __init__(self, config: RelayConfig, loop: asyncio.AbstractEventLoop) -> None:
        self.config = config
        self._loop = loop
        self.bytes_up = 0
        self.bytes_down = 0
        self.reason: CloseReason | None = None
        self._closed: asyncio.Future[CloseReason] = loop.create_future()
        self._idle_seen = -1
        self._idle_since = loop.time()
        self._idle_handle: asyncio.TimerHandle | None = None

    @property
    def closed(self) -> bool:
        return self.reason is not None

    def close(self, reason: CloseReason) -> None:
        """Stop relaying and close both sockets now; later calls do nothing."""
        if self.reason is not None:
            return
        self.reason = reason
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None
        self._teardown(reason)
        self._closed.set_result(reason)

    async def wait_closed(self) -> CloseReason:
        """Wait until the session has ended; returns why."""
        return await asyncio.shield(self._closed)

    # -- for the engines ---------------------------------------------------

    def _teardown(self, reason: CloseReason) -> None:
        """Unregister from the loop, release engine resources, close both sockets."""
        raise NotImplementedError

    def _start_idle_timer(self) -> None:
        self._idle_handle = self._loop.call_later(self.config.idle_timeout / 4, self._idle_tick)

    def _idle_tick(self) -> None:
        # Counting bytes instead of stamping a clock per chunk keeps the hot path free.
        now = self._loop.time()
        total = self.bytes_up + self.bytes_down
        if total != self._idle_seen:
            self._idle_seen = total
            self._idle_since = now
        elif now - self._idle_since >= self.config.idle_timeout:
            self._idle_handle = None
            self.close(CloseReason.IDLE)
            return
        self._idle_handle = self._loop.call_later(self.config.idle_timeout / 4, self._idle_tick)
