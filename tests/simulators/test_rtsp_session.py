"""The sans-IO RTSP conversation: the state table against a model, over any request order."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nvrshare.simulators.digest import DigestAuthenticator
from nvrshare.simulators.h264clip import clip
from nvrshare.simulators.rtsp_messages import RtspRequest
from nvrshare.simulators.rtsp_session import (
    TRANSITIONS,
    MediaAction,
    MediaSession,
    RtspConversation,
    SessionState,
    StreamSpec,
)

URI = "rtsp://127.0.0.1:554/Streaming/Channels/101"


def resolver(path: str, query: Mapping[str, str]) -> StreamSpec | None:
    if path == "/Streaming/Channels/101":
        return StreamSpec(clip=clip(64, 64, fps=5, seconds=1))
    if path == "/Streaming/tracks/101" and query.get("starttime") == "20260101T000000Z":
        return StreamSpec(clip=clip(64, 64, fps=5, seconds=1), duration=1.0)
    return None


def conversation() -> RtspConversation:
    counter = iter(range(1, 10_000))
    return RtspConversation(resolver=resolver, auth=None, randbits=lambda bits: next(counter))


def request(method: str, uri: str = URI, **headers: str) -> RtspRequest:
    return RtspRequest(
        method=method, uri=uri, version="RTSP/1.0",
        headers={"cseq": "1", **{k.lower(): v for k, v in headers.items()}},
    )


def status(reply_bytes: bytes) -> int:
    return int(reply_bytes.split(b" ", 2)[1])


def test_table_covers_every_in_session_method_in_every_state() -> None:
    for state in SessionState:
        for method in ("PLAY", "PAUSE", "TEARDOWN", "GET_PARAMETER", "SET_PARAMETER"):
            assert (state, method) in TRANSITIONS


def test_setup_url_with_track_suffix_after_a_query_resolves() -> None:
    tcp = "RTP/AVP/TCP;unicast;interleaved=0-1"
    for uri in (
        "rtsp://h/Streaming/tracks/101?starttime=20260101T000000Z/trackID=0",
        "rtsp://h/Streaming/tracks/101/?starttime=20260101T000000Z/trackID=0",
        URI + "/trackID=0",
    ):
        reply = conversation().handle(request("SETUP", uri, Transport=tcp))
        assert status(reply.response) == 200, uri
    reply = conversation().handle(request("SETUP", URI + "2/trackID=0", Transport=tcp))
    assert status(reply.response) == 404


def test_version_and_unknown_method() -> None:
    conv = conversation()
    reply = conv.handle(RtspRequest(method="OPTIONS", uri=URI, version="RTSP/2.0"))
    assert status(reply.response) == 505
    assert reply.close
    assert status(conv.handle(request("RECORD")).response) == 501


steps = st.lists(
    st.tuples(
        st.sampled_from(
            ["DESCRIBE", "SETUP", "SETUP_UDP", "PLAY", "PAUSE", "TEARDOWN", "GET_PARAMETER",
             "OPTIONS"]
        ),
        st.sampled_from(["right", "wrong", "none"]),
    ),
    max_size=25,
)


@given(steps)
def test_any_request_order_follows_the_model(sequence: list[tuple[str, str]]) -> None:
    conv = conversation()
    state: SessionState | None = None
    session_id = ""
    for method, which in sequence:
        headers = {}
        if which == "right" and session_id:
            headers["Session"] = session_id
        elif which == "wrong":
            headers["Session"] = "NOPE"
        if method in ("SETUP", "SETUP_UDP"):
            kind = "RTP/AVP/TCP;interleaved=0-1" if method == "SETUP" else "RTP/AVP;unicast"
            reply = conv.handle(request("SETUP", Transport=kind, **headers))
            code = status(reply.response)
            if method == "SETUP_UDP":
                assert code == 461
            elif state is not None or "Session" in headers:
                assert code == 459
            else:
                assert code == 200
                state = SessionState.READY
                session_id = next(iter(conv.sessions))
            continue
        reply = conv.handle(request(method, **headers))
        code = status(reply.response)
        if method in ("DESCRIBE", "OPTIONS"):
            assert code == 200
            continue
        if method == "GET_PARAMETER" and "Session" not in headers:
            assert code == 200
            continue
        if state is None or headers.get("Session") != session_id:
            assert code == 454
            assert reply.action is MediaAction.NONE
            continue
        assert code == 200
        next_state, action = TRANSITIONS[(state, method)]
        assert reply.action is action
        state = next_state
        if state is None:
            session_id = ""
    assert len(conv.sessions) == (0 if state is None else 1)


header_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=80
)


@given(
    st.sampled_from(
        ["DESCRIBE", "SETUP", "PLAY", "PAUSE", "TEARDOWN", "GET_PARAMETER", "ANNOUNCE"]
    ),
    header_text,
    st.dictionaries(
        st.sampled_from(["session", "transport", "authorization", "cseq", "range"]),
        header_text,
        max_size=5,
    ),
)
def test_hostile_requests_get_an_answer_never_an_exception(
    method: str, uri: str, headers: dict[str, str]
) -> None:
    for auth in (None, DigestAuthenticator(realm="r", username="u", password="p")):
        conv = RtspConversation(resolver=resolver, auth=auth)
        reply = conv.handle(
            RtspRequest(method=method, uri=uri or "*", version="RTSP/1.0", headers=headers)
        )
        assert reply.response.startswith(b"RTSP/1.0 ")


def test_unparseable_uri_is_not_found() -> None:
    reply = conversation().handle(request("DESCRIBE", "rtsp://[::1/Streaming/Channels/101"))
    assert status(reply.response) == 404


def test_play_range_seeks_a_playback_but_not_live() -> None:
    tcp = "RTP/AVP/TCP;unicast;interleaved=0-1"
    for uri, expected in (
        ("rtsp://h/Streaming/tracks/101?starttime=20260101T000000Z", "npt=0.600-1.000"),
        (URI, "npt=0.000-"),
    ):
        conv = conversation()
        setup = conv.handle(request("SETUP", uri + "/trackID=0", Transport=tcp))
        assert status(setup.response) == 200
        session_id = next(iter(conv.sessions))
        play = conv.handle(request("PLAY", uri, Session=session_id, Range="npt=0.6-"))
        assert f"Range: {expected}".encode() in play.response
    beyond = conversation()
    beyond.handle(request("SETUP", "rtsp://h/Streaming/tracks/101?starttime=20260101T000000Z",
                          Transport=tcp))
    session = next(iter(beyond.sessions.values()))
    beyond.handle(request("PLAY", URI, Session=session.session_id, Range="npt=99-"))
    assert session.frame_index == 5  # clamped to the end of the 1 s window at 5 fps


ORIGIN = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
RECORDING = "rtsp://h/replay?recording=REC_VideoSource_1_1"


def recording_resolver(path: str, query: Mapping[str, str]) -> StreamSpec | None:
    """A 60 s recording at 5 fps that starts at ORIGIN (its URL names no window)."""
    if path == "/replay":
        return StreamSpec(clip=clip(64, 64, fps=5, seconds=1), duration=60.0, origin=ORIGIN)
    return resolver(path, query)


def playing(range_header: str | None) -> tuple[RtspConversation, MediaSession, bytes]:
    counter = iter(range(1, 10_000))
    conv = RtspConversation(
        resolver=recording_resolver, auth=None, randbits=lambda bits: next(counter)
    )
    conv.handle(request("SETUP", RECORDING + "/trackID=0", Transport="RTP/AVP/TCP;interleaved=0-1"))
    session = next(iter(conv.sessions.values()))
    headers = {"Session": session.session_id, "Require": "onvif-replay"}
    if range_header is not None:
        headers["Range"] = range_header
    return conv, session, conv.handle(request("PLAY", RECORDING, **headers)).response


def test_clock_range_plays_that_stretch_of_a_recording_and_says_so() -> None:
    _conv, session, answer = playing("clock=20260101T090010Z-20260101T090012.5Z")
    assert status(answer) == 200
    assert b"Range: clock=20260101T090010Z-20260101T090012.500Z\r\n" in answer
    # 5 fps from 09:00:00: frames 50..62 are the ones in [10 s, 12.5 s).
    assert (session.first_frame, session.frame_index, session.frame_limit) == (50, 50, 63)
    assert f"rtptime={session.timestamp()}".encode() in answer
    # The first frame at or after 59.9 s would be frame 300, past the last one.
    assert status(playing("clock=20260101T090059.9Z-")[2]) == 457
    assert status(playing("clock=20260101T090059.8Z-")[2]) == 200


def test_a_faulty_device_answers_the_clock_range_but_plays_to_the_recordings_end() -> None:
    def faulty(path: str, query: Mapping[str, str]) -> StreamSpec | None:
        spec = recording_resolver(path, query)
        return None if spec is None else replace(spec, ignores_clock_end=True)

    counter = iter(range(1, 10_000))
    conv = RtspConversation(resolver=faulty, auth=None, randbits=lambda bits: next(counter))
    conv.handle(request("SETUP", RECORDING + "/trackID=0", Transport="RTP/AVP/TCP;interleaved=0-1"))
    session = next(iter(conv.sessions.values()))
    clock = "clock=20260101T090010Z-20260101T090012.5Z"
    answer = conv.handle(request("PLAY", RECORDING, Session=session.session_id, Range=clock))
    assert status(answer.response) == 200
    assert f"Range: {clock.replace('12.5Z', '12.500Z')}\r\n".encode() in answer.response
    assert (session.first_frame, session.frame_limit) == (50, 300)  # not 63: it plays on


def test_clock_range_ends_are_clamped_to_the_recording() -> None:
    _conv, session, answer = playing("CLOCK = 20260101T090058Z - 20260101T100000Z")
    assert status(answer) == 200
    assert b"Range: clock=20260101T090058Z-20260101T090100Z\r\n" in answer
    assert (session.frame_index, session.frame_limit) == (290, 300)


def test_no_range_or_npt_on_a_recording_plays_it_from_its_start() -> None:
    for range_header, expected in ((None, "npt=0.000-60.000"), ("npt=2-", "npt=2.000-60.000")):
        session, answer = playing(range_header)[1:]
        assert status(answer) == 200
        assert f"Range: {expected}\r\n".encode() in answer
        assert session.frame_limit == 300


@pytest.mark.parametrize(
    "range_header",
    [
        "clock=20260101T085959Z-20260101T090010Z",  # starts before the recording
        "clock=20260101T090100Z-",  # starts at its end
        "clock=20260101T090010Z-20260101T090010Z",  # empty
        "clock=20260101T090020Z-20260101T090010Z",  # backwards
        "clock=20261301T090010Z-",  # no 13th month
        "clock=20260101T090010-",  # no Z
        "clock=20260101T090010Z",  # no dash
        "clock=99999999T999999Z-",
        "clock=" + "1" * 500,
        "clock=20260101T090010." + "9" * 20 + "Z-",
    ],
)
def test_bad_clock_ranges_are_457_and_the_session_stays_ready(range_header: str) -> None:
    conv, session, answer = playing(range_header)
    assert status(answer) == 457
    assert session.state is SessionState.READY
    assert b"Session: " in answer
    retry = conv.handle(
        request("PLAY", RECORDING, Session=session.session_id, Range="clock=20260101T090001Z-")
    )
    assert status(retry.response) == 200
    assert session.frame_index == 5


def test_clock_ranges_on_streams_without_an_origin_are_ignored() -> None:
    conv = conversation()
    uri = "rtsp://h/Streaming/tracks/101?starttime=20260101T000000Z"
    conv.handle(request("SETUP", uri, Transport="RTP/AVP/TCP;interleaved=0-1"))
    session = next(iter(conv.sessions.values()))
    answer = conv.handle(request("PLAY", uri, Session=session.session_id, Range="clock=bad-"))
    assert status(answer.response) == 200
    assert b"Range: npt=0.000-1.000" in answer.response


@given(st.text(max_size=200))
def test_any_clock_range_gets_an_answer_never_an_exception(text: str) -> None:
    for range_header in (text, "clock=" + text, f"clock=20260101T090010Z-{text}"):
        answer = playing(range_header)[2]
        assert status(answer) in (200, 457)
