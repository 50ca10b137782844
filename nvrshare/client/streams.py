"""The app side of stream sessions: relay handshake, local RTSP endpoint, talk and alarms.

Theory of operation: every stream is one relay session.  `open_session`
connects to the relay's data port, sends `ClientHello(token, request, nonce)`
and waits (bounded) for `HelloAccepted` or a typed `HelloRefused`; after that
the socket carries the session's raw bytes.  `LocalRtspEndpoint` makes a
shared channel look like a local camera: each connection that ffplay,
ffprobe or VLC opens to it becomes one relay session whose tunnel is
spliced with the local socket, so the player speaks RTSP straight to the
device's RTSP gate (which holds the recorder credentials; the app needs
none).  Talk sends paced G.711 µ-law frames and collects what comes back;
alarms yield `AlarmEvent`s decoded from length-prefixed frames.

Players should use RTSP over TCP (`-rtsp_transport tcp`); the gate refuses
UDP with 461 and ffmpeg then retries over TCP on a new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from nvrshare.client.errors import ClientError
from nvrshare.protocol.codec import decode
from nvrshare.protocol.errors import ProtocolError
from nvrshare.protocol.framing import (
    LENGTH_PREFIX,
    NEED_DATA,
    ConnectionClosed,
    FrameReceived,
    HandshakeConnection,
)
from nvrshare.protocol.handshake import ClientHello, HelloAccepted, HelloRefused
from nvrshare.protocol.handshake_state import Role
from nvrshare.protocol.messages import NONCE_LENGTH, AlarmEvent, SessionKind, SessionRequest
from nvrshare.protocol.reasons import RefusalReason
from nvrshare.protocol.wire import WireLimits

__all__ = [
    "TALK_FRAME_BYTES",
    "LocalRtspEndpoint",
    "RelayEndpoint",
    "StreamRefused",
    "StreamSession",
    "StreamUnavailable",
    "TokenSource",
    "local_path",
    "open_session",
    "read_alarms",
    "talk",
]

READ_SIZE = 64 * 1024
TALK_FRAME_BYTES = 160  # 20 ms of 8 kHz G.711
TALK_FRAME_SECONDS = 0.02
ALARM_LIMITS = WireLimits(max_size=4096, max_string=512, max_items=16, max_depth=3)

TokenSource = Callable[[], Awaitable[bytes]]


class StreamRefused(ClientError):
    """The relay (or the device behind it) refused the session; `reason` is typed."""

    def __init__(self, reason: RefusalReason, message: str = "") -> None:
        super().__init__(f"{reason.value}: {message}" if message else reason.value)
        self.reason = reason
        self.message = message


class StreamUnavailable(ClientError):
    """The relay's data port could not be reached, or broke the handshake."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RelayEndpoint:
    """The relay's data port; `tls` set when it speaks TLS (its name is verified)."""

    host: str
    port: int
    tls: ssl.SSLContext | None = None


def local_path(request: SessionRequest) -> str:
    """The RTSP path the device's gate serves for `request` (what players must ask for)."""
    if request.kind is SessionKind.PLAYBACK:
        return f"/playback/{request.channel}"
    sub = "sub" if request.kind is SessionKind.LIVE_SUB else "main"
    return f"/live/{request.channel}/{sub}"


@dataclass(slots=True)
class StreamSession:
    """An accepted relay session: raw bytes from here on."""

    session_id: bytes
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    initial: bytes
    peer_closed: bool

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def open_session(
    endpoint: RelayEndpoint, token: bytes, request: SessionRequest, *, time_limit: float = 15.0
) -> StreamSession:
    """Open one relay session for `request`.

    Raises `StreamRefused` with the relay's typed reason, or `StreamUnavailable`
    when the data port cannot be reached or answers nonsense within `time_limit`.
    """
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                endpoint.host,
                endpoint.port,
                ssl=endpoint.tls,
                server_hostname=endpoint.host if endpoint.tls is not None else None,
            ),
            time_limit,
        )
    except (OSError, TimeoutError) as exc:
        raise StreamUnavailable(f"cannot reach the relay data port: {exc!r}") from exc
    try:
        async with asyncio.timeout(time_limit):
            return await _handshake(reader, writer, token, request)
    except BaseException as exc:
        writer.close()  # whatever happened (refusal, timeout, cancellation), release the socket
        if isinstance(exc, TimeoutError):
            raise StreamUnavailable("the relay did not answer in time") from exc
        if isinstance(exc, ProtocolError | OSError):
            raise StreamUnavailable(f"handshake failed: {exc}") from exc
        raise


