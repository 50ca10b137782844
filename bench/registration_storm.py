"""registration_storm: K devices register at once, then survive a broker restart.

Setup: `nvrshare relay` as a real process (SQLite, its embedded supervised
mosquitto with dynamic security, registry, provisioning endpoint), with a
manufacturing manifest listing K serials and their verification codes.  K
simulated devices run in `WORKERS` spawned processes (`bench.fleet`: the
agent's real `ControlChannel` per device, see there).

1. provisioning: every device claims its own broker account through the
   relay's provisioning endpoint (claim check, scrypt hash of the code, key
   pinned in the store, a dynsec account + ACL created in mosquitto); timed
   separately, from the first claim to the last answer;
2. storm: all devices start their control loop at the same instant; time
   until every one of them is registered (the relay answered its signed
   registration with `accepted`, which it sends once the device is online in
   its registry);
3. broker restart: SIGTERM to the relay's mosquitto (its supervisor starts
   it again on the same port, with the same accounts); time from the signal
   until 95% and 100% of the devices are registered again, each having lost
   its connection and reconnected with full-jitter backoff.

One run per `run()` (a run takes most of the 2-minute budget); K is in the
figures.  Every process (relay group incl. mosquitto, fleet workers) is
stopped on the way out.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.process
import multiprocessing.queues
import os
import queue
import secrets
import shutil
import signal
import tempfile
import time
from pathlib import Path

import psutil

from bench.common import BenchResult
from bench.fleet import FleetSpec, worker
from bench.product import profile_env
from nvrshare.demo_processes import Children

WORKERS = 2
CLAIMS_PER_SOURCE = 50  # the relay allows 60 claims per source address per 10 minutes
ONLINE_LIMIT = 60.0
RESTART_LIMIT = 130.0
PROVISION_LIMIT = 600.0


class _Fleet:
    """The worker processes and what they report."""

    def __init__(self, specs: list[FleetSpec]) -> None:
        context = multiprocessing.get_context("spawn")
        self.events: multiprocessing.queues.Queue[object] = context.Queue()
        self.go = context.Event()
        self.stop = context.Event()
        self.processes: list[multiprocessing.process.BaseProcess] = [
            context.Process(target=worker, args=(spec, self.events, self.go, self.stop))
            for spec in specs
        ]
        self.registered: dict[str, bool] = {}
        self.history: list[tuple[str, bool, float]] = []
        self.grants: dict[str, tuple[int, int]] = {}  # worker -> (holding a set, refused)

    def start(self) -> None:
        for process in self.processes:
            process.start()

    async def next_event(self, within: float) -> tuple[object, ...] | None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                if not any(p.is_alive() for p in self.processes):
                    raise RuntimeError("every fleet worker exited") from None
                await asyncio.sleep(0.01)
                continue
            assert isinstance(event, tuple)
            if event[0] == "changes":
                for serial, registered, at in event[1]:
                    self.registered[serial] = registered
                    self.history.append((serial, registered, at))
            elif event[0] == "grants":
                self.grants[str(event[1])] = (int(event[2]), int(event[3]))
            return event
        return None

    async def until(self, done: object, within: float) -> bool:
        """Consume events until `done()` holds (True) or `within` s pass (False)."""
        deadline = time.monotonic() + within
        while not done():  # type: ignore[operator]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await self.next_event(min(remaining, 0.5))
        return True

    def close(self) -> None:
        self.stop.set()
        self.go.set()  # a worker still waiting to start must notice the stop
        for process in self.processes:
            process.join(timeout=15)
            if process.is_alive():
                process.kill()
                process.join()


def _specs(
    count: int, codes: list[str], serials: list[str], status: dict[str, object], work: Path
) -> list[FleetSpec]:
    host, _, port = str(status["broker_url"]).removeprefix("mqtt://").rpartition(":")
    devices = [
        (serials[i], codes[i], f"127.0.{1 + i // CLAIMS_PER_SOURCE // 250}."
         f"{2 + i // CLAIMS_PER_SOURCE % 250}")
        for i in range(count)
    ]  # fmt: skip
    return [
        FleetSpec(
            devices=tuple(devices[w::WORKERS]),
            provisioning_url=str(status["provisioning"]),
            broker_host=host,
            broker_port=int(port),
            state_dir=work / f"fleet-{w}",
        )
        for w in range(WORKERS)
    ]


def _mosquitto(relay_pid: int) -> psutil.Process:
    for child in psutil.Process(relay_pid).children(recursive=True):
        if child.name() == "mosquitto":
            return child
    raise RuntimeError("the relay's mosquitto is not running")


class _CpuMeters:
    """CPU seconds used by the relay, its mosquitto and the fleet since the last `take()`."""

    def __init__(self, relay_pid: int, fleet: _Fleet) -> None:
        self._relay = psutil.Process(relay_pid)
        self._workers = [psutil.Process(p.pid) for p in fleet.processes if p.pid is not None]
        self._last = self._read()

    def _read(self) -> dict[tuple[str, int], float]:
        found = [("relay", self._relay), *(("fleet", w) for w in self._workers)]
        found += [
            ("mosquitto", child)
            for child in self._relay.children(recursive=True)
            if child.name() == "mosquitto"
        ]
        used: dict[tuple[str, int], float] = {}
        for part, process in found:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            used[part, process.pid] = times.user + times.system
        return used

    def take(self) -> dict[str, float]:
        # A restarted mosquitto is a new pid: its time counts from zero.
        now = self._read()
        used = {"relay": 0.0, "mosquitto": 0.0, "fleet": 0.0}
        for key, seconds in now.items():
            used[key[0]] += seconds - self._last.get(key, 0.0)
        self._last = now
        return used


def _back_times(history: list[tuple[str, bool, float]], since: float) -> dict[str, float]:
    """Per device: when it was registered again after losing it at or after `since`."""
    lost: set[str] = set()
    back: dict[str, float] = {}
    for serial, registered, at in history:
        if at < since or serial in back:
            continue
        if not registered:
            lost.add(serial)
        elif serial in lost:
            back[serial] = at - since
    return back


async def _run(quick: bool, relay_profile: Path | None) -> BenchResult:
    count = 60 if quick else int(os.environ.get("NVRSHARE_BENCH_STORM_K", "2000"))
    result = BenchResult(name="registration_storm")
    work = Path(tempfile.mkdtemp(prefix="nvrshare-bench-storm-"))
    serials = [f"BENCH{i:06d}" for i in range(count)]
    codes = [secrets.token_hex(4).upper() for _ in range(count)]
    manifest = work / "manifest.csv"
    manifest.write_text(
        "".join(f"{s},{c}\n" for s, c in zip(serials, codes, strict=True)), encoding="utf-8"
    )
    config = work / "relay.toml"
    config.write_text(
        f'data_dir = "{work / "relay"}"\nhttp_port = 0\n\n'
        f'[dataplane]\nport = 0\n\n[devices]\nmanifest = "{manifest}"\n',
        encoding="utf-8",
    )
    fleet: _Fleet | None = None
    try:
        async with Children(work) as children:
            env = profile_env(work, relay_profile) if relay_profile is not None else None
            relay = await children.start("relay", "relay", "--config", str(config), env=env)
            status = (await relay.read_json(within=30))["relay"]
            assert isinstance(status, dict)
            fleet = _Fleet(_specs(count, codes, serials, status, work))
            started = time.monotonic()
            fleet.start()
            provision_times: list[float] = []
            failures: list[str] = []
            while len(provision_times) < WORKERS:
                event = await fleet.next_event(PROVISION_LIMIT)
                if event is None:
                    raise RuntimeError(f"provisioning took over {PROVISION_LIMIT:g} s")
                if event[0] == "provisioned":
                    provision_times.append(float(event[1]))  # type: ignore[arg-type]
                    failures.extend(event[2])  # type: ignore[arg-type]
            provisioning = time.monotonic() - started
            ready = count - len(failures)
            meters = _CpuMeters(relay.pid, fleet)
            go = time.monotonic()
            fleet.go.set()
            all_online = await fleet.until(
                lambda: sum(fleet.registered.values()) >= ready, ONLINE_LIMIT
            )
            storm_cpu = meters.take()
            refused_in_storm = sum(refused for _, refused in fleet.grants.values())
            online_at = max((at for _, up, at in fleet.history if up), default=go)
            online_seconds = online_at - go
            registered_first = sum(fleet.registered.values())
            await asyncio.sleep(1.0)
            mosquitto = _mosquitto(relay.pid)
            killed = time.monotonic()
            mosquitto.send_signal(signal.SIGTERM)
            await fleet.until(
                lambda: len(_back_times(fleet.history, killed)) >= ready, RESTART_LIMIT
            )
            restart_cpu = meters.take()
            back = sorted(_back_times(fleet.history, killed).values())
            # Every registered device must end up holding its grant set.
            await fleet.until(lambda: sum(h for h, _ in fleet.grants.values()) >= ready, 10)
            holding = sum(held for held, _ in fleet.grants.values())
            grants_refused = sum(refused for _, refused in fleet.grants.values())
    finally:
        if fleet is not None:
            fleet.close()
        shutil.rmtree(work, ignore_errors=True)
    p95_index = max(0, -(-95 * ready // 100) - 1)
    result.figures = {
        "agents": float(count),
        "provisioning_failures": float(len(failures)),
        "provisioning_s": provisioning,
        "provisioning_per_device_ms": provisioning / count * 1000,
        "register_all_agents_s": online_seconds if all_online else float("nan"),
        "registered_after_storm": float(registered_first),
        "after_broker_restart_95pct_s": back[p95_index] if len(back) > p95_index else float("nan"),
        "after_broker_restart_100pct_s": back[-1] if len(back) >= ready else float("nan"),
        "back_after_restart": float(len(back)),
        "agents_holding_grant_set": float(holding),
        "grant_sets_refused_in_storm": float(refused_in_storm),
        "grant_sets_refused_after_restart": float(grants_refused - refused_in_storm),
    }
    unreached = [key for key, value in result.figures.items() if value != value]  # NaN
    for key in unreached:
        del result.figures[key]
    if unreached:
        result.notes.append(f"not reached in time (no figure): {', '.join(unreached)}")
    result.runs = {"provisioning_s_per_worker": provision_times}
    for phase, used in (("storm", storm_cpu), ("restart", restart_cpu)):
        for part, seconds in used.items():
            result.figures[f"{phase}_cpu_s_{part}"] = seconds
    goal_key = f"register_{count}_agents_s"
    result.goals = {
        "register_all_agents_s": "<= 30 (for 2,000)",
        "after_broker_restart_95pct_s": "<= 60",
        "after_broker_restart_100pct_s": "<= 120",
        "provisioning_failures": "== 0",
    }
    figures = result.figures
    nan = float("nan")
    result.verdicts = {"provisioning_failures": not failures}
    if count >= 2000:
        result.verdicts |= {
            "register_all_agents_s": figures.get("register_all_agents_s", nan) <= 30,
            "after_broker_restart_95pct_s": figures.get("after_broker_restart_95pct_s", nan) <= 60,
            "after_broker_restart_100pct_s": figures.get("after_broker_restart_100pct_s", nan)
            <= 120,
        }
    else:
        result.notes.append(f"the timing goals are stated for 2,000 agents; K={count}: no verdict")
    result.notes.append(
        f"K={count} simulated agents ({goal_key}) in {WORKERS} processes, each the agent's real "
        "ControlChannel (bench/fleet.py); broker restart = SIGTERM to the relay's embedded "
        "mosquitto, restarted by the relay's supervisor; one run (not a median): a run "
        "takes most of the time budget; NaN = not reached within "
        f"{ONLINE_LIMIT:g} s (storm) / {RESTART_LIMIT:g} s (restart)"
    )
    result.notes.append(
        "agents_holding_grant_set: devices holding a verified grant set at the end (should be "
        "every provisioned one); grant_sets_refused_*: sets the agents refused (the retained "
        "version-0 set from provisioning; a republished set of the version they hold)"
    )
    if failures:
        result.notes.append(f"{len(failures)} provisioning failures; first: {failures[0]:.300}")
    return result


def run(quick: bool) -> BenchResult:
    # NVRSHARE_BENCH_PROFILE_RELAY=FILE: the relay runs under cProfile (a diagnostic).
    profile = os.environ.get("NVRSHARE_BENCH_PROFILE_RELAY")
    return asyncio.run(_run(quick, Path(profile).resolve() if profile else None))
