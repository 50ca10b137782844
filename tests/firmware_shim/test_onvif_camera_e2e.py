"""End to end: the onvif backend finds the camera simulator's live and recorded video.

ffprobe then plays what it found.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

from nvrshare.firmware_shim import (
    AlarmKind,
    Capability,
    PtzVector,
    RecorderConfig,
    StreamKind,
    open_recorder,
)
from nvrshare.simulators.camera import CameraSimConfig, CameraSimulator
from tests.simulators.ffprobe import needs_ffprobe, probe

USER, PASSWORD = "admin", "e2e-pw"


def _backend_config(port: int, **settings: str) -> RecorderConfig:
    return RecorderConfig(
        backend="onvif",
        host="127.0.0.1",
        port=port,
        username=USER,
        password=PASSWORD,
        timeout=5.0,
        settings=settings,
    )


def _with_credentials(url: str, username: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{quote(username, safe='')}:{quote(password, safe='')}@{parts.netloc}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.mark.e2e
@needs_ffprobe
async def test_backend_stream_plays_and_ptz_and_alarm_work() -> None:
    async with CameraSimulator(CameraSimConfig(username=USER, password=PASSWORD)) as camera:
        assert camera.onvif is not None
        assert camera.onvif_state is not None
        config = _backend_config(camera.onvif.port, pull_timeout="1")
        async with open_recorder(config) as recorder:
            source = await recorder.live_source(1, StreamKind.SUB)
            result = await probe(
                _with_credentials(source.url, source.username, source.password), seconds=1
            )
            assert (result.codec_name, result.width, result.height) == ("h264", 320, 180)
            assert result.frames > 0

            await recorder.ptz_move(1, PtzVector(pan=1.0))
            await recorder.ptz_stop(1)
            assert (await recorder.ptz_status(1)).position.pan > 0

            events = recorder.alarm_events()
            try:
                async with asyncio.timeout(10):
                    camera.onvif_state.trigger_motion()  # before subscribing: only state is seen
                    first = await anext(events)  # the Initialized report of the active alarm
                    assert (first.kind, first.active, first.channel) == (
                        AlarmKind.MOTION,
                        True,
                        1,
                    )
                    camera.onvif_state.trigger_motion(False)
                    second = await anext(events)
                    assert (second.kind, second.active) == (AlarmKind.MOTION, False)
            finally:
                await events.aclose()  # type: ignore[attr-defined]


@pytest.mark.e2e
@needs_ffprobe
async def test_playback_found_through_onvif_decodes() -> None:
    async with CameraSimulator(CameraSimConfig(username=USER, password=PASSWORD)) as camera:
        assert camera.onvif is not None
        config = _backend_config(camera.onvif.port)
        now = datetime.now(UTC)
        async with open_recorder(config) as recorder:
            assert Capability.RECORDINGS in recorder.capabilities
            segments = await recorder.search_recordings(1, now - timedelta(hours=6), now)
            assert segments
            first = segments[0]
            source = await recorder.playback_source(1, first.start, first.end)
        assert "/Streaming/tracks/101?" in source.url
        result = await probe(
            _with_credentials(source.url, source.username, source.password), seconds=1
        )
        assert (result.codec_name, result.width, result.height) == ("h264", 640, 360)
        assert result.frames > 0
