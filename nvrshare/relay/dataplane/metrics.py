"""A small Prometheus text-exposition registry for the data plane.

Only what the data plane reports: labelled counters, gauges read from a
callback at scrape time (so the hot path never touches a metric), and
fixed-bucket histograms.  `render()` produces text format 0.0.4, which the
relay serves at `/metrics`.  Label values come from our own enums, never from
the wire, so they need no escaping beyond the format's own rules.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Sequence

__all__ = ["Counter", "Gauge", "Histogram", "MetricsRegistry"]

_Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _label_text(labels: _Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in labels) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class Counter:
    """A monotonically increasing count, optionally split by labels."""

    kind = "counter"

    def __init__(self, name: str, help_text: str) -> None:
        self.name = name
        self.help_text = help_text
        self._values: dict[_Labels, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        key = tuple(sorted(labels.items()))
        self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        return self._values.get(tuple(sorted(labels.items())), 0.0)

    def samples(self) -> Iterable[str]:
        for labels, value in sorted(self._values.items()):
            yield f"{self.name}{_label_text(labels)} {_number(value)}"


class Gauge:
    """A value read at scrape time from `read`, which returns {labels: value}.

    `monotonic=True` exposes it as a counter: for totals that are cheaper to
    sum when scraped than to count on the hot path (bytes relayed).
    """

    def __init__(
        self,
        name: str,
        help_text: str,
        read: Callable[[], dict[_Labels, float]],
        *,
        monotonic: bool = False,
    ) -> None:
        self.name = name
        self.help_text = help_text
        self._read = read
        self.kind = "counter" if monotonic else "gauge"

    def samples(self) -> Iterable[str]:
        for labels, value in sorted(self._read().items()):
            yield f"{self.name}{_label_text(labels)} {_number(value)}"


class Histogram:
    """Observations counted into fixed cumulative buckets (upper bounds, seconds)."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: Sequence[float]) -> None:
        if list(buckets) != sorted(buckets) or not buckets:
            raise ValueError("buckets must be a non-empty ascending sequence")
        self.name = name
        self.help_text = help_text
        self._bounds = [*buckets, math.inf]
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self._counts[bisect.bisect_left(self._bounds, value)] += 1
        self._sum += value
        self.count += 1

    def samples(self) -> Iterable[str]:
        cumulative = 0
        for bound, count in zip(self._bounds, self._counts, strict=True):
            cumulative += count
            yield f'{self.name}_bucket{{le="{_number(bound)}"}} {cumulative}'
        yield f"{self.name}_sum {_number(self._sum)}"
        yield f"{self.name}_count {self.count}"


Metric = Counter | Gauge | Histogram


class MetricsRegistry:
    """An ordered set of metrics rendered together."""

    def __init__(self) -> None:
        self._metrics: dict[str, Metric] = {}

    def add(self, metric: Metric) -> Metric:
        if metric.name in self._metrics:
            raise ValueError(f"metric {metric.name} is already registered")
        self._metrics[metric.name] = metric
        return metric

    def render(self) -> str:
        """The Prometheus text exposition (format 0.0.4) of every metric."""
        lines: list[str] = []
        for metric in self._metrics.values():
            lines.append(f"# HELP {metric.name} {metric.help_text}")
            lines.append(f"# TYPE {metric.name} {metric.kind}")
            lines.extend(metric.samples())
        return "\n".join(lines) + "\n"
