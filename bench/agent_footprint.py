"""agent_footprint: the device agent's memory and CPU, idle and with 4 live sessions.

Setup: `bench.product.Product` (real processes: recorder simulator with
ISAPI, `nvrshare relay`, `nvrshare agent` with the `isapi` backend).  The
agent process (plus any children it has) is sampled with psutil:

1. idle: bound, registered, heartbeating, no session; RSS and CPU over
   several windows;
2. 4 live sessions: one `LocalRtspEndpoint` per channel 1-4 (a viewer with a
   live-view share) and one `ffmpeg -rtsp_transport tcp -i URL -c copy -f null`
   per endpoint pulling the main stream through relay and agent; RSS and CPU
   over the same number of windows.  CPU % per session = (loaded - idle) / 4.

Baseline in the same run: a bare `python` interpreter's RSS (same binary).
Figures are medians over the windows.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
import time
from contextlib import AsyncExitStack

import psutil

from bench.common import BenchResult, median
from bench.product import Product
from nvrshare.client.streams import LocalRtspEndpoint

SESSIONS = 4


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _rss_mib(processes: list[psutil.Process]) -> float:
    return float(sum(p.memory_info().rss for p in processes)) / 2**20


def _uss_mib(processes: list[psutil.Process]) -> float:
    """Memory only this tree holds (no shared library pages): what a second agent would add."""
    return float(sum(p.memory_full_info().uss for p in processes)) / 2**20


def _cpu(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        times = process.cpu_times()
        total += times.user + times.system
    return total


async def _windows(pid: int, count: int, seconds: float) -> tuple[list[float], list[float]]:
    """(RSS MiB, CPU % of one core) per window."""
    rss: list[float] = []
    cpu: list[float] = []
    for _ in range(count):
        processes = _tree(pid)
        before, started = _cpu(processes), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu.append((_cpu(processes) - before) / (time.perf_counter() - started) * 100)
        rss.append(_rss_mib(processes))
    return rss, cpu


AGENT_IMPORTS = (
    "import sys, nvrshare.agent.app, nvrshare.agent.cli, nvrshare.firmware_shim.backends.isapi; "
)
# The floor set by the libraries the agent is built on (asyncio + TLS, aiomqtt/paho for
# MQTT, aiohttp for ISAPI and provisioning, cryptography's Ed25519, msgpack): none of our code.
LIBRARY_IMPORTS = (
    "import asyncio, ssl, aiomqtt, aiohttp, msgpack; "
    "import cryptography.hazmat.primitives.asymmetric.ed25519; "
)
MIB_PER_MB = 1e6 / 2**20  # the goal is in MB (10^6 bytes), the figures in MiB


def _python_rss(code: str = "") -> float:
    """RSS (MiB) of a `python -c` that runs `code` and then waits."""
    process = subprocess.Popen(
        [sys.executable, "-c", f"{code}import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        time.sleep(2.0)  # imports done (bounded: an import error just ends it)
        return float(psutil.Process(process.pid).memory_info().rss) / 2**20
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _player(url: str) -> asyncio.subprocess.Process:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("ffmpeg is not installed")
    return await asyncio.create_subprocess_exec(
        ffmpeg, "-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i", url,
        "-c", "copy", "-f", "null", "-",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            async with asyncio.timeout(5):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


async def _run(quick: bool) -> BenchResult:
    windows, seconds = (2, 1.5) if quick else (5, 3.0)
    result = BenchResult(name="agent_footprint")
    players: list[asyncio.subprocess.Process] = []
    async with Product() as product, AsyncExitStack() as endpoints:
        assert product.agent is not None
        assert product.data is not None
        assert product.tokens is not None
        pid = product.agent.pid
        await asyncio.sleep(1.0 if quick else 2.0)  # settle after registration, grant sync
        idle_rss, idle_cpu = await _windows(pid, windows, seconds)
        opened: list[LocalRtspEndpoint] = []
        try:
            for channel in range(1, SESSIONS + 1):
                endpoint = await endpoints.enter_async_context(
                    LocalRtspEndpoint(
                        product.data, product.tokens, product.request(channel), port=0
                    )
                )
                opened.append(endpoint)
                players.append(await _player(endpoint.url))
            await asyncio.sleep(2.0 if quick else 3.0)  # RTSP setup, first frames
            load_rss, load_cpu = await _windows(pid, windows, seconds)
            live_uss = _uss_mib(_tree(pid))
            alive = sum(1 for player in players if player.returncode is None)
            sessions = sum(endpoint.sessions_opened for endpoint in opened)
            refusals = sum(len(endpoint.refusals) for endpoint in opened)
        finally:
            for player in players:
                await _stop(player)
    bare = _python_rss()
    # What the agent's own code costs: its modules imported, without the CLI's
    # other verbs (which `python -m nvrshare agent` imports too, see BENCHMARKS.md).
    agent_modules = _python_rss(AGENT_IMPORTS)
    libraries = _python_rss(LIBRARY_IMPORTS)
    result.runs = {
        "idle_rss_mib": idle_rss,
        "idle_cpu_percent": idle_cpu,
        "live_rss_mib": load_rss,
        "live_cpu_percent": load_cpu,
    }
    live_rss = median(load_rss)
    result.figures = {
        "players_alive_at_end": float(alive),
        "rss_mib_with_4_live_sessions": live_rss,
        "uss_mib_with_4_live_sessions": live_uss,
        "cpu_percent_with_4_live_sessions": median(load_cpu),
        "cpu_percent_per_live_session": (median(load_cpu) - median(idle_cpu)) / SESSIONS,
    }
    result.baselines = {
        "bare_python_rss_mib": bare,
        "agent_modules_only_rss_mib": agent_modules,
        "required_libraries_only_rss_mib": libraries,
        "agent_idle_rss_mib": median(idle_rss),
        "agent_idle_cpu_percent": median(idle_cpu),
    }
    result.ratios = {
        "live_rss_vs_bare_python": live_rss / bare,
        "live_rss_vs_required_libraries": live_rss / libraries,
    }
    result.goals = {"rss_mib_with_4_live_sessions": "<= 40 MB", "players_alive_at_end": "== 4"}
    result.verdicts = {
        "rss_mib_with_4_live_sessions": live_rss <= 40 * MIB_PER_MB,
        "players_alive_at_end": alive == SESSIONS,
    }
    result.notes.append(
        f"RSS in MiB (2^20 bytes) of the agent process tree; {windows} windows of {seconds:g} s "
        f"per phase; {sessions} relay sessions opened by the players, {refusals} refused; "
        "CPU % of one core"
    )
    return result


def run(quick: bool) -> BenchResult:
    return asyncio.run(_run(quick))
