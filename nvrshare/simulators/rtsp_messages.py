"""RTSP/1.0 requests and responses on a TCP byte stream (RFC 2326), sans-IO.

`RtspReader.receive_data()` takes bytes (b"" = EOF); `next_event()` returns an
`RtspRequest`, an `InterleavedFrame` (RTCP from the client, RFC 2326 §10.12),
`NEED_DATA`, or `CLOSED`; anything malformed or over the limits raises
`RtspSyntaxError`, after which the connection should answer 400 and close.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = [
    "CLOSED",
    "NEED_DATA",
    "InterleavedFrame",
    "RtspReader",
    "RtspRequest",
    "RtspSyntaxError",
    "format_response",
]

METHODS = frozenset(
    {"OPTIONS", "DESCRIBE", "SETUP", "PLAY", "PAUSE", "TEARDOWN", "GET_PARAMETER",
     "SET_PARAMETER", "ANNOUNCE", "RECORD", "REDIRECT"}
)
REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Request Entity Too Large",
    454: "Session Not Found",
    455: "Method Not Valid in This State",
    457: "Invalid Range",
    459: "Aggregate Operation Not Allowed",
    461: "Unsupported Transport",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "RTSP Version Not Supported",
}


class RtspSyntaxError(Exception):
    """The peer sent bytes that are not a valid (or acceptably small) RTSP message."""


class _Sentinel(enum.Enum):
    NEED_DATA = "need_data"
    CLOSED = "closed"


NEED_DATA = _Sentinel.NEED_DATA
CLOSED = _Sentinel.CLOSED


@dataclass(frozen=True, kw_only=True, slots=True)
class RtspRequest:
    method: str
    uri: str
    version: str
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names
    body: bytes = b""

    @property
    def cseq(self) -> str | None:
        return self.headers.get("cseq")


@dataclass(frozen=True, kw_only=True, slots=True)
class InterleavedFrame:
    channel: int
    payload: bytes


class RtspReader:
    """Incremental, bounded RTSP request reader."""

    def __init__(self, *, max_head: int = 8192, max_body: int = 16384, max_headers: int = 64):
        self._buffer = bytearray()
        self._eof = False
        self.max_head = max_head
        self.max_body = max_body
        self.max_headers = max_headers

    def receive_data(self, data: bytes) -> None:
        if not data:
            self._eof = True
        else:
            self._buffer += data

    def next_event(self) -> RtspRequest | InterleavedFrame | _Sentinel:
        buf = self._buffer
        # Tolerate stray blank lines between messages (some clients send CRLF keep-alives).
        while buf[:2] == b"\r\n":
            del buf[:2]
        if not buf:
            return CLOSED if self._eof else NEED_DATA
        if buf[0] == 0x24:
            if len(buf) < 4:
                return self._need()
            size = int.from_bytes(buf[2:4], "big")
            if len(buf) < 4 + size:
                return self._need()
            frame = InterleavedFrame(channel=buf[1], payload=bytes(buf[4 : 4 + size]))
            del buf[: 4 + size]
            return frame
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > self.max_head:
                raise RtspSyntaxError("request head too large")
            return self._need()
        if end > self.max_head:
            raise RtspSyntaxError("request head too large")
        request = self._parse_head(bytes(buf[:end]))
        length_text = request.headers.get("content-length", "0")
        if not length_text.isdigit() or len(length_text) > 9:
            raise RtspSyntaxError("bad Content-Length")
        length = int(length_text)
        if length > self.max_body:
            raise RtspSyntaxError("body too large")
        if len(buf) < end + 4 + length:
            return self._need()
        body = bytes(buf[end + 4 : end + 4 + length])
        del buf[: end + 4 + length]
        return RtspRequest(
            method=request.method,
            uri=request.uri,
            version=request.version,
            headers=request.headers,
            body=body,
        )

    def _need(self) -> _Sentinel:
        if self._eof:
            raise RtspSyntaxError("connection closed mid-message")
        return NEED_DATA

    def _parse_head(self, head: bytes) -> RtspRequest:
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError:
            raise RtspSyntaxError("request head is not UTF-8") from None
        lines = text.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            raise RtspSyntaxError("bad request line")
        method, uri, version = parts
        if not _is_token(method) or not uri or not version.startswith("RTSP/"):
            raise RtspSyntaxError("bad request line")
        if any(ord(c) < 0x21 or ord(c) == 0x7F for c in uri):
            raise RtspSyntaxError("bad request URI")
        if len(lines) - 1 > self.max_headers:
            raise RtspSyntaxError("too many headers")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip() or any(c in name for c in " \t"):
                raise RtspSyntaxError("bad header line")
            if any(ord(c) < 0x20 and c != "\t" for c in value):
                raise RtspSyntaxError("control character in header")
            headers[name.lower()] = value.strip()
        return RtspRequest(method=method, uri=uri, version=version, headers=headers)


def _is_token(method: str) -> bool:
    return 0 < len(method) <= 32 and all(c.isascii() and (c.isupper() or c == "_") for c in method)


def format_response(
    status: int,
    *,
    cseq: str | None,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> bytes:
    """Serialise an RTSP/1.0 response."""
    lines = [f"RTSP/1.0 {status} {REASONS.get(status, 'Unknown')}"]
    if cseq is not None and cseq.isdigit() and len(cseq) <= 10:
        lines.append(f"CSeq: {cseq}")
    lines.append("Server: nvrshare-sim/1.0")
    for name, value in (headers or {}).items():
        if "\r" in value or "\n" in value:
            raise ValueError("header value with a line break")
        lines.append(f"{name}: {value}")
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body
