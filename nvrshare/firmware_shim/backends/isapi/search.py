"""ISAPI recordings search: the CMSearchDescription we send, the matches we read."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from nvrshare.firmware_shim.backends.isapi import xmlparse
from nvrshare.firmware_shim.errors import BadResponse

__all__ = ["SEARCH_PATH", "Match", "device_time", "parse_matches", "search_body", "track_time"]

SEARCH_PATH = "/ISAPI/ContentMgmt/search"
Match = tuple[datetime, datetime, str]  # start, end (UTC), playbackURI as sent


def device_time(when: datetime, offset: timedelta) -> str:
    """A UTC instant as the device-local time ISAPI expects (with the customary Z)."""
    return (when.astimezone(UTC) + offset).strftime("%Y-%m-%dT%H:%M:%SZ")


def track_time(when: datetime, offset: timedelta) -> str:
    """The compact device-local form used in playback URIs."""
    return (when.astimezone(UTC) + offset).strftime("%Y%m%dT%H%M%SZ")


def search_body(
    search_id: str,
    track: int,
    start: datetime,
    end: datetime,
    *,
    offset: timedelta,
    count: int,
    position: int,
) -> str:
    """One page of a search; both spellings of the position (firmwares read one or the other)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<CMSearchDescription version="2.0" xmlns="http://www.hikvision.com/ver20/XMLSchema">'
        f"<searchID>{search_id}</searchID>"
        f"<trackList><trackID>{track}</trackID></trackList>"
        "<timeSpanList><timeSpan>"
        f"<startTime>{device_time(start, offset)}</startTime>"
        f"<endTime>{device_time(end, offset)}</endTime>"
        "</timeSpan></timeSpanList>"
        f"<maxResults>{count}</maxResults>"
        f"<searchResultPostion>{position}</searchResultPostion>"
        f"<searchResultPosition>{position}</searchResultPosition>"
        "<metadataList><metadataDescriptor>//recordType.meta.std-cgi.com</metadataDescriptor>"
        "</metadataList></CMSearchDescription>"
    )


def parse_matches(
    root: ET.Element, track: int, offset: timedelta, *, limit: int
) -> tuple[list[Match], int, bool]:
    """(matches for `track`, how many items the page held, whether the device has MORE)."""
    items = xmlparse.children(root, "searchMatchItem")[:limit]
    matches: list[Match] = []
    for item in items:
        found_track = xmlparse.int_of(item, "trackID")
        if found_track is not None and found_track != track:
            continue
        span = next(iter(xmlparse.children(item, "timeSpan")), None)
        if span is None:
            raise BadResponse("searchMatchItem without timeSpan")
        start = xmlparse.parse_device_time(xmlparse.text_of(span, "startTime") or "", offset)
        end = xmlparse.parse_device_time(xmlparse.text_of(span, "endTime") or "", offset)
        if end <= start:
            continue
        uri = next((el.text or "" for el in xmlparse.children(item, "playbackURI")), "")
        matches.append((start, end, uri.strip()[:2048]))
    more = (xmlparse.text_of(root, "responseStatusStrg") or "").upper() == "MORE"
    return matches, len(items), more
