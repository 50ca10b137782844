"""The sans-IO RTSP reader: requests, interleaved frames, limits, fuzz."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nvrshare.simulators.rtsp_messages import (
    CLOSED,
    NEED_DATA,
    InterleavedFrame,
    RtspReader,
    RtspRequest,
    RtspSyntaxError,
    format_response,
)


def test_request_split_across_reads_then_frame() -> None:
    reader = RtspReader()
    raw = b"OPTIONS rtsp://h/x RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: t\r\n\r\n$\x01\x00\x02ab"
    for i in range(len(raw) - 6):
        reader.receive_data(raw[i : i + 1])
        if i < raw.index(b"\r\n\r\n") + 3:
            assert reader.next_event() is NEED_DATA
    event = reader.next_event()
    assert isinstance(event, RtspRequest)
    assert event.method == "OPTIONS"
    assert event.cseq == "1"
    reader.receive_data(raw[len(raw) - 6 :])
    assert reader.next_event() == InterleavedFrame(channel=1, payload=b"ab")
    reader.receive_data(b"")
    assert reader.next_event() is CLOSED


def test_body_is_read_by_content_length() -> None:
    reader = RtspReader()
    reader.receive_data(b"SET_PARAMETER * RTSP/1.0\r\nCSeq: 3\r\nContent-Length: 4\r\n\r\nab")
    assert reader.next_event() is NEED_DATA
    reader.receive_data(b"cd")
    event = reader.next_event()
    assert isinstance(event, RtspRequest)
    assert event.body == b"abcd"


@pytest.mark.parametrize(
    "raw",
    [
        b"GET / HTTP/1.1\r\n\r\n",
        b"OPTIONS rtsp://h RTSP/1.0\r\nBad Header\r\n\r\n",
        b"OPTIONS rtsp://h RTSP/1.0\r\nContent-Length: -1\r\n\r\n",
        b"OPTIONS rtsp://h RTSP/1.0\r\nContent-Length: 999999\r\n\r\n",
        b"options rtsp://h RTSP/1.0\r\n\r\n",
        b"\xff\xfe RTSP/1.0\r\n\r\n",
    ],
)
def test_garbage_is_a_syntax_error(raw: bytes) -> None:
    reader = RtspReader()
    reader.receive_data(raw)
    with pytest.raises(RtspSyntaxError):
        reader.next_event()


def test_oversized_head_is_refused_before_it_completes() -> None:
    reader = RtspReader(max_head=100)
    reader.receive_data(b"OPTIONS rtsp://h RTSP/1.0\r\nX: " + b"a" * 200)
    with pytest.raises(RtspSyntaxError):
        reader.next_event()


@given(st.lists(st.binary(max_size=64), max_size=8))
def test_any_bytes_decode_or_raise_syntax_error(chunks: list[bytes]) -> None:
    reader = RtspReader(max_head=256, max_body=64)
    try:
        for chunk in [*chunks, b""]:
            reader.receive_data(chunk)
            for _ in range(100):
                event = reader.next_event()
                if event is NEED_DATA or event is CLOSED:
                    break
    except RtspSyntaxError:
        pass


def test_format_response() -> None:
    raw = format_response(200, cseq="7", headers={"Public": "OPTIONS"}, body=b"x")
    assert raw.startswith(b"RTSP/1.0 200 OK\r\nCSeq: 7\r\n")
    assert raw.endswith(b"Content-Length: 1\r\n\r\nx")
    with pytest.raises(ValueError):
        format_response(200, cseq="1", headers={"X": "a\r\nInjected: 1"})
