"""The data plane's Prometheus metrics: sessions open/pending, bytes, setup time, refusals.

Gauges and byte totals are read from the live-session index at scrape time,
so the byte movers only bump plain integer counters on their hot path.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from nvrshare.relay.dataplane.live import LiveSession
from nvrshare.relay.dataplane.metrics import Counter, Gauge, Histogram, MetricsRegistry

__all__ = ["SETUP_BUCKETS", "DataPlaneMetrics"]

SETUP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12)


class DataPlaneMetrics:
    """The registry and the instruments the data plane updates."""

    def __init__(
        self, live: Callable[[], Collection[LiveSession]], pending: Callable[[], int]
    ) -> None:
        self._live = live
        self.registry = MetricsRegistry()
        self.refusals = Counter(
            "nvrshare_relay_refusals_total", "Session hellos refused, by reason"
        )
        self.closed = Counter("nvrshare_relay_sessions_closed_total", "Sessions ended, by reason")
        self.closed_bytes = {"up": 0, "down": 0}
        self.setup = Histogram(
            "nvrshare_relay_session_setup_seconds",
            "Client hello received to both sides accepted",
            SETUP_BUCKETS,
        )
        self.registry.add(
            Gauge(
                "nvrshare_relay_sessions_open",
                "Sessions currently relaying bytes",
                lambda: {(): float(len(live()))},
            )
        )
        self.registry.add(
            Gauge(
                "nvrshare_relay_sessions_pending",
                "Admitted sessions waiting for their agent",
                lambda: {(): float(pending())},
            )
        )
        self.registry.add(
            Gauge(
                "nvrshare_relay_bytes_relayed_total",
                "Bytes relayed, up = client to device, down = device to client",
                self._bytes,
                monotonic=True,
            )
        )
        self.registry.add(self.setup)
        self.registry.add(self.refusals)
        self.registry.add(self.closed)

    def _bytes(self) -> dict[tuple[tuple[str, str], ...], float]:
        live = self._live()
        up = self.closed_bytes["up"] + sum(s.relay.bytes_up for s in live)
        down = self.closed_bytes["down"] + sum(s.relay.bytes_down for s in live)
        return {(("direction", "up"),): float(up), (("direction", "down"),): float(down)}
