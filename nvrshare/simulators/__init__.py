"""Simulated hardware that speaks the protocols real devices speak.

`CameraSimulator` (RTSP + ONVIF) and `RecorderSimulator` (ISAPI + RTSP, N
channels over one `SimDevice`) are what `nvrshare sim camera|recorder` runs and
what integration tests start in-process.  `RtspServer` serves H.264 over
TCP-interleaved RTP to ffprobe, proxies and NVR clients.  Each has fault knobs
(`faults`, `drop_streams()`, `refuse_http()`) for reliability tests.
"""

from nvrshare.simulators.camera import CameraSimConfig, CameraSimulator
from nvrshare.simulators.digest import AuthResult, DigestAuthenticator
from nvrshare.simulators.h264clip import H264Clip, clip, tint_of
from nvrshare.simulators.isapi_app import HttpFaults
from nvrshare.simulators.recorder import RecorderSimConfig, RecorderSimulator
from nvrshare.simulators.rtsp_server import RtspFaults, RtspServer, RtspServerConfig
from nvrshare.simulators.rtsp_session import StreamSpec

__all__ = [
    "AuthResult",
    "CameraSimConfig",
    "CameraSimulator",
    "DigestAuthenticator",
    "H264Clip",
    "HttpFaults",
    "RecorderSimConfig",
    "RecorderSimulator",
    "RtspFaults",
    "RtspServer",
    "RtspServerConfig",
    "StreamSpec",
    "clip",
    "tint_of",
]
