"""The sans-IO RTSP conversation: the state table against a model, over any request order."""

from __future__ import annotations

from collections.abc import Mapping

from hypothesis import given
from hypothesis import strategies as st

from nvrshare.simulators.digest import DigestAuthenticator
from nvrshare.simulators.h264clip import clip
from nvrshare.simulators.rtsp_messages import RtspRequest
from nvrshare.simulators.rtsp_session import (
    TRANSITIONS,
    MediaAction,
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
