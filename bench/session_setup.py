"""session_setup: time from the client's hello to the first stream byte, real processes.

Setup: `bench.product.Product` (recorder simulator, `nvrshare relay` with its
managed mosquitto, `nvrshare agent` with the ISAPI backend, a viewer with a
live-view share on channels 1-4).  The driver starts one session every
1/RATE s (500 at 50/s; `--quick`: 100), each as its own task so a slow one
never delays the schedule:

* t0: just before connecting to the relay's data port (the share token was
  fetched before, over HTTP, through the SDK's token cache; not timed);
* accepted: `HelloAccepted` arrived: the relay checked the token, published
  the offer to the device over MQTT (QoS 1), the agent verified it, dialled
  the data port and was paired with the client;
* first byte: the client sent an RTSP `OPTIONS` for `/live/<ch>/main` and
  the first byte of the answer arrived: the agent's RTSP gate forwards it to
  the recorder's RTSP server (a fresh connection per session), so this is the
  first byte the device sends in the stream.

How much of it is MQTT: a separate baseline measured in the same run, a
QoS 1 publish -> delivery round trip with aiomqtt through a private mosquitto
(same binary, same host, anonymous listener) - the relay's broker accepts
only per-device credentials, and the product exposes no timestamp for the
offer's publish, so the offer's own leg is not isolated.  How much of it is
ISAPI: the backend's `live_source()` with its channel list cache switched
off (one ISAPI request, what an offer costs when the list is older than
`channel_cache_seconds`), and as the agent runs it (cached).
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiomqtt

from bench.common import BenchResult
from bench.product import Product, rtsp_options
from nvrshare.demo_media import recorder_config
from nvrshare.firmware_shim import open_recorder
from tests.support.mosquitto import MosquittoProcess, MosquittoSetup

RATE = 50.0
FIRST_BYTE_LIMIT = 10.0


def _pct(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _one(product: Product, channel: int, token: bytes) -> tuple[float, float]:
    """(ms to HelloAccepted, ms to the first stream byte) for one session."""
    started = time.perf_counter()
    session = await product.open_live(channel, token)
    accepted = time.perf_counter()
    try:
        session.writer.write(rtsp_options(channel))
        first = session.initial
        if not first:
            async with asyncio.timeout(FIRST_BYTE_LIMIT):
                first = await session.reader.read(1)
        if not first:
            raise RuntimeError("the session ended before its first byte")
        done = time.perf_counter()
    finally:
        await session.close()
    return (accepted - started) * 1000, (done - started) * 1000


async def _setups(
    product: Product, count: int
) -> tuple[list[float], list[float], list[str]]:
    tasks: list[asyncio.Task[tuple[float, float]]] = []
    interval = 1 / RATE
    begin = time.perf_counter()
    for index in range(count):
        # The token comes from the SDK's cache (a fresh one every 16 sessions), outside t0.
        token = await product.token()
        delay = begin + index * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_one(product, 1 + index % 4, token)))
    results = await asyncio.gather(*tasks, return_exceptions=True)
    accepted = [r[0] for r in results if isinstance(r, tuple)]
    first = [r[1] for r in results if isinstance(r, tuple)]
    failures = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    return accepted, first, failures


async def _mqtt_round_trips(samples: int) -> list[float]:
    """QoS 1 publish -> delivery (ms) through a private mosquitto, one at a time."""
    with tempfile.TemporaryDirectory(prefix="nvrshare-bench-mqtt-") as tmp:
        setup = MosquittoSetup(dynsec=False, allow_anonymous=True)
        async with (
            MosquittoProcess(setup, Path(tmp)) as broker,
            aiomqtt.Client(broker.host, broker.port, identifier="bench-sub") as sub,
            aiomqtt.Client(broker.host, broker.port, identifier="bench-pub") as pub,
        ):
            await sub.subscribe("bench/offer", qos=1)
            times: list[float] = []
            messages = sub.messages
            for _ in range(samples):
                started = time.perf_counter()
                await pub.publish("bench/offer", b"x" * 200, qos=1)
                async with asyncio.timeout(5):
                    await anext(messages)
                times.append((time.perf_counter() - started) * 1000)
            return times


async def _isapi_live_source(product: Product, samples: int, *, cached: bool) -> list[float]:
    """The agent backend's `live_source()` (ms) on the same recorder; uncached = one request."""
    config = recorder_config(product.run.recorder)
    if not cached:
        config = dataclasses.replace(config, settings={"channel_cache_seconds": "0"})
    times: list[float] = []
    async with open_recorder(config) as recorder:
        await recorder.live_source(1)  # warm: connection, digest nonce
        for index in range(samples):
            started = time.perf_counter()
            await recorder.live_source(1 + index % 4)
            times.append((time.perf_counter() - started) * 1000)
    return times


