"""The camera simulator: ffprobe reads its RTSP, and its ONVIF service points at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from nvrshare.firmware_shim import RecorderConfig, StreamKind, open_recorder
from nvrshare.simulators.camera import CameraSimConfig, CameraSimulator
from tests.simulators.ffprobe import needs_ffprobe, probe

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
