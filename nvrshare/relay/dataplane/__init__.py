"""The relay's data plane: session admission, agent pairing and the byte mover.

Wiring (the relay app does this)::

    plane = DataPlane(
        DataPlaneConfig(host=..., port=..., advertised_host=...),
        key_ring=verifying_keys,      # public keys only: signing stays with the control plane
        grant_state=...,              # GrantState: share epoch per device, revoked token ids
        presence=...,                 # DevicePresence: is the device's agent connected
        publish_offer=...,            # async (SessionOffer) -> None, MQTT QoS 1 to the device
    )
    async with plane:
        ...  # plane.revoke(serial, account_id=..., token_ids=...) when a share stops
        ...  # plane.metrics.render() for /metrics
"""

from nvrshare.relay.dataplane.admission import (
    DevicePresence,
    GrantState,
    Refused,
    SessionLimits,
)
from nvrshare.relay.dataplane.metrics import MetricsRegistry
from nvrshare.relay.dataplane.relaying import CloseReason, RelayConfig, RelaySession
from nvrshare.relay.dataplane.server import (
    DataPlane,
    DataPlaneConfig,
    LiveSession,
    OfferPublisher,
)
from nvrshare.relay.dataplane.splice import HAVE_SPLICE, start_relay

__all__ = [
    "HAVE_SPLICE",
    "CloseReason",
    "DataPlane",
    "DataPlaneConfig",
    "DevicePresence",
    "GrantState",
    "LiveSession",
    "MetricsRegistry",
    "OfferPublisher",
    "Refused",
    "RelayConfig",
    "RelaySession",
    "SessionLimits",
    "start_relay",
]
