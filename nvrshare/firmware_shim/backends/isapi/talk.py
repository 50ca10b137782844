"""ISAPI two-way audio: open a session, stream G.711 up, read the microphone down.

The speaker direction is one long-lived `PUT …/audioData` whose body is fed
from a bounded queue (so a slow device pushes back on `write`); the microphone
is a long-lived `GET …/audioData`, opened on the first `read`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp

from nvrshare.firmware_shim.backends.isapi.http import IsapiHttp, map_errors
from nvrshare.firmware_shim.errors import DeviceError, NotFound, ShimError
from nvrshare.firmware_shim.interface import TalkChannel

__all__ = ["IsapiTalkChannel"]

QUEUE_CHUNKS = 64
CHUNK = 160  # 20 ms at 8 kHz, the size devices expect per write
MAX_READ = 4096


class IsapiTalkChannel(TalkChannel):
    """An open talk session on one channel; create with `IsapiTalkChannel.start`."""

    def __init__(
        self,
        http: IsapiHttp,
        channel: int,
        session_id: str,
        *,
        on_close: Callable[[int], Awaitable[None]],
        logger: logging.Logger,
    ) -> None:
        self._http = http
        self._channel = channel
        self._query = f"?sessionId={session_id}" if session_id else ""
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_CHUNKS)
        self._on_close = on_close
        self._log = logger
        self._upload: asyncio.Task[None] | None = None
        self._mic: contextlib.AsyncExitStack | None = None
        self._mic_response: aiohttp.ClientResponse | None = None
        self._closed = False
        self._failure: ShimError | None = None

    @property
    def _path(self) -> str:
        return f"/ISAPI/System/TwoWayAudio/channels/{self._channel}/audioData{self._query}"

    def start(self) -> None:
        self._upload = asyncio.create_task(
            self._run_upload(), name=f"isapi-talk[{self._channel}].speaker"
        )

    async def _body(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self._queue.get()
            if chunk is None:
                return
            yield chunk

    async def _run_upload(self) -> None:
        try:
            async with self._http.stream(
                "PUT",
                self._path,
                read_timeout=None,
                data=self._body(),
                headers={"Content-Type": "application/octet-stream"},
            ):
                pass
        except ShimError as exc:
            self._failure = exc
            self._log.info("talk[%d]: speaker stream ended: %s", self._channel, exc)

    async def write(self, frames: bytes) -> None:
        if self._closed:
            raise NotFound("talk session is closed")
        if self._failure is not None:
            raise self._failure
        view = memoryview(bytes(frames))
        for offset in range(0, len(view), CHUNK):
            await self._queue.put(bytes(view[offset : offset + CHUNK]))

    async def read(self) -> bytes:
        if self._closed:
            return b""
        if self._mic_response is None:
            stack = contextlib.AsyncExitStack()
            self._mic_response = await stack.enter_async_context(
                self._http.stream("GET", self._path, read_timeout=self._http.timeout)
            )
            self._mic = stack
        with map_errors("talk microphone"):
            try:
                return await self._mic_response.content.read(MAX_READ)
            except aiohttp.ClientPayloadError:
                return b""

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._upload is not None:
                with contextlib.suppress(asyncio.QueueFull):
                    self._queue.put_nowait(None)
                try:
                    async with asyncio.timeout(2.0):
                        await asyncio.shield(self._upload)
                except TimeoutError:
                    self._upload.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._upload
            if self._mic is not None:
                with contextlib.suppress(ShimError, aiohttp.ClientError, OSError):
                    await self._mic.aclose()
        finally:
            try:
                await self._on_close(self._channel)
            except DeviceError as exc:
                self._log.info("talk[%d]: close failed: %s", self._channel, exc)
