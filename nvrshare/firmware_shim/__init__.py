"""firmware_shim: the only way the agent reaches a recorder's firmware.

`open_recorder(RecorderConfig(backend=...))` yields a `Recorder`; its methods
return the values in `models` and raise only the errors in `errors`.
"""

from nvrshare.firmware_shim.errors import (
    AuthFailed,
    BadResponse,
    ConfigError,
    DeviceBusy,
    DeviceError,
    DeviceTimeout,
    DeviceUnreachable,
    NoSuchChannel,
    NotFound,
    NotSupported,
    ShimError,
    ShimUsageError,
    UntrustedDevice,
)
from nvrshare.firmware_shim.interface import (
    BACKENDS,
    Recorder,
    RecorderConfig,
    TalkChannel,
    open_recorder,
)
from nvrshare.firmware_shim.models import (
    AlarmEvent,
    AlarmKind,
    AudioCodec,
    Capability,
    Channel,
    DeviceInfo,
    PtzPreset,
    PtzStatus,
    PtzVector,
    RecordingSegment,
    StreamKind,
    StreamSource,
)

__all__ = [
    "BACKENDS",
    "AlarmEvent",
    "AlarmKind",
    "AudioCodec",
    "AuthFailed",
    "BadResponse",
    "Capability",
    "Channel",
    "ConfigError",
    "DeviceBusy",
    "DeviceError",
    "DeviceInfo",
    "DeviceTimeout",
    "DeviceUnreachable",
    "NoSuchChannel",
    "NotFound",
    "NotSupported",
    "PtzPreset",
    "PtzStatus",
    "PtzVector",
    "Recorder",
    "RecorderConfig",
    "RecordingSegment",
    "ShimError",
    "ShimUsageError",
    "StreamKind",
    "StreamSource",
    "TalkChannel",
    "UntrustedDevice",
    "open_recorder",
]
