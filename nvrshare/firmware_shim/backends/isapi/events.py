"""ISAPI alert stream: the multipart framing and the eventType registry.

`AlertStreamParser` (sans-IO) splits `multipart/mixed` bytes into part bodies,
bounded in size.  `parse_alert` turns one `EventNotificationAlert` into an
`AlarmEvent` through `EVENT_PARSERS`, a registry keyed by the lower-cased
eventType, so a new vendor event is one entry plus one captured-payload test.
Unknown types become `AlarmKind.OTHER`; non-alert parts return None.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from nvrshare.firmware_shim.backends.isapi import xmlparse
from nvrshare.firmware_shim.errors import BadResponse
from nvrshare.firmware_shim.models import MAX_CHANNEL, AlarmEvent, AlarmKind

__all__ = ["EVENT_PARSERS", "AlertStreamParser", "boundary_of", "parse_alert", "register"]

MAX_PART = 64 * 1024
MAX_PART_HEADERS = 4096

EventParser = Callable[[ET.Element, str, datetime], AlarmEvent | None]
EVENT_PARSERS: dict[str, EventParser] = {}


def register(*event_types: str) -> Callable[[EventParser], EventParser]:
    """Register a parser for the given ISAPI eventType values (case-insensitive)."""

    def decorate(parser: EventParser) -> EventParser:
        for name in event_types:
            EVENT_PARSERS[name.lower()] = parser
        return parser

    return decorate


def _channel(root: ET.Element) -> int | None:
    for field in ("channelID", "dynChannelID", "videoInputChannelID"):
        value = xmlparse.int_of(root, field)
        if value is not None:
            return value if 1 <= value <= MAX_CHANNEL else None
    return None


def _active(root: ET.Element) -> bool:
    return (xmlparse.text_of(root, "eventState") or "").lower() == "active"


def _video_alarm(kind: AlarmKind) -> EventParser:
    def parse(root: ET.Element, event_type: str, at: datetime) -> AlarmEvent | None:
        return AlarmEvent(
            kind=kind, active=_active(root), at=at, channel=_channel(root), vendor_type=event_type
        )

    return parse


register("VMD", "motion", "motiondetection")(_video_alarm(AlarmKind.MOTION))
register("videoloss")(_video_alarm(AlarmKind.VIDEO_LOSS))
register("linedetection", "linecrossing")(_video_alarm(AlarmKind.LINE_CROSSING))
register("fielddetection", "regionEntrance", "regionExiting", "intrusion")(
    _video_alarm(AlarmKind.INTRUSION)
)
register("tamperdetection", "shelteralarm")(_video_alarm(AlarmKind.TAMPER))


@register("IO")
def _io_alarm(root: ET.Element, event_type: str, at: datetime) -> AlarmEvent | None:
    port = xmlparse.int_of(root, "inputIOPortID") or xmlparse.int_of(root, "dynInputIOPortID")
    return AlarmEvent(
        kind=AlarmKind.IO,
        active=_active(root),
        at=at,
        channel=_channel(root),
        input_port=port if port is not None and 1 <= port <= MAX_CHANNEL else None,
        vendor_type=event_type,
    )


def parse_alert(body: bytes, *, utc_offset: timedelta = timedelta(0)) -> AlarmEvent | None:
    """One part body -> an AlarmEvent, or None if it is not an EventNotificationAlert."""
    root = xmlparse.parse(body, limit=MAX_PART)
    if xmlparse.local_name(root) != "EventNotificationAlert":
        return None
    event_type = xmlparse.text_of(root, "eventType") or ""
    if not event_type or len(event_type) > 64:
        raise BadResponse("alert without a usable eventType")
    raw_time = xmlparse.text_of(root, "dateTime")
    try:
        at = xmlparse.parse_device_time(raw_time, utc_offset) if raw_time else None
    except BadResponse:
        at = None
    at = at or datetime.now(UTC)  # a bad device clock must not drop the alarm
    parser = EVENT_PARSERS.get(event_type.lower(), _video_alarm(AlarmKind.OTHER))
    return parser(root, event_type, at)


_BOUNDARY = re.compile(r'boundary="?([^";,\s]{1,70})"?', re.IGNORECASE)


def boundary_of(content_type: str) -> str:
    """The multipart boundary from a Content-Type header, or raise `BadResponse`."""
    if not content_type.lower().startswith("multipart/"):
        raise BadResponse(f"alert stream is {content_type[:60]!r}, not multipart")
    match = _BOUNDARY.search(content_type)
    if match is None:
        raise BadResponse("multipart alert stream without a boundary")
    return match.group(1)


class AlertStreamParser:
    """Split a multipart byte stream into part bodies (sans-IO, bounded).

    Parts with a Content-Length are cut at that length; parts without one end
    at the next boundary.  Anything that would need more than `max_part` bytes
    of buffer raises `BadResponse` (the caller reconnects).
    """

    def __init__(self, boundary: str, *, max_part: int = MAX_PART) -> None:
        self._delimiter = b"--" + boundary.encode("ascii")
        self._buffer = bytearray()
        self._max = max_part + MAX_PART_HEADERS

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return every part body completed by them."""
        self._buffer += data
        parts: list[bytes] = []
        while True:
            part = self._next()
            if part is None:
                break
            parts.append(part)
        if len(self._buffer) > self._max:
            raise BadResponse("alert stream part too large")
        return parts

    def _next(self) -> bytes | None:
        buf = self._buffer
        start = buf.find(self._delimiter)
        if start < 0:
            # Keep only a tail that could be the start of a delimiter.
            del buf[: max(0, len(buf) - len(self._delimiter))]
            return None
        head_end = buf.find(b"\r\n\r\n", start)
        if head_end < 0:
            if len(buf) - start > MAX_PART_HEADERS:
                raise BadResponse("alert part headers too large")
            return None
        headers = bytes(buf[start + len(self._delimiter) : head_end]).decode("latin-1")
        if len(headers) > MAX_PART_HEADERS:
            raise BadResponse("alert part headers too large")
        length = None
        for line in headers.split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                if not value.strip().isdigit() or len(value.strip()) > 7:
                    raise BadResponse("bad Content-Length in alert part")
                length = int(value.strip())
        body_start = head_end + 4
        if length is not None:
            if length > self._max:
                raise BadResponse("alert part too large")
            if len(buf) < body_start + length:
                return None
            body = bytes(buf[body_start : body_start + length])
            del buf[: body_start + length]
            return body
        end = buf.find(b"\r\n" + self._delimiter, body_start)
        if end < 0:
            return None
        body = bytes(buf[body_start:end])
        del buf[: end + 2]
        return body