async def _run(quick: bool, profile: Path | None = None) -> BenchResult:
    count = 100 if quick else 500
    result = BenchResult(name="session_setup")
    async with Product(profile_agent=profile) as product:
        # Warm-up: the first sessions pay for imports and connection pools.
        for channel in range(1, 5):
            await _one(product, channel, await product.token())
        accepted, first, failed = await _setups(product, count)
        isapi = await _isapi_live_source(product, 50 if quick else 200, cached=False)
        isapi_cached = await _isapi_live_source(product, 50 if quick else 200, cached=True)
    mqtt = await _mqtt_round_trips(100 if quick else 300)
    chunk = max(1, -(-len(first) // 5))
    result.runs = {
        "first_byte_p50_ms_per_fifth": [
            statistics.median(first[i : i + chunk]) for i in range(0, len(first), chunk)
        ],
    }
    result.figures = {
        "sessions": float(count),
        "failed_sessions": float(len(failed)),
        "hello_to_accepted_p50_ms": _pct(accepted, 0.50),
        "hello_to_accepted_p99_ms": _pct(accepted, 0.99),
        "p50_ms": _pct(first, 0.50),
        "p99_ms": _pct(first, 0.99),
    }
    result.baselines = {
        "mqtt_qos1_round_trip_p50_ms": _pct(mqtt, 0.50),
        "mqtt_qos1_round_trip_p99_ms": _pct(mqtt, 0.99),
        "isapi_live_source_p50_ms": _pct(isapi, 0.50),
        "isapi_live_source_p99_ms": _pct(isapi, 0.99),
        "isapi_live_source_cached_p50_ms": _pct(isapi_cached, 0.50),
    }
    result.ratios = {
        "mqtt_share_of_p50": _pct(mqtt, 0.50) / _pct(first, 0.50),
        "isapi_share_of_p50": _pct(isapi, 0.50) / _pct(first, 0.50),
    }
    result.goals = {"p50_ms": "<= 10", "p99_ms": "<= 40", "failed_sessions": "== 0"}
    result.verdicts = {
        "p50_ms": result.figures["p50_ms"] <= 10,
        "p99_ms": result.figures["p99_ms"] <= 40,
        "failed_sessions": not failed,
    }
    if failed:
        result.notes.append(f"{len(failed)} failed; first: {failed[0]:.300}")
    result.notes.append(
        f"{count} live sessions started at {RATE:g}/s over channels 1-4; first byte = first "
        "byte of the agent gate's answer to RTSP OPTIONS; MQTT share = a QoS 1 publish->"
        "delivery round trip through a private mosquitto (aiomqtt), same run, "
        f"{len(mqtt)} samples (the offer's own MQTT leg is not isolated); ISAPI share = "
        "the agent backend's `live_source` with its channel list cache off (one ISAPI "
        "request, digest auth) timed against the same simulated recorder, sequentially; "
        "the agent itself answers most offers from the cached list (cached figure)"
    )
    return result


def run(quick: bool) -> BenchResult:
    return asyncio.run(_run(quick))


def _profile_main() -> None:
    """`python -m bench.session_setup PROFILE`: a quick run with the agent under cProfile."""
    import pstats  # noqa: PLC0415 - only for this diagnostic entry point

    out = Path(sys.argv[1])
    result = asyncio.run(_run(True, profile=out))
    print(result.figures, result.baselines)
    pstats.Stats(str(out)).sort_stats("cumulative").print_stats(35)


if __name__ == "__main__":
    _profile_main()
