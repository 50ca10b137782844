"""The relay's device registry: MQTT registrations/state in, signed grant sets out,
and bootstrap provisioning (claims → per-device broker credentials)."""

from nvrshare.relay.registry.claims import Manifest, ManifestEntry
from nvrshare.relay.registry.component import (
    DevicePlane,
    DevicePlaneSettings,
    RunningDevicePlane,
    settings_from_mapping,
)
from nvrshare.relay.registry.grant_publisher import GrantPublisher, build_grant_set
from nvrshare.relay.registry.provisioning import (
    ClaimRefused,
    ProvisioningConfig,
    ProvisioningService,
    provisioning_routes,
)
from nvrshare.relay.registry.registry import Registry, RegistryConfig, UplinkHandler

__all__ = [
    "ClaimRefused",
    "DevicePlane",
    "DevicePlaneSettings",
    "GrantPublisher",
    "Manifest",
    "ManifestEntry",
    "ProvisioningConfig",
    "ProvisioningService",
    "Registry",
    "RegistryConfig",
    "RunningDevicePlane",
    "UplinkHandler",
    "build_grant_set",
    "provisioning_routes",
    "settings_from_mapping",
]
