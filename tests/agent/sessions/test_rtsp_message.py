"""RtspReader: bounded incremental parsing of requests, responses and interleaved frames."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nvrshare.agent.sessions.errors import RtspProtocolError
from nvrshare.agent.sessions.rtsp_message import (
    NEED_DATA,
    PEER_CLOSED,
    InterleavedFrame,
    ReaderLimits,
    RtspReader,
    RtspRequest,
    RtspResponse,
)

DESCRIBE = b"DESCRIBE rtsp://h/live/1/main RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\n\r\n"


def events(reader: RtspReader) -> list[object]:
    out = []
    while (event := reader.next_event()) is not NEED_DATA:
        out.append(event)
        if event is PEER_CLOSED:
            break
    return out


def test_request_response_and_frames_in_one_stream() -> None:
    reader = RtspReader()
    frame = b"$\x00\x00\x03abc"
    response = b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: 4\r\n\r\nv=0\n"
    reader.receive_data(DESCRIBE + frame + response)
    got = events(reader)
    assert isinstance(got[0], RtspRequest)
    assert got[0].method == "DESCRIBE"
    assert got[0].header("cseq") == "2"
    assert got[1] == InterleavedFrame(frame)
    assert got[1].channel == 0
    assert got[1].payload == b"abc"
    assert isinstance(got[2], RtspResponse)
    assert got[2].body == b"v=0\n"


def test_byte_by_byte_and_clean_eof() -> None:
    reader = RtspReader()
    out: list[object] = []
    for byte in DESCRIBE:
        reader.receive_data(bytes([byte]))
        out.extend(events(reader))
    reader.receive_data(b"")
    out.extend(events(reader))
    assert len(out) == 2
    assert out[-1] is PEER_CLOSED


def test_bare_lf_heads_are_tolerated() -> None:
    reader = RtspReader()
    reader.receive_data(b"RTSP/1.0 200 OK\nCSeq: 1\n\n")
    (event,) = events(reader)
    assert isinstance(event, RtspResponse)
    assert event.status == 200


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n\r\n",
        b"DESCRIBE  rtsp://h/ RTSP/1.0\r\n\r\n",
        b"DESCRIBE rtsp://h/ RTSP/1.0\r\nno colon\r\n\r\n",
        b"DESCRIBE rtsp://h/ RTSP/1.0\r\nX: a\x01b\r\n\r\n",
        b"DESCRIBE rtsp://h/ RTSP/1.0\r\nContent-Length: -1\r\n\r\n",
        b"DESCRIBE rtsp://h/ RTSP/1.0\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"DESCRIBE rtsp://h/ RTSP/1.0\r\nContent-Length: 999999\r\n\r\n",
        b"RTSP/1.0 2000 OK\r\n\r\n",
        b"X" * 9000,
        b"DESCRIBE rtsp://h/ RTSP/1.0\r\n" + b"A: b\r\n" * 40 + b"\r\n",
    ],
)
def test_malformed_or_oversized_input_is_a_protocol_error(data: bytes) -> None:
    reader = RtspReader(ReaderLimits(max_body=1024))
    reader.receive_data(data)
    with pytest.raises(RtspProtocolError):
        events(reader)


def test_eof_inside_a_message_is_an_error() -> None:
    reader = RtspReader()
    reader.receive_data(b"$\x00\x00\x10ab")
    reader.receive_data(b"")
    with pytest.raises(RtspProtocolError):
        reader.next_event()


def test_serialisation_round_trips() -> None:
    request = RtspRequest(
        method="GET_PARAMETER", uri="rtsp://h/x", headers=(("CSeq", "9"),), body=b"ping"
    )
    reader = RtspReader()
    reader.receive_data(request.to_bytes())
    assert events(reader) == [request]


@given(st.lists(st.binary(max_size=200), max_size=8))
def test_any_bytes_parse_or_raise_the_protocol_error(chunks: list[bytes]) -> None:
    reader = RtspReader(ReaderLimits(max_head=512, max_body=512))
    try:
        for chunk in [*chunks, b""]:
            reader.receive_data(chunk)
            events(reader)
    except RtspProtocolError:
        pass
