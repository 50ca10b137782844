"""The RTSP gate's asyncio adapter against the recorder simulator, read by the real ffprobe."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from nvrshare.agent.sessions.rtsp_gate import GatePolicy, live_path, playback_path
from nvrshare.agent.sessions.rtsp_proxy import serve_rtsp
from nvrshare.firmware_shim.backends.sim import SimRecorder
from nvrshare.firmware_shim.models import StreamKind, StreamSource
from nvrshare.protocol.permissions import TimeWindow
from tests.simulators.ffprobe import needs_ffprobe, probe


@contextlib.asynccontextmanager
async def gate_listener(policy: GatePolicy, source: StreamSource) -> AsyncIterator[int]:
    """A loopback port where every connection is served by the gate (no relay in between)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await serve_rtsp(reader, writer, policy, source)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@needs_ffprobe
async def test_ffprobe_decodes_live_video_through_the_gate(recorder: SimRecorder) -> None:
    source = await recorder.live_source(1, StreamKind.MAIN)
    assert "@" not in source.url
    assert source.password
    policy = GatePolicy(channel=1, public_path=live_path(1))
    async with gate_listener(policy, source) as port:
        result = await probe(f"rtsp://127.0.0.1:{port}{live_path(1)}", seconds=2.5)
    assert (result.codec_name, result.width, result.height) == ("h264", 640, 360)
    assert result.frames >= 25


@needs_ffprobe
async def test_ffprobe_decodes_a_playback_window_through_the_gate(recorder: SimRecorder) -> None:
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    start, end = day + timedelta(hours=10), day + timedelta(hours=10, minutes=15)
    source = await recorder.playback_source(1, start, end)
    window = TimeWindow(start=int(start.timestamp()), end=int(end.timestamp()))
    policy = GatePolicy(channel=1, public_path=playback_path(1), playback_window=window)
    async with gate_listener(policy, source) as port:
        result = await probe(f"rtsp://127.0.0.1:{port}{playback_path(1)}", seconds=2.5)
    assert result.codec_name == "h264"
    assert result.frames >= 25


@needs_ffprobe
async def test_ffprobe_cannot_reach_another_channel(recorder: SimRecorder) -> None:
    source = await recorder.live_source(1, StreamKind.MAIN)
    policy = GatePolicy(channel=1, public_path=live_path(1))
    async with gate_listener(policy, source) as port:
        with pytest.raises(AssertionError, match="403"):
            await probe(f"rtsp://127.0.0.1:{port}{live_path(2)}", seconds=1, limit=10)
