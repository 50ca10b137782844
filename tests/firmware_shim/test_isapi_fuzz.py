"""Hostile devices: XML documents with the right names and arbitrary contents.

Whatever a device sends, the parsers return a value or raise `BadResponse`;
nothing else escapes.
"""

from __future__ import annotations

from datetime import timedelta
from xml.sax.saxutils import escape

from hypothesis import given
from hypothesis import strategies as st

from nvrshare.firmware_shim import BadResponse
from nvrshare.firmware_shim.backends.isapi import search, xmlparse
from nvrshare.firmware_shim.backends.isapi.events import parse_alert

NAMES = [
    "searchMatchItem", "trackID", "timeSpan", "startTime", "endTime", "playbackURI",
    "responseStatusStrg", "mediaSegmentDescriptor", "eventType", "eventState", "channelID",
    "dynChannelID", "inputIOPortID", "dateTime", "EventNotificationAlert", "matchList",
]
TEXTS = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), min_codepoint=32), max_size=40),
    st.sampled_from(
        ["101", "0", "-5", "999999999999", "2026-01-01T00:00:00Z", "2026-13-45T99:99:99",
         "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59", "1969-12-31T23:59:59Z",
         "MORE", "OK", "VMD", "IO", "active", "rtsp://x/Streaming/tracks/101/?a=b", ""]
    ),
)


@st.composite
def documents(draw: st.DrawFn, root: str) -> bytes:
    def element(depth: int) -> str:
        name = draw(st.sampled_from(NAMES))
        if depth >= 3 or draw(st.booleans()):
            return f"<{name}>{escape(draw(TEXTS))}</{name}>"
        children = "".join(element(depth + 1) for _ in range(draw(st.integers(0, 4))))
        return f"<{name}>{children}</{name}>"

    body = "".join(element(0) for _ in range(draw(st.integers(0, 6))))
    return f'<{root} xmlns="http://www.hikvision.com/ver20/XMLSchema">{body}</{root}>'.encode()


@given(documents("CMSearchResult"), st.integers(-720, 720))
def test_search_results_parse_or_bad_response(body: bytes, minutes: int) -> None:
    try:
        root = xmlparse.parse(body)
        matches, seen, _more = search.parse_matches(
            root, 101, timedelta(minutes=minutes), limit=50
        )
    except BadResponse:
        return
    assert len(matches) <= seen <= 50
    assert all(start < end for start, end, _uri in matches)


@given(documents("EventNotificationAlert"))
def test_alerts_parse_or_bad_response(body: bytes) -> None:
    try:
        event = parse_alert(body)
    except BadResponse:
        return
    assert event is None or event.at.tzinfo is not None


def test_out_of_range_device_times_are_bad_responses() -> None:
    for text in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59", "1900-01-01T00:00:00Z"):
        for hours in (-12, 0, 12):
            try:
                xmlparse.parse_device_time(text, timedelta(hours=hours))
            except BadResponse:
                continue
            raise AssertionError(f"{text} at {hours:+}h was accepted")