async def _handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    token: bytes,
    request: SessionRequest,
) -> StreamSession:
    connection = HandshakeConnection(Role.CLIENT)
    hello = ClientHello(
        token=token, request=request, client_nonce=secrets.token_bytes(NONCE_LENGTH)
    )
    writer.write(connection.send(hello))
    await writer.drain()
    while True:
        event = connection.next_event()
        if event is NEED_DATA:
            connection.receive_data(await reader.read(READ_SIZE))
        elif isinstance(event, FrameReceived) and isinstance(event.message, HelloAccepted):
            initial, eof = connection.switch_to_raw()
            return StreamSession(event.message.session_id, reader, writer, initial, eof)
        elif isinstance(event, FrameReceived) and isinstance(event.message, HelloRefused):
            raise StreamRefused(event.message.reason, event.message.message)
        elif isinstance(event, ConnectionClosed):
            raise StreamUnavailable("the relay closed the connection during the handshake")
        else:
            raise StreamUnavailable(f"unexpected handshake event {event!r}")


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, first: bytes) -> None:
    if first:
        writer.write(first)
        await writer.drain()
    while data := await reader.read(READ_SIZE):
        writer.write(data)
        await writer.drain()
    with contextlib.suppress(OSError):
        if writer.can_write_eof():
            writer.write_eof()


async def splice(
    session: StreamSession, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Move bytes both ways between a local connection and a session until one side ends."""
    tasks = [
        asyncio.create_task(_pump(reader, session.writer, b"")),
        asyncio.create_task(_pump(session.reader, writer, session.initial)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class LocalRtspEndpoint:
    """A loopback RTSP URL for one shared stream; each connection is one relay session.

    `async with LocalRtspEndpoint(relay, tokens, request, host=..., port=...) as ep:`
    then give `ep.url` to a player.  `tokens()` is awaited for every connection
    (so it can refresh an expiring token).  Refusals are logged and counted in
    `refusals`, and the player's connection is closed.
    """

    def __init__(
        self,
        relay: RelayEndpoint,
        tokens: TokenSource,
        request: SessionRequest,
        *,
        host: str = "127.0.0.1",
        port: int = 8554,
        logger: logging.Logger | None = None,
    ) -> None:
        if request.kind not in {SessionKind.LIVE_MAIN, SessionKind.LIVE_SUB, SessionKind.PLAYBACK}:
            raise ValueError("only live and playback sessions are RTSP streams")
        self._relay = relay
        self._tokens = tokens
        self.request = request
        self._host = host
        self.port = port
        self._log = logger or logging.getLogger("nvrshare.client.streams")
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.refusals: list[StreamRefused] = []
        self.sessions_opened = 0

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"rtsp://{host}:{self.port}{local_path(self.request)}"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, self._host, self.port)
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
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            token = await self._tokens()
            async with await open_session(self._relay, token, self.request) as session:
                self.sessions_opened += 1
                await splice(session, reader, writer)
        except StreamRefused as exc:
            self.refusals.append(exc)
            self._log.warning("the relay refused the stream: %s", exc)
        except (ClientError, OSError) as exc:
            self._log.warning("stream connection failed: %s", exc)
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def read_alarms(session: StreamSession) -> AsyncIterator[AlarmEvent]:
    """Alarm events from an accepted ALARM session, until the device ends it.

    Raises `StreamUnavailable` if the stream is not a sequence of alarm frames.
    """
    buffer = bytearray(session.initial)
    eof = session.peer_closed
    while True:
        while len(buffer) >= LENGTH_PREFIX:
            length = int.from_bytes(buffer[:LENGTH_PREFIX], "big")
            if not 0 < length <= ALARM_LIMITS.max_size:
                raise StreamUnavailable("bad alarm frame length")
            if len(buffer) < LENGTH_PREFIX + length:
                break
            payload = bytes(buffer[LENGTH_PREFIX : LENGTH_PREFIX + length])
            del buffer[: LENGTH_PREFIX + length]
            try:
                event = decode(payload, limits=ALARM_LIMITS, accept=(AlarmEvent,))
            except ProtocolError as exc:
                raise StreamUnavailable(f"bad alarm frame: {exc}") from exc
            assert isinstance(event, AlarmEvent)
            yield event
        if eof:
            return
        data = await session.reader.read(READ_SIZE)
        eof = not data
        buffer += data
        if len(buffer) > 2 * ALARM_LIMITS.max_size:
            raise StreamUnavailable("alarm stream overran its buffer")


async def talk(
    session: StreamSession,
    audio: bytes,
    *,
    pace: bool = True,
    linger: float = 0.5,
    on_audio: Callable[[bytes], None] | None = None,
) -> bytes:
    """Send µ-law `audio` in 20 ms frames (paced in real time) and return what came back.

    After the last frame, waits `linger` seconds for the device's audio, then
    ends the session (half-close).  `on_audio` sees each chunk as it arrives.
    """
    received = bytearray(session.initial)
    if on_audio is not None and session.initial:
        on_audio(session.initial)

    async def listen() -> None:
        while data := await session.reader.read(READ_SIZE):
            received.extend(data)
            if on_audio is not None:
                on_audio(data)

    listener = asyncio.create_task(listen())
    try:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for index, offset in enumerate(range(0, len(audio), TALK_FRAME_BYTES)):
            if pace:
                await asyncio.sleep(max(0.0, start + index * TALK_FRAME_SECONDS - loop.time()))
            session.writer.write(audio[offset : offset + TALK_FRAME_BYTES])
            await session.writer.drain()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(listener), linger)
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
    return bytes(received)
