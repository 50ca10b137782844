"""The simulators package's public surface is pinned."""

from __future__ import annotations

import nvrshare.simulators as simulators


def test_public_names_are_pinned() -> None:
    assert sorted(simulators.__all__) == [
        "AuthResult", "CameraSimConfig", "CameraSimulator", "DigestAuthenticator", "H264Clip",
        "HttpFaults", "RecorderSimConfig", "RecorderSimulator", "RtspFaults", "RtspServer",
        "RtspServerConfig", "StreamSpec", "clip", "tint_of",
    ]
    for name in simulators.__all__:
        assert getattr(simulators, name) is not None
