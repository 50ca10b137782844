"""The data plane's public surface is deliberate: this list changes only on purpose."""

from __future__ import annotations

import nvrshare.relay.dataplane

PUBLIC_NAMES = [
    "HAVE_SPLICE",
    "CloseReason",
    "DataPlane",
    "DataPlaneConfig",
    "DevicePresence",
    "GrantState",
    "LiveSession",
    "MetricsRegistry",
    "OfferPublisher",
    "RelayConfig",
    "RelaySession",
    "Refused",
    "SessionLimits",
    "start_relay",
]


def test_public_names() -> None:
    assert sorted(nvrshare.relay.dataplane.__all__) == sorted(PUBLIC_NAMES)
    for name in PUBLIC_NAMES:
        assert getattr(nvrshare.relay.dataplane, name) is not None
