"""What `nvrshare demo` measures: decoded frames (ffprobe) and the recorder's PTZ status."""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import dataclass
from urllib.parse import urlsplit

from nvrshare.firmware_shim import RecorderConfig, open_recorder
from nvrshare.firmware_shim.models import PtzStatus

__all__ = ["FrameCount", "MediaCheckFailed", "count_frames", "recorder_config", "recorder_ptz"]


class MediaCheckFailed(Exception):
    """ffprobe is missing, failed, or decoded no video."""


@dataclass(frozen=True, kw_only=True, slots=True)
class FrameCount:
    codec: str
    width: int
    height: int
    frames: int
    seconds: float  # wall time ffprobe took


async def count_frames(url: str, *, seconds: float = 2.0, limit: float = 20.0) -> FrameCount:
    """Decode `seconds` of an RTSP stream (over TCP) with ffprobe and count the frames."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        raise MediaCheckFailed("ffprobe is not installed")
    loop = asyncio.get_running_loop()
    started = loop.time()
    process = await asyncio.create_subprocess_exec(
        ffprobe, "-v", "error", "-rtsp_transport", "tcp", "-timeout", "5000000",
        "-count_frames", "-select_streams", "v:0",
        "-show_entries", "stream=codec_name,width,height,nb_read_frames",
        "-of", "json", "-read_intervals", f"%+{seconds:g}", url,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(limit):
            out, err = await process.communicate()
    except TimeoutError:
        raise MediaCheckFailed(f"ffprobe took more than {limit:g} s") from None
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    message = err.decode("utf-8", errors="replace").strip()[-300:]
    if process.returncode != 0:
        raise MediaCheckFailed(f"ffprobe failed: {message}")
    try:
        stream = json.loads(out)["streams"][0]
        return FrameCount(
            codec=str(stream["codec_name"]),
            width=int(stream["width"]),
            height=int(stream["height"]),
            frames=int(stream.get("nb_read_frames", 0)),
            seconds=loop.time() - started,
        )
    except (ValueError, KeyError, IndexError, TypeError):
        raise MediaCheckFailed(f"ffprobe found no video stream: {message}") from None


def recorder_config(announce: dict[str, object]) -> RecorderConfig:
    """The ISAPI shim config for a simulated recorder, from the JSON line it printed."""
    isapi = urlsplit(str(announce["isapi"]))
    rtsp = urlsplit(str(announce["rtsp"]))
    return RecorderConfig(
        backend="isapi",
        host=isapi.hostname or "127.0.0.1",
        port=isapi.port,
        username=str(announce["username"]),
        password=str(announce["password"]),
        rtsp_port=rtsp.port,
        timeout=5.0,
    )


async def recorder_ptz(config: RecorderConfig, channel: int) -> PtzStatus:
    """The PTZ status the recorder itself reports (asked over ISAPI, not through the relay)."""
    async with open_recorder(config) as recorder:
        return await recorder.ptz_status(channel)
