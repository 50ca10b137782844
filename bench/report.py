"""`python -m bench.report`: results/latest.json as the Markdown table in BENCHMARKS.md."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.run import RESULTS


def _fmt(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


def render(report: dict[str, object]) -> str:
    machine = report["machine"]
    assert isinstance(machine, dict)
    lines = [
        f"Machine: {machine['cores']} cores, {machine['cpu_model']}, kernel {machine['kernel']}, "
        f"Python {machine['python']}; run {machine['date']}; "
        f"load average at the end {machine.get('load_average_at_end')}.",
        "",
        "| benchmark | figure | value | baseline / goal | verdict |",
        "|---|---|---|---|---|",
    ]
    benchmarks = report["benchmarks"]
    assert isinstance(benchmarks, list)
    for bench in benchmarks:
        name = bench["name"]
        if not bench["measured"]:
            goals = ", ".join(f"{k} {v}" for k, v in bench["goals"].items())
            lines.append(f"| {name} | - | not measured yet | {goals} | - |")
            continue
        for group in ("figures", "baselines", "ratios"):
            for key, value in bench[group].items():
                goal = bench["goals"].get(key, "baseline" if group == "baselines" else "")
                verdict = bench["goals_met"].get(key)
                mark = "" if verdict is None else ("met" if verdict else "**missed**")
                lines.append(f"| {name} | {key} | {_fmt(value)} | {goal} | {mark} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS
    sys.stdout.write(render(json.loads(path.read_text(encoding="utf-8"))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
