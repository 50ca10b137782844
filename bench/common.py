"""What every benchmark shares: the result shape, medians, machine facts, CPU clocks.

A benchmark is a function `run(quick: bool) -> BenchResult`.  Figures are
medians over several runs; every figure that has a goal is compared with a
baseline measured in the same run (same machine, same moment), because on a
shared 2-core box absolute numbers drift by tens of percent.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import psutil


@dataclass(kw_only=True)
class BenchResult:
    name: str
    measured: bool = True
    figures: dict[str, float] = field(default_factory=dict)
    baselines: dict[str, float] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)
    goals: dict[str, str] = field(default_factory=dict)
    verdicts: dict[str, bool] = field(default_factory=dict)
    runs: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "measured": self.measured,
            "figures": self.figures,
            "baselines": self.baselines,
            "ratios": self.ratios,
            "goals": self.goals,
            "goals_met": self.verdicts,
            "runs": self.runs,
            "notes": self.notes,
            "seconds": round(self.seconds, 2),
        }


def not_measured(name: str, why: str, goals: dict[str, str]) -> BenchResult:
    """A benchmark whose subject does not exist yet: it says so, with no figures."""
    return BenchResult(name=name, measured=False, goals=goals, notes=[f"not measured yet: {why}"])


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, object]:
    return {
        "cores": os.cpu_count(),
        "cpu_model": cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "memory_mib": psutil.virtual_memory().total // (1024 * 1024),
        # Other work on a shared box skews absolute figures; ratios are measured in-run.
        "load_average_at_end": [round(load, 2) for load in os.getloadavg()],
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
