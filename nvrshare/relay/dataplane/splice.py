"""Move bytes between two connected sockets: Linux `os.splice`, or a portable fallback.

Theory of operation (splice engine).  Each direction reads from its source
socket into a kernel pipe and from the pipe into the destination socket with
`splice(2)` (SPLICE_F_MOVE | SPLICE_F_NONBLOCK on non-blocking sockets), so
the payload never enters Python.  The event loop's `add_reader` on the source
drives a direction; a short write registers `add_writer` on the destination
and the bytes wait in the pipe.  The pipe is the backpressure bound: while it
holds anything the source is not read, so a slow reader costs at most one
pipe of kernel memory and nothing in Python.

Pipes are borrowed from a pool only while they hold bytes: a direction takes
one when its source is readable and gives it back as soon as it is empty
again, which is after almost every chunk.  An idle session therefore holds
just its two sockets, and a thousand sessions share a handful of pipes.

EOF from a source is forwarded as `shutdown(SHUT_WR)` on the destination once
the pipe has drained (half-close); the session ends when both directions have
forwarded their EOF, on any socket error, on the idle timeout, or on
`close(reason)` from outside.

Measured on 2-core loopback (BENCHMARKS.md), splice moves as many bytes per
second as the protocol engine at roughly half the CPU per byte, so it is the
default wherever `os.splice` exists; `BufferedProtocolSession` (buffered.py)
is the portable fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import socket

from nvrshare.relay.dataplane.buffered import BufferedProtocolSession
from nvrshare.relay.dataplane.relaying import CloseReason, RelayConfig, RelaySession

__all__ = ["HAVE_SPLICE", "PipePool", "SpliceSession", "start_relay"]

HAVE_SPLICE = hasattr(os, "splice") and hasattr(fcntl, "F_SETPIPE_SZ")
_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2) if HAVE_SPLICE else 0
CHUNKS_PER_WAKEUP = 4  # measured: ~6 % less CPU per GB than 1 on bulk transfers
# A peer that vanished shows up as one of these; anything else is unexpected but
# still ends only this session.
_RESET_ERRNOS = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN, errno.ETIMEDOUT})


class PipePool:
    """Kernel pipes of one size, lent out while they hold bytes.

    A pipe comes back only when empty (the borrower counts its bytes); a pipe
    in an unknown state is closed instead of returned.
    """

    __slots__ = ("_free", "_max_free", "_size", "created")

    def __init__(self, size: int, max_free: int) -> None:
        self._size = size
        self._max_free = max_free
        self._free: list[tuple[int, int]] = []
        self.created = 0

    def take(self) -> tuple[int, int]:
        if self._free:
            return self._free.pop()
        read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        # Over pipe-max-size or the per-user pipe quota the default size still works.
        with contextlib.suppress(OSError):
            fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, self._size)
        self.created += 1
        return read_fd, write_fd

    def give_back(self, pipe: tuple[int, int]) -> None:
        if len(self._free) < self._max_free:
            self._free.append(pipe)
        else:
            self.discard(pipe)

    @staticmethod
    def discard(pipe: tuple[int, int]) -> None:
        os.close(pipe[0])
        os.close(pipe[1])

    def close(self) -> None:
        while self._free:
            self.discard(self._free.pop())


class _Direction:
    """One way of a splice session: src socket → pipe → dst socket."""

    __slots__ = (
        "counter",
        "dst",
        "dst_fd",
        "eof",
        "pending",
        "pipe",
        "reading",
        "session",
        "src",
        "src_fd",
        "writing",
    )

    def __init__(
        self, session: SpliceSession, src: socket.socket, dst: socket.socket, counter: str
    ) -> None:
        self.session = session
        self.src, self.dst = src, dst
        self.src_fd, self.dst_fd = src.fileno(), dst.fileno()
        self.counter = counter
        self.pipe: tuple[int, int] | None = None
        self.pending = 0  # bytes in the pipe, not yet written to dst
        self.eof = False
        self.reading = False
        self.writing = False

    def start(self) -> None:
        self.reading = True
        self.session._loop.add_reader(self.src_fd, self.on_readable)

    def on_readable(self) -> None:
        session = self.session
        # A full pipe's worth read means more is probably waiting: take a few more
        # chunks now instead of a trip through epoll each (bounded, for fairness).
        for _ in range(CHUNKS_PER_WAKEUP):
            if self.pipe is None:
                self.pipe = session._pool.take()
            try:
                count = os.splice(self.src_fd, self.pipe[1], session.config.pipe_size, flags=_FLAGS)
            except BlockingIOError:
                if self.pending:
                    # The pipe is full (by slots, not only bytes): wait for dst to drain
                    # it, or a level-triggered reader would spin.
                    self._pause_reading()
                else:
                    self._release_pipe()
                return
            except OSError as exc:
                session._fail(exc)
                return
            if count == 0:
                self.eof = True
                self._pause_reading()
                if not self.pending:
                    self._release_pipe()
                    session._forward_eof(self)
                return
            self.pending += count
            if self.counter == "up":
                session.bytes_up += count
            else:
                session.bytes_down += count
            self.flush()
            if self.pending or not self.reading or session.closed:
                return
            if count < session.config.pipe_size:
                return

    def flush(self) -> None:
        session = self.session
        assert self.pipe is not None
        while self.pending:
            try:
                count = os.splice(self.pipe[0], self.dst_fd, self.pending, flags=_FLAGS)
            except BlockingIOError:
                if not self.writing:
                    self.writing = True
                    session._loop.add_writer(self.dst_fd, self.on_writable)
                self._pause_reading()
                return
            except OSError as exc:
                session._fail(exc)
                return
            self.pending -= count
        self._release_pipe()
        if self.writing:
            self.writing = False
            session._loop.remove_writer(self.dst_fd)
        if self.eof:
            session._forward_eof(self)
        elif not self.reading:
            self.reading = True
            session._loop.add_reader(self.src_fd, self.on_readable)

    def on_writable(self) -> None:
        self.flush()

    def _pause_reading(self) -> None:
        if self.reading:
            self.reading = False
            self.session._loop.remove_reader(self.src_fd)

    def _release_pipe(self) -> None:
        if self.pipe is not None and not self.pending:
            self.session._pool.give_back(self.pipe)
            self.pipe = None

    def stop(self) -> None:
        loop = self.session._loop
        if self.reading:
            self.reading = False
            loop.remove_reader(self.src_fd)
        if self.writing:
            self.writing = False
            loop.remove_writer(self.dst_fd)
        if self.pipe is not None:
            # Bytes may still sit in it: never lend such a pipe to another session.
            if self.pending:
                PipePool.discard(self.pipe)
            else:
                self.session._pool.give_back(self.pipe)
            self.pipe = None


class SpliceSession(RelaySession):
    """A relayed session moved by `splice(2)`; see the module docstring."""

    __slots__ = ("_done", "_down", "_pool", "_up", "agent_sock", "client_sock")

    def __init__(
        self,
        client_sock: socket.socket,
        agent_sock: socket.socket,
        config: RelayConfig,
        loop: asyncio.AbstractEventLoop,
        pool: PipePool,
    ) -> None:
        super().__init__(config, loop)
        self.client_sock = client_sock
        self.agent_sock = agent_sock
        self._pool = pool
        self._up = _Direction(self, client_sock, agent_sock, "up")
        self._down = _Direction(self, agent_sock, client_sock, "down")
        self._done = 0

    def _start(self) -> None:
        self._up.start()
        self._down.start()
        self._start_idle_timer()

    def _forward_eof(self, direction: _Direction) -> None:
        try:
            direction.dst.shutdown(socket.SHUT_WR)
        except OSError as exc:
            self._fail(exc)
            return
        self._done += 1
        if self._done == 2:
            self.close(CloseReason.EOF)

    def _fail(self, exc: OSError) -> None:
        del exc  # the reason is all the caller needs; the errno is not a secret but is noise
        self.close(CloseReason.RESET)

    def _teardown(self, reason: CloseReason) -> None:
        del reason  # splice holds nothing in user space: closing loses only what the kernel holds
        self._up.stop()
        self._down.stop()
        self.client_sock.close()
        self.agent_sock.close()


async def start_relay(
    client_sock: socket.socket,
    agent_sock: socket.socket,
    config: RelayConfig,
    *,
    engine: str = "auto",
    pool: PipePool | None = None,
    to_agent: bytes = b"",
    to_client: bytes = b"",
) -> RelaySession:
    """Start moving bytes between two connected sockets; returns the running session.

    `to_agent` / `to_client` are bytes already read past the handshake (the
    framing's trailing data); they are delivered first.  `engine` is "auto"
    (splice where available), "splice" or "protocol".  The session owns both
    sockets from here on, including when this raises.  `pool` shares pipes
    between sessions (one pool per data plane); a private one is made if absent.

    Raises `ValueError` for an unavailable engine and `OSError` if delivering the
    early bytes fails; both sockets are closed then.
    """
    if engine not in {"auto", "splice", "protocol"} or (engine == "splice" and not HAVE_SPLICE):
        client_sock.close()
        agent_sock.close()
        raise ValueError(f"engine {engine!r} is not available here")
    loop = asyncio.get_running_loop()
    for sock in (client_sock, agent_sock):
        sock.setblocking(False)
    try:
        if to_agent:
            await loop.sock_sendall(agent_sock, to_agent)
        if to_client:
            await loop.sock_sendall(client_sock, to_client)
    except BaseException:
        client_sock.close()
        agent_sock.close()
        raise
    if engine == "protocol" or not HAVE_SPLICE:
        return await BufferedProtocolSession.start(client_sock, agent_sock, config, loop)
    session = SpliceSession(
        client_sock,
        agent_sock,
        config,
        loop,
        pool if pool is not None else PipePool(config.pipe_size, config.max_free_pipes),
    )
    session._start()
    return session
