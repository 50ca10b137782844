"""Video through the assembled product: `nvrshare view` / `nvrshare playback` as real processes,
ffprobe decoding what they serve, and the relay's `/metrics` afterwards."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime

import aiohttp
import pytest

from tests.e2e.conftest import NEEDS_TOOLS, SLOW_PROCESSES, Product
from tests.simulators.ffprobe import probe

pytestmark = [pytest.mark.e2e, pytest.mark.mosquitto, NEEDS_TOOLS, SLOW_PROCESSES]

SLOT = 30 * 60  # the simulated recorder records 20 minutes of every 30


async def _serve_and_probe(product: Product, env: dict[str, str], *argv: str) -> tuple[str, int]:
    """Run a stream verb as a process, ffprobe its local URL; (codec, frames)."""
    verb = argv[0]
    child = await product.children.start(
        verb, *argv, "--device", product.serial, "--listen", "127.0.0.1:0", "--duration", "30",
        "--data", str(product.run.status["data_endpoint"]), env=env,
    )  # fmt: skip
    url = (await child.read_line(within=20)).split()[0]
    assert url.startswith("rtsp://127.0.0.1:"), url
    result = await probe(url, seconds=2.5)
    assert (result.width, result.height) == (640, 360)
    # SIGTERM (what `stop` sends) is a clean stop, like Ctrl-C: exit status 0.
    assert await child.stop() == 0, child.log_tail()
    return result.codec_name, result.frames


async def _metrics(product: Product) -> dict[str, float]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.get(str(product.run.status["metrics"])) as response,
    ):
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


async def test_view_and_playback_processes_decode_h264_through_the_relay(
    product: Product,
) -> None:
    env = await product.login_cli("demo-friend")
    codec, frames = await _serve_and_probe(product, env, "view", "--channel", "1")
    assert codec == "h264"
    assert frames >= 25

    slot = int(time.time()) // SLOT * SLOT - SLOT  # the last finished recording
    start = datetime.fromtimestamp(slot + 60).isoformat()  # naive = local, as the CLI reads it
    end = datetime.fromtimestamp(slot + 180).isoformat()
    codec, frames = await _serve_and_probe(
        product, env, "playback", "--channel", "2", "--from", start, "--to", end
    )
    assert codec == "h264"
    assert frames >= 25

    # The relay's /metrics saw those sessions (and the fixture's probe session).  The last
    # one closes after a relay<->agent EOF round trip that may lag the client's exit.
    deadline = time.monotonic() + 10
    metrics = await _metrics(product)
    while metrics["nvrshare_relay_sessions_open"] != 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        metrics = await _metrics(product)
    assert metrics["nvrshare_relay_sessions_open"] == 0
    assert metrics['nvrshare_relay_bytes_relayed_total{direction="down"}'] > 50_000
    assert metrics['nvrshare_relay_bytes_relayed_total{direction="up"}'] > 0
    closed = sum(v for k, v in metrics.items() if k.startswith("nvrshare_relay_sessions_closed"))
    assert closed >= 3
    assert metrics["nvrshare_relay_session_setup_seconds_count"] >= 3
    # ffprobe opens more than one relay session per run (DESCRIBE, then the media).
    assert any(re.match(r"nvrshare_relay_session_setup_seconds_bucket", k) for k in metrics)
