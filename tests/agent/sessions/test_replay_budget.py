"""A clock-bounded replay is cut when the recorder plays past it: GateExchange in memory.

The scripted recorder answers DESCRIBE (a video and an audio track), SETUP and
PLAY, then sends interleaved RTP; the gate must pass the window's media (plus
the slack) and close with REPLAY_OVERRUN on the first frame beyond it, counting
media time from RTP timestamps, never wall time.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nvrshare.agent.sessions.rtp_clock import (
    ReplayBudget,
    clock_range_seconds,
    parse_sdp_tracks,
    track_for_setup,
)
from nvrshare.agent.sessions.rtsp_exchange import (
    REPLAY_OVERRUN,
    REPLAY_SLACK,
    REPLAYS_PER_CONNECTION,
    GateExchange,
)
from nvrshare.agent.sessions.rtsp_gate import GatePolicy, live_path, playback_path
from nvrshare.agent.sessions.rtsp_message import (
    NEED_DATA,
    InterleavedFrame,
    RtspReader,
    RtspRequest,
    RtspResponse,
)
from nvrshare.protocol.permissions import TimeWindow

T0 = 1_790_000_000  # 2026-09-21T14:13:20Z
WINDOW = 10  # seconds
UPSTREAM = "rtsp://10.1.2.3:554/replay?recording=rec-1"
PUBLIC = "rtsp://127.0.0.1:8554/playback/1"
FPS = 25


def sdp(video_rate: int = 90_000) -> bytes:
    return (
        "v=0\r\no=- 1 1 IN IP4 10.1.2.3\r\ns=replay\r\nc=IN IP4 10.1.2.3\r\nt=0 0\r\n"
        "a=control:*\r\n"
        f"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/{video_rate}\r\na=control:trackID=0\r\n"
        "m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/8000/1\r\na=control:trackID=1\r\n"
    ).encode()


def parse_all(data: bytes) -> list[object]:
    reader = RtspReader()
    if data:
        reader.receive_data(data)
    out: list[object] = []
    while (event := reader.next_event()) is not NEED_DATA:
        out.append(event)
    return out


class Recorder:
    """Drives one GateExchange as app and recorder at once."""

    def __init__(self, *, seeks_by_clock: bool = True, live: bool = False) -> None:
        window = None if live else TimeWindow(start=T0, end=T0 + WINDOW)
        policy = GatePolicy(
            channel=1,
            public_path=live_path(1) if live else playback_path(1),
            playback_window=window,
            seeks_by_clock=seeks_by_clock,
        )
        self.public = "rtsp://127.0.0.1:8554" + policy.public_path
        self.gate = GateExchange(policy, upstream_url=UPSTREAM)
        self.cseq = 0
        self.forwarded: list[RtspRequest] = []

    def exchange(
        self,
        method: str,
        suffix: str = "",
        headers: tuple[tuple[str, str], ...] = (),
        answer: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
    ) -> int:
        self.cseq += 1
        request = RtspRequest(
            method=method, uri=self.public + suffix, headers=(("CSeq", str(self.cseq)), *headers)
        )
        self.gate.client_data(request.to_bytes())
        (sent,) = parse_all(self.gate.data_for_upstream())
        assert isinstance(sent, RtspRequest)
        self.forwarded.append(sent)
        reply = RtspResponse(
            status=200,
            reason="OK",
            headers=(("CSeq", sent.header("CSeq") or ""), *answer),
            body=body,
        )
        self.gate.upstream_data(reply.to_bytes())
        (got,) = parse_all(self.gate.data_for_client())
        assert isinstance(got, RtspResponse)
        return got.status

    def open(self, video_rate: int = 90_000) -> None:
        sdp_type = (("Content-Type", "application/sdp"),)
        assert self.exchange("DESCRIBE", answer=sdp_type, body=sdp(video_rate)) == 200
        for track, channels in ((0, "0-1"), (1, "2-3")):
            transport = f"RTP/AVP/TCP;unicast;interleaved={channels}"
            # As real clients do: the first SETUP opens the session, the next joins it.
            session = (("Session", "s1"),) if track else ()
            assert (
                self.exchange(
                    "SETUP",
                    f"/trackID={track}",
                    (("Transport", transport), *session),
                    (("Transport", transport), ("Session", "s1")),
                )
                == 200
            )

    def play(self, *headers: tuple[str, str]) -> None:
        assert self.exchange("PLAY", headers=(("Session", "s1"), *headers)) == 200

    def pause(self) -> None:
        assert self.exchange("PAUSE", headers=(("Session", "s1"),)) == 200

    def send(self, *frames: bytes) -> int:
        """Feed frames from the recorder; how many of them reached the app."""
        if frames:  # b"" would mean EOF
            self.gate.upstream_data(b"".join(frames))
        return sum(isinstance(e, InterleavedFrame) for e in parse_all(self.gate.data_for_client()))


def rtp(timestamp: int, *, channel: int = 0, pt: int = 96, size: int = 20) -> bytes:
    header = struct.pack("!BBHII", 0x80, 0x80 | pt, 1, timestamp & 0xFFFFFFFF, 0x1234)
    packet = header + bytes(size)
    return b"$" + bytes([channel]) + len(packet).to_bytes(2, "big") + packet


def video(first: int, count: int, base: int = 0, rate: int = 90_000) -> list[bytes]:
    """Frames `first` .. `first + count - 1` at FPS, timestamps from `base`."""
    return [rtp(base + (first + i) * rate // FPS) for i in range(count)]


# Frames 0..N span N / FPS seconds: this many pass within the window plus the slack.
LAST_PASSING = int((WINDOW + REPLAY_SLACK) * FPS)


def playing(rate: int = 90_000) -> Recorder:
    recorder = Recorder()
    recorder.open(rate)
    recorder.play()
    return recorder


def test_the_window_plus_slack_passes_and_the_next_frame_closes() -> None:
    recorder = playing()
    assert recorder.forwarded[-1].header("Range") == "clock=20260921T141320Z-20260921T141330Z"
    assert recorder.send(*video(0, LAST_PASSING + 1)) == LAST_PASSING + 1
    assert not recorder.gate.closed
    assert recorder.send(*video(LAST_PASSING + 1, 5)) == 0
    assert recorder.gate.closed
    assert recorder.gate.close_reason == REPLAY_OVERRUN
    assert recorder.send(*video(LAST_PASSING + 6, 5)) == 0


def test_the_clock_rate_comes_from_the_sdp() -> None:
    recorder = playing(rate=1000)
    assert recorder.send(*video(0, LAST_PASSING + 1, rate=1000)) == LAST_PASSING + 1
    assert recorder.send(*video(LAST_PASSING + 1, 1, rate=1000)) == 0
    assert recorder.gate.close_reason == REPLAY_OVERRUN


def test_audio_rtcp_and_garbage_do_not_count() -> None:
    recorder = playing()
    noise = [
        rtp(10**9, channel=2, pt=97),  # audio: not metered, whatever its clock
        rtp(2 * 10**9, channel=2, pt=97),
        rtp(10**9, channel=1, pt=72),  # RTCP
        b"$\x00\x00\x03abc",  # too short for RTP
        b"$\x00\x00\x0c" + bytes(12),  # RTP version 0
    ]
    assert recorder.send(*video(0, 10), *noise, *video(10, 10)) == 20 + len(noise)
    assert not recorder.gate.closed


def test_video_channels_count_every_payload_type_but_rtcp() -> None:
    # Fail closed: a payload type the SDP never named still moves the media clock.
    recorder = playing()
    assert recorder.send(*video(0, 10)) == 10
    assert recorder.send(rtp(2 * 10**9, channel=0, pt=111)) == 0
    assert recorder.gate.closed


def test_seeking_cannot_replay_for_ever() -> None:
    # Each seek opens a fresh range, but all ranges of a connection share a cap.
    recorder = playing()
    sent = 0
    for _ in range(REPLAYS_PER_CONNECTION + 1):
        recorder.play(("Range", "npt=0-"))
        sent += recorder.send(*video(0, WINDOW * FPS))
        if recorder.gate.closed:
            break
    assert recorder.gate.closed
    assert (
        sent <= (REPLAYS_PER_CONNECTION * WINDOW + REPLAY_SLACK) * FPS + REPLAYS_PER_CONNECTION + 1
    )


def test_a_resume_after_pause_keeps_counting() -> None:
    recorder = playing()
    assert recorder.send(*video(0, 6 * FPS + 1)) == 6 * FPS + 1  # 6 s
    recorder.pause()
    recorder.play()  # a resume: no Range, so the budget carries on
    assert recorder.forwarded[-1].header("Range") is None
    # A recorder may re-base its timestamps on resume: the jump is not charged.
    rebased = 10**8
    left = LAST_PASSING - 6 * FPS
    assert recorder.send(*video(0, left + 1, base=rebased)) == left + 1
    assert not recorder.gate.closed
    assert recorder.send(*video(left + 1, 1, base=rebased)) == 0
    assert recorder.gate.close_reason == REPLAY_OVERRUN


def test_a_seek_starts_a_new_count_for_its_range() -> None:
    recorder = playing()
    assert recorder.send(*video(0, 11 * FPS)) == 11 * FPS  # most of window + slack
    recorder.play(("Range", "npt=5-"))  # the last 5 s of the window
    assert recorder.forwarded[-1].header("Range") == "clock=20260921T141325Z-20260921T141330Z"
    passing = int((5 + REPLAY_SLACK) * FPS)
    assert recorder.send(*video(0, passing + 1, base=5 * 90_000)) == passing + 1
    assert recorder.send(*video(passing + 1, 1, base=5 * 90_000)) == 0
    assert recorder.gate.close_reason == REPLAY_OVERRUN


def test_timestamps_wrap_around() -> None:
    recorder = playing()
    base = (1 << 32) - 45_000  # wraps half a second in
    assert recorder.send(*video(0, LAST_PASSING + 1, base=base)) == LAST_PASSING + 1
    assert not recorder.gate.closed
    assert recorder.send(*video(LAST_PASSING + 1, 1, base=base)) == 0
    assert recorder.gate.close_reason == REPLAY_OVERRUN


def test_b_frames_out_of_order_count_by_their_span() -> None:
    recorder = playing()
    ticks = 90_000 // FPS
    # Decode order I P B B P B B ...: timestamps 0, 3, 1, 2, 6, 4, 5, ...
    order = [0] + [n for k in range(1, 200) for n in (3 * k, 3 * k - 2, 3 * k - 1)]
    order = [n for n in order if n <= LAST_PASSING]
    assert recorder.send(*(rtp(n * ticks) for n in order)) == len(order)
    assert not recorder.gate.closed
    assert recorder.send(rtp((LAST_PASSING + 3) * ticks), rtp((LAST_PASSING + 1) * ticks)) == 0
    assert recorder.gate.close_reason == REPLAY_OVERRUN


@pytest.mark.parametrize("kind", ["url-bounded", "live"])
def test_recorders_bounded_by_url_and_live_streams_are_never_cut(kind: str) -> None:
    recorder = Recorder(seeks_by_clock=False, live=kind == "live")
    recorder.open()
    recorder.play()
    assert recorder.send(*video(0, 1000 * FPS)) == 1000 * FPS
    assert not recorder.gate.closed


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.binary(max_size=40)), max_size=30))
def test_hostile_frames_never_crash(frames: list[tuple[int, bytes]]) -> None:
    recorder = playing()
    raw = [b"$" + bytes([ch]) + len(body).to_bytes(2, "big") + body for ch, body in frames]
    recorder.send(*raw)
    assert recorder.gate.close_reason in {"", REPLAY_OVERRUN}


def test_sdp_tracks_and_clock_ranges() -> None:
    tracks = parse_sdp_tracks(sdp())
    assert [(t.media, t.control, t.rates) for t in tracks] == [
        ("video", "trackID=0", {96: 90_000}),
        ("audio", "trackID=1", {97: 8000}),
    ]
    assert track_for_setup(tracks, UPSTREAM + "/trackID=1") is tracks[1]
    assert track_for_setup(tracks, UPSTREAM + "/trackID=9") is None
    absolute = parse_sdp_tracks(b"m=video 0 RTP/AVP 96\r\na=control:rtsp://h/x/trackID=1\r\n")
    assert track_for_setup(absolute, "rtsp://h/x/trackID=1") is absolute[0]
    assert parse_sdp_tracks(b"\xff\x00m=\r\na=rtpmap:x\r\n") == []
    assert clock_range_seconds("clock=20260921T141320Z-20260921T141330.500Z") == 10.5
    for bad in ("clock=20260921T141320Z-", "npt=0-10", "clock=20261321T141320Z-20261321T141330Z"):
        assert clock_range_seconds(bad) is None


def test_an_unarmed_budget_counts_nothing() -> None:
    budget = ReplayBudget(slack=0.0)
    budget.watch(0, 90_000)
    assert budget.frame(rtp(0))
    assert budget.frame(rtp(10**9))
    budget.start(1.0)
    assert budget.frame(rtp(0))
    assert budget.frame(rtp(90_000))
    assert not budget.frame(rtp(90_001))


def _refused(recorder: Recorder, method: str, *headers: tuple[str, str], suffix: str = "") -> int:
    """Send a request the gate must answer itself; its status (nothing went upstream)."""
    recorder.cseq += 1
    request = RtspRequest(
        method=method,
        uri=recorder.public + suffix,
        headers=(("CSeq", str(recorder.cseq)), *headers),
    )
    recorder.gate.client_data(request.to_bytes())
    assert parse_all(recorder.gate.data_for_upstream()) == []
    (got,) = parse_all(recorder.gate.data_for_client())
    assert isinstance(got, RtspResponse)
    return got.status


def test_one_metered_session_and_no_new_tracks_once_playing() -> None:
    # A second recorder session, or a SETUP once playing, would open a fresh allowance.
    recorder = Recorder()
    recorder.open()
    transport = ("Transport", "RTP/AVP/TCP;unicast;interleaved=4-5")
    assert _refused(recorder, "SETUP", transport, suffix="/trackID=0") == 455  # no Session
    assert _refused(recorder, "PLAY", ("Session", "s2")) == 455
    recorder.play()
    assert _refused(recorder, "SETUP", transport, ("Session", "s1"), suffix="/trackID=0") == 455
    assert _refused(recorder, "PAUSE", ("Session", "s2")) == 455
    assert _refused(recorder, "PLAY", ("Session", "s1"), ("Session", "s2")) == 400


def test_only_even_channel_pairs_are_set_up() -> None:
    recorder = Recorder()
    for bad in ("3-4", "5-4", "4-7", "255", "1"):
        transport = ("Transport", f"RTP/AVP/TCP;unicast;interleaved={bad}")
        assert _refused(recorder, "SETUP", transport, suffix="/trackID=0") == 400


def test_frames_on_channels_no_setup_assigned_never_reach_the_app() -> None:
    recorder = Recorder()
    recorder.open()
    recorder.play(("Range", "npt=0-"))
    assert recorder.send(rtp(0, channel=6), rtp(1000, channel=7)) == 0
    assert recorder.send(rtp(0, channel=0)) == 1
    assert not recorder.gate.closed
