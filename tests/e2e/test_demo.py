"""`nvrshare demo` (what `make demo` runs) end to end, as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import sys
from pathlib import Path

import psutil
import pytest

from tests.e2e.conftest import NEEDS_TOOLS, SLOW_PROCESSES

pytestmark = [pytest.mark.e2e, pytest.mark.mosquitto, NEEDS_TOOLS, SLOW_PROCESSES]

KEY_LINES = (
    "✓ relay started",
    "✓ recorder simulator started",
    "✓ agent started",
    "✓ owner adds the recorder",
    "✓ owner shares, recipient accepts",
    "✓ live view, channel 1",
    "✓ PTZ, channel 1",
    "✓ playback, channel 2",
    "✓ channel 3 (not shared): refused: channel_not_granted",
    "✓ two-way audio, channel 1 (not granted): refused: permission_denied",
    "✓ relay metrics",
    "✓ processes stopped: agent=0, relay=0, recorder=0",
)


def _leftovers(workdir: str) -> list[str]:
    """Processes still running whose command line mentions the demo's directory."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(workdir in part for part in process.info["cmdline"] or ()):
                found.append(" ".join(process.info["cmdline"]))
    return found


@pytest.mark.timeout(120)
async def test_demo_passes_and_leaves_nothing_running() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NVRSHARE_HOME", "NVRSHARE_DATA")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nvrshare", "demo",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        start_new_session=True, env=env,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(process.communicate(), 90)
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    report = out.decode()
    assert process.returncode == 0, report + err.decode()[-2000:]
    for line in KEY_LINES:
        assert line in report, f"missing {line!r} in:\n{report}"
    frames = [int(n) for n in re.findall(r"(\d+) H\.264 frames", report)]
    assert len(frames) == 2, report
    assert min(frames) >= 25, report
    assert re.search(r"pan position went [+-]\d\.\d+ → [+-]\d\.\d+", report), report
    summary = re.search(r"demo PASSED: (\d+)/(\d+) steps in ([\d.]+) s", report)
    assert summary is not None, report
    assert summary[1] == summary[2]
    print(f"demo took {summary[3]} s")
    assert float(summary[3]) < 90
    workdir = re.search(r"nvrshare demo in (\S+)", report)
    assert workdir is not None
    assert not Path(workdir[1]).exists()  # noqa: ASYNC240 - cleaned up after a passing run
    assert _leftovers(workdir[1]) == []  # no relay, mosquitto, agent or simulator left


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
async def test_an_interrupted_demo_stops_every_process(how: signal.Signals) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NVRSHARE_HOME", "NVRSHARE_DATA")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nvrshare", "demo",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        start_new_session=True, env=env,
    )  # fmt: skip
    assert process.stdout is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(60):
            while "✓ agent started" not in "".join(seen):  # relay, mosquitto, recorder, agent up
                line = await process.stdout.readline()
                assert line, "".join(seen)
                seen.append(line.decode())
        process.send_signal(how)
        # Each child gets STOP_GRACE to stop: bound the whole stop generously.
        async with asyncio.timeout(60):
            rest, _ = await process.communicate()
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    report = "".join(seen) + rest.decode()
    assert process.returncode == 130, report
    assert "demo INTERRUPTED" in report
    workdir = re.search(r"nvrshare demo in (\S+)", report)
    assert workdir is not None
    assert _leftovers(workdir[1]) == [], report
    shutil.rmtree(workdir[1], ignore_errors=True)  # kept for a look after a failure
