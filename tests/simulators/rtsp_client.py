"""A minimal raw RTSP-over-TCP client for tests that need to see the wire."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Callable

from nvrshare.simulators.digest import parse_digest_header
from tests.simulators.test_digest import answer


class RawRtsp:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.cseq = reader, writer, 0
        self.frames: list[tuple[int, bytes]] = []
        self.auth: tuple[str, str] | None = None
        self.challenge: str | None = None
        self.timeout = 5.0  # per response; raise it for answers that cross a busy chain

    @classmethod
    async def connect(cls, port: int) -> RawRtsp:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()

    async def request(
        self, method: str, uri: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        self.cseq += 1
        lines = [f"{method} {uri} RTSP/1.0", f"CSeq: {self.cseq}"]
        if self.auth and self.challenge:
            lines.append(
                "Authorization: "
                + answer(self.challenge, method=method, uri=uri, user=self.auth[0],
                         password=self.auth[1])
            )
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        status, response_headers, body = await self.response()
        if status == 401 and self.auth and not self.challenge:
            self.challenge = response_headers["www-authenticate"]
            assert parse_digest_header(self.challenge) is not None
            self.cseq -= 1
            return await self.request(method, uri, headers)
        return status, response_headers, body

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        async with asyncio.timeout(self.timeout):
            while True:
                first = await self.reader.readexactly(1)
                if first == b"$":
                    await self._frame()
                    continue
                head = first + await self.reader.readuntil(b"\r\n\r\n")
                break
        lines = head.decode().split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.lower()] = value.strip()
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers, body

    async def _frame(self) -> None:
        channel, size = struct.unpack("!BH", await self.reader.readexactly(3))
        self.frames.append((channel, await self.reader.readexactly(size)))

    async def read_frames(
        self,
        seconds: float,
        *,
        until_bye: bool = False,
        until: Callable[[list[tuple[int, bytes]]], bool] | None = None,
    ) -> list[tuple[int, bytes]]:
        """Collect interleaved frames for `seconds`.

        Stops early at EOF, at an RTCP BYE (`until_bye`), or once `until(frames)` holds.
        """
        self.frames = []
        deadline = asyncio.get_running_loop().time() + seconds
        try:
            while True:
                # Only the wait for a frame's first byte is timed: a frame that has begun
                # is read whole, so the next call does not start in the middle of one.
                async with asyncio.timeout_at(deadline):
                    first = await self.reader.readexactly(1)
                assert first == b"$", first
                await self._frame()
                channel, payload = self.frames[-1]
                if until_bye and channel % 2 and len(payload) >= 8 and payload[-7] == 203:
                    break
                if until is not None and until(self.frames):
                    break
        except (TimeoutError, asyncio.IncompleteReadError):
            pass
        return self.frames


def video_timestamps(frames: list[tuple[int, bytes]], channel: int = 0) -> list[int]:
    """The RTP timestamp of each video frame (the packet that ends it has the marker bit)."""
    return [
        struct.unpack("!I", payload[4:8])[0]
        for number, payload in frames
        if number == channel and len(payload) >= 12 and payload[1] & 0x80
    ]
