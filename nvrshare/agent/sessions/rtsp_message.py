"""RTSP/1.0 messages and a bounded, incremental reader for one direction of a connection.

Theory of operation: an RTSP-over-TCP connection carries three kinds of
things back to back (RFC 2326 §10.12): requests, responses, and `$`-framed
interleaved binary data (`$`, channel, 2-byte length, payload).  `RtspReader`
is fed bytes with `receive_data` (b"" = EOF) and yields one event at a time
from `next_event`: an `RtspRequest`, an `RtspResponse`, an `InterleavedFrame`,
`NEED_DATA`, or `PEER_CLOSED`.  Heads are bounded (size and header count) and
bodies are bounded, so a hostile peer can make the reader hold at most one
head + one body, or one interleaved frame; anything malformed raises
`RtspProtocolError`, the only exception `next_event` raises for bad input.
Nothing here does I/O.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field, replace

from nvrshare.agent.sessions.errors import RtspProtocolError

__all__ = [
    "NEED_DATA",
    "PEER_CLOSED",
    "Headers",
    "InterleavedFrame",
    "ReaderLimits",
    "RtspEvent",
    "RtspReader",
    "RtspRequest",
    "RtspResponse",
    "Sentinel",
]

RTSP_VERSION = "RTSP/1.0"
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_URI = re.compile(r"[\x21-\x7e]+")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
_REASON = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


class Sentinel(enum.Enum):
    NEED_DATA = "need_data"
    PEER_CLOSED = "peer_closed"


NEED_DATA = Sentinel.NEED_DATA
PEER_CLOSED = Sentinel.PEER_CLOSED

Headers = tuple[tuple[str, str], ...]


def _get(headers: Headers, name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers:
        if key.lower() == lowered:
            return value
    return None


def _serialize(start_line: str, headers: Headers, body: bytes) -> bytes:
    lines = [start_line]
    lines.extend(f"{k}: {v}" for k, v in headers if k.lower() != "content-length")
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass(frozen=True, kw_only=True, slots=True)
class RtspRequest:
    """One request; `headers` keep their order and spelling, Content-Length is derived."""

    method: str
    uri: str
    headers: Headers = ()
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return _get(self.headers, name)

    def with_headers(self, headers: Headers) -> RtspRequest:
        return replace(self, headers=headers)

    def to_bytes(self) -> bytes:
        return _serialize(f"{self.method} {self.uri} {RTSP_VERSION}", self.headers, self.body)


@dataclass(frozen=True, kw_only=True, slots=True)
class RtspResponse:
    """One response."""

    status: int
    reason: str
    headers: Headers = ()
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return _get(self.headers, name)

    def header_values(self, name: str) -> list[str]:
        lowered = name.lower()
        return [v for k, v in self.headers if k.lower() == lowered]

    def to_bytes(self) -> bytes:
        return _serialize(f"{RTSP_VERSION} {self.status} {self.reason}", self.headers, self.body)


@dataclass(frozen=True, slots=True)
class InterleavedFrame:
    """A `$`-framed binary packet, kept whole (header included) for pass-through."""

    raw: bytes = field(repr=False)

    @property
    def channel(self) -> int:
        return self.raw[1]

    @property
    def payload(self) -> bytes:
        return self.raw[4:]


RtspEvent = RtspRequest | RtspResponse | InterleavedFrame | Sentinel


@dataclass(frozen=True, kw_only=True, slots=True)
class ReaderLimits:
    """Bounds applied while reading; a peer exceeding one is a protocol error."""

    max_head: int = 8 * 1024
    max_headers: int = 32
    max_body: int = 64 * 1024


def _parse_headers(lines: list[str], limits: ReaderLimits) -> Headers:
    if len(lines) > limits.max_headers:
        raise RtspProtocolError(f"more than {limits.max_headers} headers")
    headers: list[tuple[str, str]] = []
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.fullmatch(name):
            raise RtspProtocolError("malformed header line")
        value = value.strip(" \t")
        if not _HEADER_VALUE.fullmatch(value):
            raise RtspProtocolError(f"control characters in header {name!r}")
        headers.append((name, value))
    return tuple(headers)


def _content_length(headers: Headers, limits: ReaderLimits) -> int:
    values = [v for k, v in headers if k.lower() == "content-length"]
    if not values:
        return 0
    if len(set(values)) != 1 or not values[0].isdigit() or len(values[0]) > 9:
        raise RtspProtocolError("bad Content-Length")
    length = int(values[0])
    if length > limits.max_body:
        raise RtspProtocolError(f"body of {length} bytes exceeds {limits.max_body}")
    return length


class RtspReader:
    """Incremental parser for what one peer sends; see the module docstring."""

    def __init__(self, limits: ReaderLimits | None = None) -> None:
        self.limits = limits or ReaderLimits()
        self._buffer = bytearray()
        self._eof = False
        self._pending: tuple[RtspRequest | RtspResponse, int] | None = None

    def receive_data(self, data: bytes) -> None:
        """Feed bytes as they arrive; b"" means the peer closed its side."""
        if self._eof and data:
            raise RtspProtocolError("data after end of stream")
        if not data:
            self._eof = True
        self._buffer += data

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def next_event(self) -> RtspEvent:
        """The next complete event, `NEED_DATA`, or `PEER_CLOSED` at a clean EOF."""
        if self._pending is not None:
            return self._finish_body()
        if not self._buffer:
            return PEER_CLOSED if self._eof else NEED_DATA
        if self._buffer[0] == 0x24:  # '$'
            return self._interleaved()
        return self._head()

    def _interleaved(self) -> RtspEvent:
        if len(self._buffer) < 4:
            return self._need()
        size = 4 + int.from_bytes(self._buffer[2:4], "big")
        if len(self._buffer) < size:
            return self._need()
        raw = bytes(self._buffer[:size])
        del self._buffer[:size]
        return InterleavedFrame(raw)

    def _need(self) -> Sentinel:
        if self._eof:
            raise RtspProtocolError("stream ended inside a message")
        return NEED_DATA

    def _head(self) -> RtspEvent:
        # Tolerate bare-LF line ends (some camera firmwares send them).
        end = self._buffer.find(b"\r\n\r\n", 0, self.limits.max_head + 4)
        skip = 4
        lf_end = self._buffer.find(b"\n\n", 0, self.limits.max_head + 2)
        if lf_end != -1 and (end == -1 or lf_end < end):
            end, skip = lf_end, 2
        if end == -1:
            if len(self._buffer) > self.limits.max_head:
                raise RtspProtocolError(f"message head exceeds {self.limits.max_head} bytes")
            return self._need()
        if end > self.limits.max_head:
            raise RtspProtocolError(f"message head exceeds {self.limits.max_head} bytes")
        head = bytes(self._buffer[:end]).decode("latin-1")
        del self._buffer[: end + skip]
        lines = head.replace("\r\n", "\n").split("\n")
        message = self._start_line(lines[0], _parse_headers(lines[1:], self.limits))
        length = _content_length(message.headers, self.limits)
        headers = tuple((k, v) for k, v in message.headers if k.lower() != "content-length")
        self._pending = (replace(message, headers=headers), length)
        return self._finish_body()

    def _start_line(self, line: str, headers: Headers) -> RtspRequest | RtspResponse:
        parts = line.split(" ", 2)
        if len(parts) != 3:
            raise RtspProtocolError("malformed start line")
        if parts[0] == RTSP_VERSION:
            code, reason = parts[1], parts[2]
            if len(code) != 3 or not code.isdigit() or not _REASON.fullmatch(reason):
                raise RtspProtocolError("malformed status line")
            return RtspResponse(status=int(code), reason=reason, headers=headers)
        method, uri, version = parts
        if version != RTSP_VERSION:
            raise RtspProtocolError("not RTSP/1.0")
        if not _TOKEN.fullmatch(method) or not _URI.fullmatch(uri):
            raise RtspProtocolError("malformed request line")
        return RtspRequest(method=method, uri=uri, headers=headers)

    def _finish_body(self) -> RtspEvent:
        assert self._pending is not None
        message, length = self._pending
        if len(self._buffer) < length:
            return self._need()
        body = bytes(self._buffer[:length])
        del self._buffer[:length]
        self._pending = None
        return replace(message, body=body) if body else message
