"""The product relay, assembled: control plane + device plane + data plane + portal.

`RelayStack(load_settings(path))` is what `nvrshare relay` runs; see `stack`.
"""

from nvrshare.relay.assembly.dataplane import DataPlaneComponent, RevocationFollower
from nvrshare.relay.assembly.ptz import PtzGateway
from nvrshare.relay.assembly.settings import (
    DataPortSettings,
    StackSettings,
    load_settings,
)
from nvrshare.relay.assembly.stack import STATUS_FILE, RelayStack, read_status
from nvrshare.relay.assembly.uplink import DeviceUplink

__all__ = [
    "STATUS_FILE",
    "DataPlaneComponent",
    "DataPortSettings",
    "DeviceUplink",
    "PtzGateway",
    "RelayStack",
    "RevocationFollower",
    "StackSettings",
    "load_settings",
    "read_status",
]
