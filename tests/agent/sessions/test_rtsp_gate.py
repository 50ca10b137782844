"""The RTSP gate's rules and conversation, in memory: app ⇄ GateExchange ⇄ scripted recorder."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nvrshare.agent.sessions.rtsp_exchange import GateExchange
from nvrshare.agent.sessions.rtsp_gate import GatePolicy, live_path, playback_path
from nvrshare.agent.sessions.rtsp_message import (
    NEED_DATA,
    InterleavedFrame,
    RtspReader,
    RtspRequest,
    RtspResponse,
)
from nvrshare.agent.sessions.rtsp_rewrite import UrlMapper
from nvrshare.protocol.permissions import TimeWindow

RECORDER = "rtsp://10.1.2.3:554/Streaming/Channels/101"
PUBLIC = "rtsp://127.0.0.1:8554/live/1/main"
T0 = 1_790_000_000  # 2026-09-21T14:13:20Z
SDP = (
    b"v=0\r\no=admin 1 1 IN IP4 10.1.2.3\r\ns=Session\r\nu=http://10.1.2.3/\r\n"
    b"c=IN IP4 10.1.2.3\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\n"
    b"a=control:rtsp://10.1.2.3:554/Streaming/Channels/101/trackID=1\r\n"
)


def parse_all(data: bytes) -> list[object]:
    reader = RtspReader()
    if data:
        reader.receive_data(data)
    out = []
    while (event := reader.next_event()) is not NEED_DATA:
        out.append(event)
    return out


def req(method: str, uri: str = PUBLIC, cseq: int = 1, *headers: tuple[str, str]) -> bytes:
    return RtspRequest(method=method, uri=uri, headers=(("CSeq", str(cseq)), *headers)).to_bytes()


def live_gate(**kwargs: str) -> GateExchange:
    policy = GatePolicy(channel=1, public_path=live_path(1))
    return GateExchange(policy, upstream_url=RECORDER, **kwargs)


def roundtrip(gate: GateExchange, request: bytes, answer: RtspResponse | None) -> list[object]:
    """Send one app request; if it went upstream, answer it with `answer` (CSeq filled in)."""
    gate.client_data(request)
    upstream = parse_all(gate.data_for_upstream())
    if upstream and answer is not None:
        (sent,) = upstream
        assert isinstance(sent, RtspRequest)
        headers = (("CSeq", sent.header("CSeq") or ""), *answer.headers)
        gate.upstream_data(
            RtspResponse(
                status=answer.status, reason=answer.reason, headers=headers, body=answer.body
            ).to_bytes()
        )
    return parse_all(gate.data_for_client())


def test_describe_is_rewritten_both_ways_and_hides_the_recorder() -> None:
    gate = live_gate()
    gate.client_data(req("DESCRIBE", PUBLIC, 7, ("Authorization", "Basic eDp5"), ("X-Evil", "1")))
    (sent,) = parse_all(gate.data_for_upstream())
    assert isinstance(sent, RtspRequest)
    assert sent.uri == RECORDER
    assert sent.header("Authorization") is None
    assert sent.header("X-Evil") is None
    answer = RtspResponse(
        status=200,
        reason="OK",
        headers=(
            ("CSeq", sent.header("CSeq") or ""),
            ("Content-Type", "application/sdp"),
            ("Content-Base", RECORDER + "/"),
            ("Server", "Hikvision 4.0"),
        ),
        body=SDP,
    )
    gate.upstream_data(answer.to_bytes())
    (response,) = parse_all(gate.data_for_client())
    assert isinstance(response, RtspResponse)
    assert response.header("CSeq") == "7"
    assert response.header("Content-Base") == PUBLIC + "/"
    assert response.header("Server") is None
    text = response.to_bytes().decode()
    assert "10.1.2.3" not in text
    assert f"a=control:{PUBLIC}/trackID=1" in text
    assert "u=" not in text


def test_digest_challenge_is_answered_by_the_gate() -> None:
    gate = live_gate(username="admin", password="s3cret")
    gate.client_data(req("OPTIONS", PUBLIC, 1))
    (first,) = parse_all(gate.data_for_upstream())
    assert isinstance(first, RtspRequest)
    challenge = 'Digest realm="cam", nonce="abc123", qop="auth"'
    gate.upstream_data(
        RtspResponse(
            status=401,
            reason="Unauthorized",
            headers=(
                ("CSeq", first.header("CSeq") or ""),
                ("WWW-Authenticate", 'Basic realm="cam"'),
                ("WWW-Authenticate", challenge),
            ),
        ).to_bytes()
    )
    assert gate.data_for_client() == b""  # the app never sees the challenge
    (second,) = parse_all(gate.data_for_upstream())
    assert isinstance(second, RtspRequest)
    auth = second.header("Authorization") or ""
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', auth[len("Digest ") :]))
    md5 = lambda s: hashlib.md5(s.encode()).hexdigest()  # noqa: E731
    ha1, ha2 = md5("admin:cam:s3cret"), md5(f"OPTIONS:{RECORDER}")
    expected = md5(f"{ha1}:abc123:{params['nc']}:{params['cnonce']}:auth:{ha2}")
    assert params["response"] == expected
    assert second.header("CSeq") != first.header("CSeq")
    gate.upstream_data(
        RtspResponse(
            status=200,
            reason="OK",
            headers=(("CSeq", second.header("CSeq") or ""), ("Public", "DESCRIBE, SETUP")),
        ).to_bytes()
    )
    (response,) = parse_all(gate.data_for_client())
    assert isinstance(response, RtspResponse)
    assert (response.status, response.header("CSeq")) == (200, "1")


def test_wrong_recorder_credentials_become_bad_gateway() -> None:
    gate = live_gate(username="admin", password="wrong")
    unauthorized = RtspResponse(
        status=401,
        reason="Unauthorized",
        headers=(("WWW-Authenticate", 'Digest realm="r", nonce="n"'),),
    )
    assert roundtrip(gate, req("DESCRIBE"), unauthorized) == []
    (again,) = parse_all(gate.data_for_upstream())
    assert isinstance(again, RtspRequest)
    gate.upstream_data(
        RtspResponse(
            status=401, reason="Unauthorized", headers=(("CSeq", again.header("CSeq") or ""),)
        ).to_bytes()
    )
    (response,) = parse_all(gate.data_for_client())
    assert isinstance(response, RtspResponse)
    assert response.status == 502


@pytest.mark.parametrize(
    ("method", "uri", "headers", "status"),
    [
        ("DESCRIBE", "rtsp://127.0.0.1:8554/live/2/main", (), 403),
        ("DESCRIBE", "rtsp://127.0.0.1:8554/live/1/sub", (), 403),
        ("DESCRIBE", "rtsp://127.0.0.1:8554/playback/1", (), 403),
        ("DESCRIBE", "rtsp://127.0.0.1:8554/Streaming/Channels/201", (), 404),
        ("DESCRIBE", PUBLIC + "/../../2/main", (), 404),
        ("DESCRIBE", PUBLIC + "/%2e%2e/x", (), 400),
        ("DESCRIBE", PUBLIC + "?starttime=20260101T000000Z", (), 403),
        ("DESCRIBE", "rtsp://admin:pw@127.0.0.1:8554/live/1/main", (), 400),
        ("DESCRIBE", "http://127.0.0.1/live/1/main", (), 400),
        ("SETUP", "*", (), 400),
        ("ANNOUNCE", PUBLIC, (), 405),
        ("RECORD", PUBLIC, (), 405),
        ("SET_PARAMETER", PUBLIC, (), 405),
        (
            "SETUP",
            PUBLIC + "/trackID=1",
            (("Transport", "RTP/AVP;unicast;client_port=5000-5001"),),
            461,
        ),
        (
            "SETUP",
            PUBLIC + "/trackID=1",
            (("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record"),),
            461,
        ),
        ("SETUP", PUBLIC + "/trackID=1", (), 461),
        ("PLAY", PUBLIC, (("Range", "clock=20260101T000000Z-"),), 457),
        ("PLAY", PUBLIC, (("Range", "npt=30-"),), 457),
        ("PLAY", PUBLIC, (("Range", "smpte=0:10:00-"),), 457),
        ("PLAY", PUBLIC, (("Session", "bad session"),), 400),
    ],
)
def test_live_gate_refusals(
    method: str, uri: str, headers: tuple[tuple[str, str], ...], status: int
) -> None:
    gate = live_gate()
    gate.client_data(req(method, uri, 5, *headers))
    assert gate.data_for_upstream() == b""
    (response,) = parse_all(gate.data_for_client())
    assert isinstance(response, RtspResponse)
    assert (response.status, response.header("CSeq")) == (status, "5")
    assert not gate.closed


def test_setup_forces_tcp_interleaved_and_frames_pass_after_play() -> None:
    gate = live_gate()
    transport = "RTP/AVP;unicast;client_port=5000-5001,RTP/AVP/TCP;unicast;interleaved=0-1"
    gate.client_data(req("SETUP", PUBLIC + "/trackID=1", 3, ("Transport", transport)))
    (sent,) = parse_all(gate.data_for_upstream())
    assert isinstance(sent, RtspRequest)
    assert sent.uri == RECORDER + "/trackID=1"
    assert sent.header("Transport") == "RTP/AVP/TCP;unicast;interleaved=0-1"
    gate.upstream_data(
        RtspResponse(
            status=200,
            reason="OK",
            headers=(
                ("CSeq", sent.header("CSeq") or ""),
                ("Session", "12345678;timeout=60"),
                ("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1;source=10.1.2.3;ssrc=1"),
            ),
        ).to_bytes()
    )
    (setup,) = parse_all(gate.data_for_client())
    assert isinstance(setup, RtspResponse)
    assert "10.1.2.3" not in (setup.header("Transport") or "")
    play = RtspResponse(
        status=200,
        reason="OK",
        headers=(("RTP-Info", f"url={RECORDER}/trackID=1;seq=1;rtptime=0"),),
    )
    (played,) = roundtrip(
        gate, req("PLAY", PUBLIC, 4, ("Session", "12345678"), ("Range", "npt=0.000-")), play
    )
    assert isinstance(played, RtspResponse)
    assert played.header("RTP-Info") == f"url={PUBLIC}/trackID=1;seq=1;rtptime=0"
    assert gate.playing
    rtp = b"$\x00\x00\x04abcd"
    gate.upstream_data(rtp)
    assert gate.data_for_client() == rtp
    rtcp, stray = b"$\x01\x00\x02hi", b"$\x07\x00\x02no"
    gate.client_data(rtcp + stray)
    assert gate.data_for_upstream() == rtcp


def test_recorder_requests_never_reach_the_app() -> None:
    gate = live_gate()
    gate.upstream_data(req("ANNOUNCE", RECORDER, 9) + req("GET_PARAMETER", RECORDER, 10))
    assert gate.data_for_client() == b""
    answers = parse_all(gate.data_for_upstream())
    assert [a.status for a in answers if isinstance(a, RtspResponse)] == [501, 200]


def test_requests_are_serialised_while_one_is_in_flight() -> None:
    gate = live_gate()
    gate.client_data(
        req("OPTIONS", PUBLIC, 1)
        + req("DESCRIBE", PUBLIC, 2)
        + req("DESCRIBE", "rtsp://h/live/9/main", 3)
    )
    (first,) = parse_all(gate.data_for_upstream())
    assert isinstance(first, RtspRequest)
    assert first.method == "OPTIONS"
    assert gate.data_for_client() == b""
    gate.upstream_data(
        RtspResponse(
            status=200, reason="OK", headers=(("CSeq", first.header("CSeq") or ""),)
        ).to_bytes()
    )
    (second,) = parse_all(gate.data_for_upstream())
    assert isinstance(second, RtspRequest)
    assert second.method == "DESCRIBE"
    (options,) = parse_all(gate.data_for_client())
    assert isinstance(options, RtspResponse)
    assert options.header("CSeq") == "1"


def test_garbage_from_the_app_closes_the_gate() -> None:
    gate = live_gate()
    gate.client_data(b"GET / HTTP/1.1\r\n\r\n")
    assert gate.closed
    assert "app protocol error" in gate.close_reason


def playback_gate(*, seeks_by_clock: bool = False) -> GateExchange:
    window = TimeWindow(start=T0, end=T0 + 600)
    policy = GatePolicy(
        channel=1,
        public_path=playback_path(1),
        playback_window=window,
        seeks_by_clock=seeks_by_clock,
    )
    url = "rtsp://10.1.2.3/Streaming/tracks/101?starttime=20260921T000000Z&endtime=20260921T001000Z"
    return GateExchange(policy, upstream_url=url)


@pytest.mark.parametrize(
    ("range_value", "allowed"),
    [
        ("npt=0.000-", True),
        ("npt=120.5-", True),
        ("npt=599-600", True),
        ("npt=601-", False),
        ("npt=now-", True),
        ("clock=20260921T141320Z-", True),  # T0 itself
        ("clock=20260921T141319Z-", False),
        ("clock=20260921T141320Z-20260921T142320Z", True),
        ("clock=20260921T141320Z-20260921T142321Z", False),
        ("clock=garbage-", False),
    ],
)
def test_playback_ranges_stay_inside_the_window(range_value: str, allowed: bool) -> None:
    gate = playback_gate()
    ok = RtspResponse(status=200, reason="OK")
    (response,) = roundtrip(
        gate, req("PLAY", "rtsp://127.0.0.1:8554/playback/1", 2, ("Range", range_value)), ok
    )
    assert isinstance(response, RtspResponse)
    assert (response.status == 200) is allowed


def test_playback_keeps_the_recorder_query_on_track_urls() -> None:
    gate = playback_gate()
    base = "rtsp://127.0.0.1:8554/playback/1"
    gate.client_data(req("DESCRIBE", base, 1))
    (sent,) = parse_all(gate.data_for_upstream())
    assert isinstance(sent, RtspRequest)
    assert sent.uri.endswith(
        "/Streaming/tracks/101?starttime=20260921T000000Z&endtime=20260921T001000Z"
    )
    gate.client_data(b"")
    assert gate.closed


def test_interleaved_frame_type() -> None:
    frame = InterleavedFrame(b"$\x02\x00\x01x")
    assert (frame.channel, frame.payload) == (2, b"x")


@given(
    st.lists(
        st.tuples(
            st.booleans(),
            st.one_of(
                st.binary(max_size=300),
                st.sampled_from(
                    [
                        req("DESCRIBE"),
                        req(
                            "SETUP",
                            PUBLIC + "/trackID=1",
                            2,
                            ("Transport", "RTP/AVP/TCP;interleaved=0-1"),
                        ),
                        b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 3\r\n\r\nv=0",
                        b"RTSP/1.0 401 No\r\nCSeq: 1\r\nWWW-Authenticate: Digest x\r\n\r\n",
                        b"$\x00\x00\x02ab",
                        b"$\x01\xff\xff",
                    ]
                ),
            ),
        ),
        max_size=12,
    )
)
def test_any_bytes_from_either_side_never_crash(chunks: list[tuple[bool, bytes]]) -> None:
    gate = live_gate(username="u", password="p")
    for from_client, data in chunks:
        if from_client:
            gate.client_data(data)
        else:
            gate.upstream_data(data)
        out = gate.data_for_client() + gate.data_for_upstream()
        assert isinstance(out, bytes)
    assert len(gate.mapper.public_base) < 200


def test_url_mapper_learns_path_style_track_urls() -> None:
    mapper = UrlMapper(
        upstream_url="rtsp://admin:pw@10.1.2.3/Streaming/tracks/101?starttime=A&endtime=B",
        public_path="/playback/1",
    )
    assert "admin" not in mapper.upstream_base
    # Hikvision style: the track appended to the whole URL, query included.
    appended = "rtsp://10.1.2.3:554/Streaming/tracks/101?starttime=A&endtime=B/trackID=1"
    assert mapper.to_public(appended) == mapper.public_base + "/trackID=1"
    assert mapper.to_upstream("/trackID=1") == appended
    # Path style: the track below the path, the query repeated; learned for the way back.
    below = "rtsp://10.1.2.3/Streaming/tracks/101/trackID=2?starttime=A&endtime=B"
    assert mapper.to_public(below) == mapper.public_base + "/trackID=2"
    assert mapper.to_upstream("/trackID=2") == below.replace("10.1.2.3/", "10.1.2.3:554/")
    # Anything else never leaks: it maps to the public base.
    for foreign in ("rtsp://10.9.9.9/Streaming/tracks/101", "rtsp://10.1.2.3/other", "garbage:"):
        assert mapper.to_public(foreign) == mapper.public_base


def _forwarded(gate: GateExchange, *headers: tuple[str, str]) -> RtspRequest | list[object]:
    """The PLAY as the recorder gets it, or what the app got back if it was refused."""
    gate.client_data(req("PLAY", "rtsp://127.0.0.1:8554/playback/1", 2, *headers))
    upstream = parse_all(gate.data_for_upstream())
    if not upstream:
        return parse_all(gate.data_for_client())
    (sent,) = upstream
    assert isinstance(sent, RtspRequest)
    return sent


@pytest.mark.parametrize(
    ("range_value", "forwarded"),
    [
        # An open end is capped at the window's end (T0 + 600 s).
        ("clock=20260921T141320Z-", "clock=20260921T141320Z-20260921T142320Z"),
        ("clock=20260921T141500.25Z-", "clock=20260921T141500Z-20260921T142320Z"),
        ("clock=20260921T141320Z-20260921T141400Z", "clock=20260921T141320Z-20260921T141400Z"),
        # npt counts from the window's start: its end is the window's length.
        ("npt=0.000-", "npt=0.000-600.000"),
        ("npt=120.5-", "npt=120.500-600.000"),
        ("npt=10-20", "npt=10.000-20.000"),
        ("npt=00:01:00-", "npt=60.000-600.000"),
        ("npt=now-", "npt=now-600.000"),
    ],
)
def test_playback_ranges_are_forwarded_bounded(range_value: str, forwarded: str) -> None:
    sent = _forwarded(playback_gate(), ("Range", range_value))
    assert isinstance(sent, RtspRequest)
    assert sent.header("Range") == forwarded


@pytest.mark.parametrize(
    "headers",
    [
        (("Range", "npt=600-"),),  # starts where the window ends
        (("Range", "clock=20260921T142320Z-"),),
        (("Range", "npt=20-10"),),
        (("Range", "npt=0-"), ("Range", "clock=20260921T141320Z-")),
        (("Scale", "-1"),),
        (("Scale", "-0.5"),),
        (("Speed", "-2.0"),),
        (("Scale", "0"),),
        (("Scale", "1000000"),),
        (("Speed", "17"),),
        (("Scale", "fast"),),
        (("Speed", "1e9"),),
    ],
)
def test_playback_refuses_ranges_and_rates_that_leave_the_window(
    headers: tuple[tuple[str, str], ...],
) -> None:
    answer = _forwarded(playback_gate(), *headers)
    assert isinstance(answer, list)
    (response,) = answer
    assert isinstance(response, RtspResponse)
    assert response.status in {400, 403, 457}


WINDOW_AS_CLOCK = "clock=20260921T141320Z-20260921T142320Z"


@pytest.mark.parametrize(
    ("headers", "forwarded"),
    [
        # No Range: such a recorder would play its whole recording; it gets the window.
        ((), WINDOW_AS_CLOCK),
        # npt counts from the window's start and becomes the clock range it stands for.
        ((("Range", "npt=0.000-"),), WINDOW_AS_CLOCK),
        ((("Range", "npt=now-"),), WINDOW_AS_CLOCK),
        ((("Range", "npt=10-20"),), "clock=20260921T141330Z-20260921T141340Z"),
        ((("Range", "npt=120.5-"),), "clock=20260921T141520.500Z-20260921T142320Z"),
        # clock ranges are bounded as for any recorder.
        ((("Range", "clock=20260921T141400Z-"),), "clock=20260921T141400Z-20260921T142320Z"),
    ],
)
def test_a_recorder_seeking_only_by_clock_always_gets_the_window_as_clock(
    headers: tuple[tuple[str, str], ...], forwarded: str
) -> None:
    sent = _forwarded(playback_gate(seeks_by_clock=True), *headers)
    assert isinstance(sent, RtspRequest)
    assert [value for name, value in sent.headers if name.lower() == "range"] == [forwarded]
    assert sent.header("Require") == "onvif-replay"


def test_only_describe_setup_and_play_carry_the_replay_requirement() -> None:
    gate = playback_gate(seeks_by_clock=True)
    gate.client_data(req("OPTIONS", "rtsp://127.0.0.1:8554/playback/1", 1))
    (sent,) = parse_all(gate.data_for_upstream())
    assert isinstance(sent, RtspRequest)
    assert sent.header("Require") is None
    assert sent.header("Range") is None


def _sent_play_range(gate: GateExchange, cseq: int, *headers: tuple[str, str]) -> str | None:
    """Send a PLAY; return the Range the recorder got (and answer it 200)."""
    gate.client_data(req("PLAY", "rtsp://127.0.0.1:8554/playback/1", cseq, *headers))
    (sent,) = parse_all(gate.data_for_upstream())
    assert isinstance(sent, RtspRequest)
    ok = RtspResponse(status=200, reason="OK", headers=(("CSeq", sent.header("CSeq") or ""),))
    gate.upstream_data(ok.to_bytes())
    gate.data_for_client()
    return sent.header("Range")


def _answer(gate: GateExchange, method: str, cseq: int, status: int, session: str) -> None:
    roundtrip(
        gate,
        req(method, "rtsp://127.0.0.1:8554/playback/1", cseq, ("Session", session)),
        RtspResponse(status=status, reason="X"),
    )


def test_a_resume_after_pause_continues_and_anything_else_gets_the_window() -> None:
    gate = playback_gate(seeks_by_clock=True)
    s1, s2 = ("Session", "s1"), ("Session", "s2")
    assert _sent_play_range(gate, 1, s1) == WINDOW_AS_CLOCK
    _answer(gate, "PAUSE", 2, 200, "s1")
    _answer(gate, "GET_PARAMETER", 3, 200, "s1")  # a keep-alive while paused
    assert _sent_play_range(gate, 4, s1) is None  # RFC 2326: resumes where it paused
    assert _sent_play_range(gate, 5, s1) == WINDOW_AS_CLOCK  # no PAUSE before it
    _answer(gate, "PAUSE", 6, 200, "s1")
    assert _sent_play_range(gate, 7, s2) == WINDOW_AS_CLOCK  # another session
    _answer(gate, "PAUSE", 8, 454, "s2")  # a refused PAUSE opens nothing
    assert _sent_play_range(gate, 9, s2) == WINDOW_AS_CLOCK
    _answer(gate, "PAUSE", 10, 200, "s2")
    _answer(gate, "TEARDOWN", 11, 200, "s2")
    assert _sent_play_range(gate, 12, s2) == WINDOW_AS_CLOCK
    assert _sent_play_range(gate, 13) == WINDOW_AS_CLOCK  # no Session at all


def test_clock_seeking_refuses_what_leaves_the_window_too() -> None:
    for bad in ("npt=601-", "clock=20260921T142320Z-", "npt=20-10"):
        answer = _forwarded(playback_gate(seeks_by_clock=True), ("Range", bad))
        assert isinstance(answer, list)
        (response,) = answer
        assert isinstance(response, RtspResponse)
        assert response.status == 457


def test_an_apps_own_require_header_never_reaches_the_recorder() -> None:
    sent = _forwarded(playback_gate(), ("Require", "onvif-replay"), ("Range", "npt=0-"))
    assert isinstance(sent, RtspRequest)
    assert sent.header("Require") is None
    assert sent.header("Range") == "npt=0.000-600.000"  # URL-bounded recorders keep npt


def test_forward_rates_pass_on_playback_and_are_dropped_on_live() -> None:
    sent = _forwarded(playback_gate(), ("Scale", "2.0"), ("Speed", "0.5"))
    assert isinstance(sent, RtspRequest)
    assert sent.header("Scale") == "2.0"
    assert sent.header("Speed") == "0.5"
    gate = live_gate()
    gate.client_data(req("PLAY", PUBLIC, 2, ("Scale", "-4")))
    (live,) = parse_all(gate.data_for_upstream())
    assert isinstance(live, RtspRequest)
    assert live.header("Scale") is None
