"""`python -m bench.run [names...]`: run benchmarks, print a table, write results/latest.json.

Every benchmark is bounded in time (the whole set stays under 10 minutes on
2 cores) and talks to loopback only.  `--quick` shortens each run (smoke
test); the figures in BENCHMARKS.md come from a full run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import BenchResult, machine

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def _lazy(module: str) -> Callable[[bool], BenchResult]:
    def run(quick: bool) -> BenchResult:
        imported = __import__(f"bench.{module}", fromlist=["run"])
        return imported.run(quick)  # type: ignore[no-any-return]

    return run


BENCHMARKS: dict[str, Callable[[bool], BenchResult]] = {
    "relay_throughput": _lazy("relay_throughput"),
    "tokens": _lazy("tokens"),
    "concurrent_sessions": _lazy("concurrent_sessions"),
    "session_setup": _lazy("session_setup"),
    "agent_footprint": _lazy("agent_footprint"),
    "registration_storm": _lazy("registration_storm"),
}


def _fmt(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


def print_table(results: list[BenchResult]) -> None:
    rows: list[tuple[str, str, str, str]] = []
    for result in results:
        if not result.measured:
            rows.append((result.name, "-", "not measured yet", ""))
            continue
        for key, value in {**result.figures, **result.baselines, **result.ratios}.items():
            goal = result.goals.get(key, "")
            verdict = result.verdicts.get(key)
            mark = "" if verdict is None else (" ok" if verdict else " MISSED")
            rows.append((result.name, key, _fmt(value), f"{goal}{mark}"))
    widths = [
        max(len(row[i]) for row in [("bench", "figure", "value", "goal"), *rows]) for i in range(4)
    ]
    header = ("bench", "figure", "value", "goal")
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "names", nargs="*", help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}"
    )
    parser.add_argument("--quick", action="store_true", help="shorter runs (smoke test)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    results: list[BenchResult] = []
    for name in args.names or list(BENCHMARKS):
        print(f"== {name}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        result = BENCHMARKS[name](args.quick)
        result.seconds = time.perf_counter() - start
        results.append(result)
    print_table(results)
    report = {
        "machine": machine(),
        "quick": args.quick,
        "benchmarks": [r.as_json() for r in results],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
