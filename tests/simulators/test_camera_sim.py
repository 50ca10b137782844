"""The camera simulator: ffprobe reads its RTSP, and its ONVIF service points at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from nvrshare.firmware_shim import RecorderConfig, StreamKind, open_recorder
from nvrshare.simulators.camera import CameraSimConfig, CameraSimulator
from tests.simulators.ffprobe import needs_ffprobe, probe
from tests.simulators.rtsp_client import RawRtsp, video_timestamps

PASSWORD = "cam-pw"


@pytest.fixture
async def camera() -> AsyncIterator[CameraSimulator]:
    async with CameraSimulator(CameraSimConfig(password=PASSWORD)) as cam:
        yield cam


@needs_ffprobe
async def test_ffprobe_reads_camera_main_stream(camera: CameraSimulator) -> None:
    url = camera.rtsp.url("/Streaming/Channels/101", with_credentials=True)
    result = await probe(url, seconds=2)
    assert (result.codec_name, result.width, result.height) == ("h264", 640, 360)
    assert result.frames >= 25


async def test_onvif_backend_finds_the_rtsp_streams(camera: CameraSimulator) -> None:
    assert camera.onvif is not None
    config = RecorderConfig(
        backend="onvif", host="127.0.0.1", port=camera.onvif.port, username="admin",
        password=PASSWORD, timeout=5.0,
    )
    async with open_recorder(config) as recorder:
        main = await recorder.live_source(1, StreamKind.MAIN)
        sub = await recorder.live_source(1, StreamKind.SUB)
    assert main.url.endswith("/Streaming/Channels/101")
    assert sub.url.endswith("/Streaming/Channels/102")
    assert f":{camera.rtsp.port}/" in main.url


async def test_camera_without_onvif() -> None:
    async with CameraSimulator(CameraSimConfig(password=PASSWORD, onvif=False)) as cam:
        assert cam.onvif_url is None
        assert cam.main_url.endswith("/Streaming/Channels/101")


# --- edge-storage replay seeks by clock --------------------------------------------


def _clock(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%SZ")


async def _play(
    url: str, range_header: str | None, password: str = PASSWORD
) -> tuple[RawRtsp, dict[str, str]]:
    """DESCRIBE, SETUP and PLAY `url` (with ONVIF's Require); the PLAY answer's headers."""
    client = await RawRtsp.connect(int(urlsplit(url).port or 554))
    client.auth, client.timeout = ("admin", password), 15.0
    status, headers, _ = await client.request("DESCRIBE", url, {"Require": "onvif-replay"})
    assert status == 200
    base = headers["content-base"]
    status, headers, _ = await client.request(
        "SETUP", base + "trackID=0", {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"}
    )
    assert status == 200
    play = {"Session": headers["session"].split(";")[0], "Require": "onvif-replay"}
    if range_header is not None:
        play["Range"] = range_header
    status, headers, _ = await client.request("PLAY", base, play)
    assert status == 200, status
    return client, headers


def _finished_segment(cam: CameraSimulator) -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return cam.storage.search_recordings(1, now - timedelta(days=1), now - timedelta(hours=1))[0]


async def test_clock_only_camera_replays_a_recording_bounded_by_the_clock_range() -> None:
    config = CameraSimConfig(password=PASSWORD, recording_days=1, replay_window_in_url=False)
    async with CameraSimulator(config) as cam:
        assert cam.onvif is not None
        start, end = _finished_segment(cam)
        recorder_config = RecorderConfig(
            backend="onvif", host="127.0.0.1", port=cam.onvif.port, username="admin",
            password=PASSWORD, timeout=15.0,
        )
        window = (start + timedelta(minutes=5), start + timedelta(minutes=5, seconds=1))
        async with open_recorder(recorder_config) as recorder:
            source = await recorder.playback_source(1, *window)
        parts = urlsplit(source.url)
        # The device named only the recording; the backend's starttime/endtime ride along.
        assert parts.path == "/replay"
        assert parse_qs(parts.query)["recording"] == [f"REC_VideoSource_1_{int(start.timestamp())}"]

        # Without a Range, the URL's window is not read: the whole recording plays.
        client, headers = await _play(source.url, None)
        length = (end - start).total_seconds()
        assert headers["range"] == f"npt=0.000-{length:.3f}"
        await client.close()

        client, headers = await _play(
            source.url, f"clock={_clock(window[0])}-{_clock(window[1])}"
        )
        assert headers["range"] == f"clock={_clock(window[0])}-{_clock(window[1])}"
        frames = await client.read_frames(30, until_bye=True)
        assert len(video_timestamps(frames)) == 25  # 1 s at 25 fps
        rtptime = int(headers["rtp-info"].rpartition("rtptime=")[2])
        assert video_timestamps(frames)[0] == rtptime
        played = cam.rtsp.media_sessions[-1]
        assert (played.first_frame, played.frame_index, played.frames_sent) == (7500, 7525, 25)
        await client.close()


async def test_window_in_url_replay_also_seeks_by_clock(camera: CameraSimulator) -> None:
    start, _end = _finished_segment(camera)
    window = (start + timedelta(minutes=1), start + timedelta(minutes=2))
    url = camera.replay_url(*window)
    last_second = _clock(window[0] + timedelta(seconds=59))
    client, headers = await _play(url, f"clock={last_second}-")
    assert headers["range"] == f"clock={last_second}-{_clock(window[1])}"
    frames = await client.read_frames(30, until_bye=True)
    assert len(video_timestamps(frames)) == 25
    await client.close()
    client, headers = await _play(url, "npt=0-")
    assert headers["range"] == "npt=0.000-60.000"
    await client.close()
