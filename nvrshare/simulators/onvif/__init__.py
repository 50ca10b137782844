"""A simulated ONVIF camera: the SOAP services onvif-zeep-async and Home Assistant use.

Compose one with an `OnvifCameraState` (profiles pointing at real RTSP URLs),
serve it with `create_onvif_app` (inside your own aiohttp runner) or
`OnvifCameraServer` (an ``async with`` on a loopback port), and drive it:
`state.trigger_motion()` delivers a motion alarm to every PullPoint subscription.
"""

from .app import OnvifCameraServer, create_onvif_app
from .context import OnvifSimulatorConfig
from .ptz import PtzPosition, PtzPreset
from .recordings import RecordingArchive
from .state import (
    MotionTopic,
    OnvifCameraState,
    OnvifDeviceInfo,
    OnvifProfile,
    default_profiles,
)

__all__ = [
    "MotionTopic",
    "OnvifCameraServer",
    "OnvifCameraState",
    "OnvifDeviceInfo",
    "OnvifProfile",
    "OnvifSimulatorConfig",
    "PtzPosition",
    "PtzPreset",
    "RecordingArchive",
    "create_onvif_app",
    "default_profiles",
]
