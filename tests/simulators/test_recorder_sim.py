"""The recorder simulator over the wire: ffprobe on live and playback, ISAPI auth, faults."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import av
import pytest

from nvrshare.firmware_shim import (
    DeviceUnreachable,
    RecorderConfig,
    StreamKind,
    StreamSource,
    open_recorder,
)
from nvrshare.simulators.h264clip import tint_of
from nvrshare.simulators.recorder import RecorderSimConfig, RecorderSimulator
from tests.simulators.ffprobe import needs_ffprobe, probe

PASSWORD = "rec-pw"


@pytest.fixture
async def nvr() -> AsyncIterator[RecorderSimulator]:
    config = RecorderSimConfig(
        channels=2, password=PASSWORD, main_size=(352, 288), sub_size=(176, 144),
        offline_channels=frozenset({2}),
    )
    async with RecorderSimulator(config) as simulator:
        yield simulator


def config_for(nvr: RecorderSimulator, password: str = PASSWORD) -> RecorderConfig:
    return RecorderConfig(
        backend="isapi", host="127.0.0.1", port=nvr.http_port, username="admin",
        password=password, timeout=3.0,
    )


def with_credentials(source: StreamSource) -> str:
    assert source.url.startswith("rtsp://")
    return f"rtsp://{source.username}:{source.password}@{source.url[len('rtsp://'):]}"


@needs_ffprobe
async def test_ffprobe_reads_live_and_playback_found_through_isapi(nvr: RecorderSimulator) -> None:
    async with open_recorder(config_for(nvr)) as recorder:
        live = await recorder.live_source(1, StreamKind.MAIN)
        now = datetime.now(UTC)
        segments = await recorder.search_recordings(1, now - timedelta(hours=2), now)
    assert segments[0].source is not None
    assert "/Streaming/tracks/101" in segments[0].source.url
    result = await probe(with_credentials(live), seconds=2)
    assert (result.codec_name, result.width, result.height) == ("h264", 352, 288)
    assert result.frames >= 25
    result = await probe(with_credentials(segments[0].source), seconds=2)
    assert (result.codec_name, result.width, result.height) == ("h264", 352, 288)
    assert result.frames >= 25


async def test_channels_report_offline_and_capabilities(nvr: RecorderSimulator) -> None:
    async with open_recorder(config_for(nvr)) as recorder:
        channels = await recorder.channels()
    assert [(c.number, c.online) for c in channels] == [(1, True), (2, False)]
    assert "ptz" in channels[0].capabilities
    assert "ptz" not in channels[1].capabilities
    # An offline camera has no stream to give.
    assert nvr.resolve_stream("/Streaming/Channels/201", {}) is None
    assert nvr.resolve_stream("/Streaming/Channels/101", {}) is not None
    assert nvr.resolve_stream("/Streaming/tracks/101", {"starttime": "bad"}) is None


async def test_isapi_needs_digest_and_sim_controls_work(nvr: RecorderSimulator) -> None:
    async with (
        aiohttp.ClientSession() as plain,
        plain.get(f"{nvr.base_url}/ISAPI/System/deviceInfo") as response,
    ):
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Digest ")
    auth = aiohttp.DigestAuthMiddleware("admin", PASSWORD)
    async with aiohttp.ClientSession(middlewares=(auth,)) as session:
        url = f"{nvr.base_url}/sim/alarm?kind=io&input=2&active=true"
        async with session.post(url) as response:
            assert response.status == 200
        assert nvr.device.alarm_state[("io", None, 2)] is True
        async with session.post(f"{nvr.base_url}/sim/alarm?kind=nope") as response:
            assert response.status == 400
        body = b"<CMSearchDescription><!DOCTYPE x></CMSearchDescription>"
        url = f"{nvr.base_url}/ISAPI/ContentMgmt/search"
        async with session.post(url, data=body) as response:
            assert response.status == 400
        async with session.get(f"{nvr.base_url}/ISAPI/nothing/here") as response:
            assert response.status == 404


async def test_refused_http_is_unreachable(nvr: RecorderSimulator) -> None:
    await nvr.refuse_http(True)
    with pytest.raises(DeviceUnreachable):
        async with open_recorder(config_for(nvr)):
            pass
    await nvr.refuse_http(False)
    async with open_recorder(config_for(nvr)) as recorder:
        assert (await recorder.device_info()).serial == nvr.config.serial


def first_frame_tint(url: str) -> int:
    """Decode one picture with PyAV and say which channel tint it carries."""
    options = {"rtsp_transport": "tcp", "analyzeduration": "100000", "probesize": "4096"}
    with av.open(url, options=options, timeout=5) as container:
        for frame in container.decode(video=0):
            u, v = bytes(frame.planes[1]), bytes(frame.planes[2])
            return tint_of(sum(u) / len(u), sum(v) / len(v))
    raise AssertionError("no picture")


async def test_each_channel_shows_its_own_picture() -> None:
    config = RecorderSimConfig(channels=3, password=PASSWORD, sub_size=(160, 90))
    async with RecorderSimulator(config) as nvr:
        for path, channel in (("/Streaming/Channels/101", 1), ("/Streaming/Channels/302", 3)):
            url = nvr.rtsp.url(path, with_credentials=True)
            async with asyncio.timeout(15):
                assert await asyncio.to_thread(first_frame_tint, url) == channel
