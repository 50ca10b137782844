"""The Prometheus text exposition of the data plane's metrics."""

from __future__ import annotations

import pytest

from nvrshare.relay.dataplane.metrics import Counter, Gauge, Histogram, MetricsRegistry


def test_exposition_format() -> None:
    registry = MetricsRegistry()
    refusals = Counter("refusals_total", "Refusals by reason")
    registry.add(refusals)
    registry.add(Gauge("open", "Open sessions", lambda: {(): 3.0}))
    registry.add(
        Gauge("bytes_total", "Bytes", lambda: {(("direction", "up"),): 10.0}, monotonic=True)
    )
    setup = Histogram("setup_seconds", "Setup latency", [0.01, 0.1])
    registry.add(setup)
    refusals.inc(reason="timeout")
    refusals.inc(2, reason='we"ird\\')
    for value in (0.005, 0.05, 0.5, 0.01):
        setup.observe(value)
    text = registry.render()
    assert text.endswith("\n")
    lines = text.splitlines()
    assert "# TYPE refusals_total counter" in lines
    assert 'refusals_total{reason="timeout"} 1' in lines
    assert 'refusals_total{reason="we\\"ird\\\\"} 2' in lines
    assert "# TYPE open gauge" in lines
    assert "open 3" in lines
    assert "# TYPE bytes_total counter" in lines
    assert 'bytes_total{direction="up"} 10' in lines
    assert "# TYPE setup_seconds histogram" in lines
    assert 'setup_seconds_bucket{le="0.01"} 2' in lines  # le is inclusive
    assert 'setup_seconds_bucket{le="0.1"} 3' in lines
    assert 'setup_seconds_bucket{le="+Inf"} 4' in lines
    assert "setup_seconds_count 4" in lines
    assert any(line.startswith("setup_seconds_sum 0.56") for line in lines)


def test_misuse_is_rejected() -> None:
    registry = MetricsRegistry()
    registry.add(Counter("x_total", "x"))
    with pytest.raises(ValueError):
        registry.add(Counter("x_total", "again"))
    with pytest.raises(ValueError):
        Counter("y_total", "y").inc(-1)
    with pytest.raises(ValueError):
        Histogram("h", "h", [0.2, 0.1])
