"""The public names of `nvrshare.agent.sessions` and `nvrshare.client.streams` are pinned."""

from __future__ import annotations

import nvrshare.agent.sessions as sessions
import nvrshare.client.streams as streams
from nvrshare.protocol.messages import SessionKind, SessionRequest
from nvrshare.protocol.permissions import TimeWindow


def test_sessions_public_names() -> None:
    assert sorted(sessions.__all__) == [
        "Admission", "Authorizer", "GatePolicy", "LiveSession", "ProxyConfig", "ReplayGuard",
        "RtspProtocolError", "SessionConfig", "SessionError", "SessionHandler", "SessionRefused",
        "Tunnel", "UpstreamError", "dial_relay", "live_path", "playback_path", "serve_rtsp",
        "session_config_for", "tls_dialer",
    ]  # fmt: skip
    for name in sessions.__all__:
        assert getattr(sessions, name) is not None


def test_client_streams_public_names() -> None:
    assert sorted(streams.__all__) == [
        "LocalRtspEndpoint", "RelayEndpoint", "StreamRefused", "StreamSession",
        "StreamUnavailable", "TALK_FRAME_BYTES", "TokenSource", "local_path", "open_session",
        "read_alarms", "talk",
    ]  # fmt: skip
    for name in streams.__all__:
        assert getattr(streams, name) is not None


def test_client_and_gate_agree_on_public_paths() -> None:
    serial = "SERIAL1"
    for kind, expected in (
        (SessionKind.LIVE_MAIN, sessions.live_path(3)),
        (SessionKind.LIVE_SUB, sessions.live_path(3, sub=True)),
    ):
        assert streams.local_path(SessionRequest(device_serial=serial, channel=3, kind=kind)) == (
            expected
        )
    window = TimeWindow(start=1, end=2)
    playback = SessionRequest(
        device_serial=serial, channel=3, kind=SessionKind.PLAYBACK, playback_window=window
    )
    assert streams.local_path(playback) == sessions.playback_path(3)
