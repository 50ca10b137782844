"""An RTSP/1.0 server that streams looping H.264 over TCP-interleaved RTP.

This is the asyncio adapter: it accepts connections, feeds bytes to the
sans-IO `RtspReader`, hands requests to an `RtspConversation`
(`rtsp_session`), writes the replies, and runs one pacing task per playing
session.  Each PLAY streams its own copy of the clip from a keyframe, in real
time, with continuous RTP timestamps and sequence numbers across loops and
pauses; a finite stream (playback) ends with an RTCP SR+BYE.

`RtspFaults` holds the knobs reliability tests turn; `drop_streams()` cuts
every connection.  What exists at which path is decided by the resolver the
camera or recorder simulator passes in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from nvrshare.simulators.digest import DigestAuthenticator
from nvrshare.simulators.rtp import interleave, rtcp_bye, rtcp_sender_report
from nvrshare.simulators.rtsp_messages import (
    CLOSED,
    NEED_DATA,
    InterleavedFrame,
    RtspReader,
    RtspRequest,
    RtspSyntaxError,
)
from nvrshare.simulators.rtsp_session import (
    MediaAction,
    MediaSession,
    RtspConversation,
    StreamResolver,
    StreamSpec,
)

__all__ = ["RtspFaults", "RtspServer", "RtspServerConfig", "StreamResolver", "StreamSpec"]

SR_INTERVAL = 5.0
DRAIN_TIMEOUT = 10.0
READ_SIZE = 65536
HISTORY = 256


@dataclass(kw_only=True, slots=True)
class RtspFaults:
    """Mutable fault knobs, read on every request / frame."""

    refuse_connections: bool = False  # accept, then reset at once
    response_delay: float = 0.0  # seconds before every response
    stall: bool = False  # keep sessions open but send no media


@dataclass(frozen=True, kw_only=True, slots=True)
class RtspServerConfig:
    """RTSP listener settings; empty username = no authentication."""

    host: str = "127.0.0.1"
    port: int = 0
    username: str = "admin"
    password: str = field(default="", repr=False)
    realm: str = "nvrshare-sim"
    max_connections: int = 64
    idle_timeout: float = 60.0


@dataclass(slots=True)
class _Pacer:
    """The asyncio side of a media session: its task and its play/pause gate."""

    playing: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class RtspServer:
    """`async with RtspServer(config, resolver) as server:` listens until exit."""

    def __init__(
        self,
        config: RtspServerConfig,
        resolver: StreamResolver,
        *,
        logger: logging.Logger | None = None,
    ) -> None:
        self.config = config
        self.faults = RtspFaults()
        self._resolver = resolver
        self._log = logger or logging.getLogger(__name__)
        self._auth = (
            DigestAuthenticator(
                realm=config.realm, username=config.username, password=config.password, qop=False
            )
            if config.username
            else None
        )
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = config.port
        self.plays = 0  # PLAY requests served, for tests
        # For tests, the latest few: each request with the answer it got, and each
        # media session that started playing (its frame counters move as it plays).
        self.exchanges: deque[tuple[RtspRequest, bytes]] = deque(maxlen=HISTORY)
        self.media_sessions: deque[MediaSession] = deque(maxlen=HISTORY)

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(
            self._accept, self.config.host, self.config.port, limit=READ_SIZE
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
        # Aborting the transports ends every connection task promptly and cleanly.
        self.drop_streams()
        if self._connections:
            _done, pending = await asyncio.wait(list(self._connections), timeout=2.0)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=2.0)
        if self._server is not None:
            await self._server.wait_closed()

    def url(self, path: str, *, with_credentials: bool = False) -> str:
        """rtsp:// URL of `path` on this server."""
        host = self.config.host if ":" not in self.config.host else f"[{self.config.host}]"
        auth = ""
        if with_credentials and self.config.username:
            auth = f"{self.config.username}:{self.config.password}@"
        return f"rtsp://{auth}{host}:{self.port}{path}"

    def change_password(self, password: str) -> None:
        """Fault/scenario: the owner changed the device password."""
        if self._auth is not None:
            self._auth.change_password(password)

    def drop_streams(self) -> int:
        """Fault: abort every open connection now; returns how many were cut."""
        writers = list(self._writers)
        for writer in writers:
            writer.transport.abort()
        return len(writers)

    @property
    def connection_count(self) -> int:
        return len(self._writers)

    # -- connections ------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.faults.refuse_connections or len(self._writers) >= self.config.max_connections:
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self._writers.add(writer)
        pacers: dict[str, _Pacer] = {}
        try:
            await self._serve(reader, writer, pacers)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except asyncio.CancelledError:
            # Only our own shutdown cancels these tasks; asyncio's stream callback
            # would log a cancelled client task as an error, so end it normally.
            pass
        finally:
            for pacer in pacers.values():
                await _stop(pacer)
            self._writers.discard(writer)
            self._connections.discard(task)
            writer.transport.abort()

    async def _serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        pacers: dict[str, _Pacer],
    ) -> None:
        local = writer.get_extra_info("sockname") or ("127.0.0.1", 0)
        conversation = RtspConversation(
            resolver=self._resolver,
            auth=self._auth,
            local_address=str(local[0]),
            session_timeout=int(self.config.idle_timeout),
        )
        parser = RtspReader()
        while True:
            try:
                event = parser.next_event()
            except RtspSyntaxError as exc:
                self._log.debug("rtsp: bad request: %s", exc)
                writer.write(conversation.bad_request().response)
                await writer.drain()
                return
            if event is CLOSED:
                return
            if event is NEED_DATA:
                # Over TCP the open connection is the liveness signal while media
                # flows (a client that stops reading is caught by the drain
                # timeout); otherwise a silent client is dropped after idle_timeout.
                playing = any(p.playing.is_set() for p in pacers.values())
                async with asyncio.timeout(None if playing else self.config.idle_timeout):
                    parser.receive_data(await reader.read(READ_SIZE))
                continue
            if isinstance(event, InterleavedFrame):
                continue  # RTCP receiver reports: proof of life, nothing to do
            assert isinstance(event, RtspRequest)
            self._log.debug("rtsp: %s %s", event.method, event.uri)
            reply = conversation.handle(event)
            self.exchanges.append((event, reply.response))
            if self.faults.response_delay > 0:
                await asyncio.sleep(self.faults.response_delay)
            writer.write(reply.response)
            await writer.drain()
            if reply.close:
                return
            if reply.session is not None:
                await self._apply(reply.action, reply.session, writer, pacers)

    async def _apply(
        self,
        action: MediaAction,
        session: MediaSession,
        writer: asyncio.StreamWriter,
        pacers: dict[str, _Pacer],
    ) -> None:
        if action is MediaAction.PLAY:
            self.plays += 1
            pacer = pacers.setdefault(session.session_id, _Pacer())
            pacer.playing.set()
            if pacer.task is None:
                self.media_sessions.append(session)
                pacer.task = asyncio.create_task(
                    self._stream(session, pacer, writer), name=f"rtsp[{session.session_id}]"
                )
        elif action is MediaAction.PAUSE and session.session_id in pacers:
            pacers[session.session_id].playing.clear()
        elif action is MediaAction.STOP and session.session_id in pacers:
            await _stop(pacers.pop(session.session_id))

    # -- media --------------------------------------------------------------------------------

    def _held(self, pacer: _Pacer) -> bool:
        return not pacer.playing.is_set() or self.faults.stall

    async def _stream(
        self, session: MediaSession, pacer: _Pacer, writer: asyncio.StreamWriter
    ) -> None:
        loop = asyncio.get_running_loop()
        clip = session.spec.clip
        started, first_frame = loop.time(), session.frame_index
        last_report = -SR_INTERVAL
        try:
            # The limit is read each frame: a PLAY after a PAUSE may seek to a new range.
            while (limit := session.frame_limit) is None or session.frame_index < limit:
                if self._held(pacer):
                    while self._held(pacer):
                        if self.faults.stall:
                            await asyncio.sleep(0.05)
                        else:
                            await pacer.playing.wait()
                    started, first_frame = loop.time(), session.frame_index  # re-base pacing
                delay = started + (session.frame_index - first_frame) / clip.fps - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                    if self._held(pacer):
                        continue  # paused while we waited: send nothing more
                timestamp = session.timestamp()
                nals = clip.frames[session.frame_index % len(clip.frames)]
                chunks = [
                    interleave(session.channel, packet)
                    for packet in session.packetizer.packetize(nals, timestamp)
                ]
                now = loop.time()
                if now - last_report >= SR_INTERVAL:
                    last_report = now
                    report = rtcp_sender_report(
                        session.packetizer, ntp_seconds=time.time(), rtp_timestamp=timestamp
                    )
                    chunks.append(interleave(session.channel + 1, report))
                writer.write(b"".join(chunks))
                async with asyncio.timeout(DRAIN_TIMEOUT):
                    await writer.drain()
                session.frame_index += 1
                session.frames_sent += 1
            self._log.debug("rtsp: session %s reached its end", session.session_id)
            bye = rtcp_bye(
                session.packetizer, ntp_seconds=time.time(), rtp_timestamp=session.timestamp()
            )
            writer.write(interleave(session.channel + 1, bye))
            await writer.drain()
        except (ConnectionError, TimeoutError):
            writer.transport.abort()  # a client that stops reading is dropped


async def _stop(pacer: _Pacer) -> None:
    if pacer.task is not None:
        pacer.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pacer.task
