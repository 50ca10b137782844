"""ONVIF replay through the whole chain stays inside the granted window.

client → relay data plane → agent (session handler, RTSP gate) → a simulated
ONVIF camera whose replay URIs name only a recording (`replay_window_in_url=False`):
like a Profile G device, it bounds replay by nothing but `Range: clock=` on
PLAY, and without one plays the whole recording.  Whatever Range the client
sends (none, npt, clock), the camera must be asked for the window as clock
times with `Require: onvif-replay`, and serve exactly the window's frames.
The checks read what the camera received and served, not wall-clock timing.
A faulty camera that plays on past the range's end (`replay_ignores_clock_end`)
is cut by the agent once the media it sent outruns the window (plus slack).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from nvrshare.agent.sessions.rtsp_exchange import REPLAY_OVERRUN, REPLAY_SLACK
from nvrshare.client.streams import LocalRtspEndpoint
from nvrshare.firmware_shim import RecorderConfig, open_recorder
from nvrshare.protocol.messages import SessionKind, SessionRequest
from nvrshare.protocol.permissions import Permission, TimeWindow
from nvrshare.simulators.camera import REPLAY_PATH, CameraSimConfig, CameraSimulator
from nvrshare.simulators.rtsp_messages import RtspRequest
from tests.agent.sessions.harness import ACCOUNT, SERIAL, Harness
from tests.simulators.rtsp_client import RawRtsp, video_timestamps

PASSWORD = "cam-secret-1"
FPS = 25
SECONDS = 2  # the window's length: the playback takes this long in real time
SLOW = 30.0  # per RTSP answer: the first crosses relay, agent and an ONVIF search


@dataclass(frozen=True, slots=True)
class Replay:
    camera: CameraSimulator
    harness: Harness
    recording_start: datetime  # the recording the window lies in
    window: TimeWindow


def _clock(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y%m%dT%H%M%SZ")


@pytest.fixture
async def replay(tmp_path: Path) -> AsyncIterator[Replay]:
    async with _replay(tmp_path) as running:
        yield running


@pytest.fixture
async def faulty_replay(tmp_path: Path) -> AsyncIterator[Replay]:
    async with _replay(tmp_path, replay_ignores_clock_end=True) as running:
        yield running


@contextlib.asynccontextmanager
async def _replay(
    tmp_path: Path, *, replay_ignores_clock_end: bool = False
) -> AsyncIterator[Replay]:
    config = CameraSimConfig(
        password=PASSWORD,
        serial=SERIAL,
        recording_days=1,
        replay_window_in_url=False,
        replay_ignores_clock_end=replay_ignores_clock_end,
    )
    async with CameraSimulator(config) as camera:
        assert camera.onvif is not None
        now = datetime.now(UTC)
        start, _end = camera.storage.search_recordings(
            1, now - timedelta(days=1), now - timedelta(hours=1)
        )[0]
        # Five minutes into a finished recording: its start is not the window's.
        w0 = int((start + timedelta(minutes=5)).timestamp())
        recorder_config = RecorderConfig(
            backend="onvif",
            host="127.0.0.1",
            port=camera.onvif.port,
            username="admin",
            password=PASSWORD,
            timeout=SLOW,
        )
        async with open_recorder(recorder_config) as recorder:
            harness = Harness(tmp_path, recorder)
            async with harness.running():
                harness.publish_grants({ACCOUNT: {1: Permission.PLAYBACK}})
                yield Replay(camera, harness, start, TimeWindow(start=w0, end=w0 + SECONDS))


@contextlib.asynccontextmanager
async def _open(replay: Replay) -> AsyncIterator[tuple[RawRtsp, str, str]]:
    token = replay.harness.token({1: Permission.PLAYBACK})

    async def tokens() -> bytes:
        return token

    wanted = SessionRequest(
        device_serial=SERIAL, channel=1, kind=SessionKind.PLAYBACK, playback_window=replay.window
    )
    async with LocalRtspEndpoint(replay.harness.endpoint, tokens, wanted, port=0) as endpoint:
        client = await RawRtsp.connect(endpoint.port)
        client.timeout = SLOW
        try:
            status, headers, body = await client.request("DESCRIBE", endpoint.url)
            assert status == 200, status
            assert b"sprop-parameter-sets=" in body
            base = headers["content-base"]
            status, headers, _ = await client.request(
                "SETUP", base + "trackID=0", {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"}
            )
            assert status == 200, status
            yield client, base, headers["session"].split(";")[0]
        finally:
            await client.close()


def _received(camera: CameraSimulator, method: str) -> list[RtspRequest]:
    return [request for request, _ in camera.rtsp.exchanges if request.method == method]


def _answer_range(answer: bytes) -> str:
    head = answer.split(b"\r\n\r\n", 1)[0].decode()
    return next(line.split(":", 1)[1].strip() for line in head.split("\r\n")[1:]
                if line.lower().startswith("range:"))  # fmt: skip


@pytest.mark.parametrize(
    ("client_range", "offset"),
    [
        (None, 0),
        (lambda w: "npt=0-", 0),
        (lambda w: "npt=1.000-", 1),
        (lambda w: f"clock={_clock(w.start + 1)}-", 1),
    ],
    ids=["no-range", "npt-0", "npt-1", "clock-from-w0+1"],
)
async def test_playback_plays_only_the_granted_window(
    replay: Replay, client_range: Callable[[TimeWindow], str] | None, offset: int
) -> None:
    camera, window = replay.camera, replay.window
    first, last = window.start + offset, window.end
    expected_range = f"clock={_clock(first)}-{_clock(last)}"
    async with _open(replay) as (client, base, session):
        play = {"Session": session}
        if client_range is not None:
            play["Range"] = client_range(window)
        status, headers, _ = await client.request("PLAY", base, play)
        assert status == 200, status
        # The camera served, and the client was told, exactly the (rest of the) window.
        assert headers["range"] == expected_range
        frames = await client.read_frames(60.0, until_bye=True)
        stamps = video_timestamps(frames)
        assert len(stamps) == (last - first) * FPS, len(stamps)
        assert stamps[0] == int(headers["rtp-info"].rpartition("rtptime=")[2])
        assert all((b - a) & 0xFFFFFFFF == 90_000 // FPS for a, b in itertools.pairwise(stamps))
        status, _, _ = await client.request("TEARDOWN", base, {"Session": session})
        assert status == 200

    # What the camera was asked: its own recording URL (no window in it that it reads),
    # DESCRIBE, SETUP and PLAY marked onvif-replay, and the window as a clock range on PLAY.
    (received_play,) = _received(camera, "PLAY")
    assert urlsplit(received_play.uri).path.startswith(REPLAY_PATH)
    assert received_play.headers["range"] == expected_range
    for method in ("DESCRIBE", "SETUP", "PLAY"):
        received = _received(camera, method)
        assert received
        assert all(r.headers.get("require") == "onvif-replay" for r in received), method
    (answer,) = [reply for request, reply in camera.rtsp.exchanges if request is received_play]
    assert _answer_range(answer) == expected_range
    # What it served: the frames of [first, last) of the recording, no more.
    (played,) = camera.rtsp.media_sessions
    origin = int(replay.recording_start.timestamp())
    assert played.first_frame == (first - origin) * FPS
    assert played.frame_index == (last - origin) * FPS
    assert played.frames_sent == (last - first) * FPS


@pytest.mark.parametrize(
    "client_range",
    [
        lambda w: f"clock={_clock(w.start - 1)}-",  # before the window
        lambda w: f"clock={_clock(w.start)}-{_clock(w.end + 1)}",  # past its end
        lambda w: f"npt=0-{w.end - w.start + 1}",
        lambda w: "clock=garbage-",
    ],
    ids=["clock-before", "clock-past-end", "npt-past-end", "malformed"],
)
async def test_ranges_outside_the_window_never_reach_the_camera(
    replay: Replay, client_range: Callable[[TimeWindow], str]
) -> None:
    async with _open(replay) as (client, base, session):
        play = {"Session": session, "Range": client_range(replay.window)}
        status, _, _ = await client.request("PLAY", base, play)
        assert status == 457
    assert _received(replay.camera, "PLAY") == []
    assert not replay.camera.rtsp.media_sessions


async def test_a_resume_after_pause_continues_where_it_paused(replay: Replay) -> None:
    camera, window = replay.camera, replay.window
    async with _open(replay) as (client, base, session):
        status, _, _ = await client.request("PLAY", base, {"Session": session})
        assert status == 200
        await client.read_frames(30.0, until=lambda got: len(video_timestamps(got)) >= 10)
        status, _, _ = await client.request("PAUSE", base, {"Session": session})
        assert status == 200
        status, _, _ = await client.request("PLAY", base, {"Session": session})
        assert status == 200
        await client.read_frames(60.0, until_bye=True)
    # RFC 2326 §10.5: a PLAY without Range after PAUSE resumes at the pause point, so
    # the window's frames are each served once, and the resume carries no new start.
    (played,) = camera.rtsp.media_sessions
    assert played.frames_sent == (window.end - window.start) * FPS
    assert "range" not in _received(camera, "PLAY")[1].headers


async def _poll(check: Callable[[], bool], seconds: float = 15.0) -> bool:
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_a_camera_that_plays_past_the_window_is_cut_by_the_agent(
    faulty_replay: Replay, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    camera, window = faulty_replay.camera, faulty_replay.window
    async with _open(faulty_replay) as (client, base, session):
        status, headers, _ = await client.request("PLAY", base, {"Session": session})
        assert status == 200
        # The camera says it plays the window, but plays on: the agent ends the session.
        assert headers["range"] == f"clock={_clock(window.start)}-{_clock(window.end)}"
        frames = await client.read_frames(60.0)  # until EOF
    stamps = video_timestamps(frames)
    got = len(stamps)
    # The client got the window's frames and at most the slack more, not the recording.
    assert SECONDS * FPS <= got <= (SECONDS + REPLAY_SLACK) * FPS + 1, got
    assert (max(stamps) - min(stamps)) / 90_000 <= SECONDS + REPLAY_SLACK
    (played,) = camera.rtsp.media_sessions
    assert _received(camera, "PLAY")[0].headers["range"] == headers["range"]
    limit = played.frame_limit
    assert limit is not None
    assert limit - played.first_frame > 10 * (SECONDS + REPLAY_SLACK) * FPS  # it would play on
    # The agent hung up on the camera long before the recording's end, and said why.
    assert await _poll(lambda: camera.rtsp.connection_count == 0)
    assert played.frames_sent < limit - played.first_frame
    print(f"camera sent {played.frames_sent} frames, client got {got}")
    assert await _poll(
        lambda: any(f"session ended: {REPLAY_OVERRUN}" in m for m in caplog.messages)
    )
