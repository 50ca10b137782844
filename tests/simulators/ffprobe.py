"""Run the real ffprobe against an RTSP URL, bounded in time."""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import dataclass

import pytest

FFPROBE = shutil.which("ffprobe")
needs_ffprobe = pytest.mark.skipif(FFPROBE is None, reason="ffprobe not installed")


@dataclass(frozen=True)
class Probe:
    codec_name: str
    width: int
    height: int
    frames: int


async def probe(url: str, *, seconds: float = 3.0, limit: float = 20.0) -> Probe:
    """ffprobe -count_frames over TCP for `seconds` of stream; kill it after `limit`."""
    assert FFPROBE is not None
    proc = await asyncio.create_subprocess_exec(
        FFPROBE, "-v", "error", "-rtsp_transport", "tcp", "-timeout", "5000000",
        "-count_frames", "-select_streams", "v:0",
        "-show_entries", "stream=codec_name,width,height,nb_read_frames",
        "-of", "json", "-read_intervals", f"%+{seconds:g}", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(limit):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode(errors="replace")
    streams = json.loads(out)["streams"]
    assert streams, err.decode(errors="replace")
    stream = streams[0]
    return Probe(
        codec_name=stream["codec_name"],
        width=int(stream["width"]),
        height=int(stream["height"]),
        frames=int(stream.get("nb_read_frames", 0)),
    )
