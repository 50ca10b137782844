"""Stream-session enforcement on the device: token re-checks, the RTSP gate, talk, PTZ, alarms.

Wiring (the agent's lifecycle does this once the recorder is open)::

    handler = SessionHandler(serial=config.serial, grants=grant_store, recorder=recorder,
                             config=session_config_for(config))
    async with handler:
        grant_store.on_change(handler.on_grants_changed)
        ...  # pass `handler` to the control channel as its DownlinkHandler
"""

from nvrshare.agent.sessions.authorize import Admission, Authorizer, ReplayGuard
from nvrshare.agent.sessions.config import SessionConfig, session_config_for
from nvrshare.agent.sessions.errors import (
    RtspProtocolError,
    SessionError,
    SessionRefused,
    UpstreamError,
)
from nvrshare.agent.sessions.handler import LiveSession, SessionHandler
from nvrshare.agent.sessions.rtsp_gate import GatePolicy, live_path, playback_path
from nvrshare.agent.sessions.rtsp_proxy import ProxyConfig, serve_rtsp
from nvrshare.agent.sessions.tunnel import Tunnel, dial_relay, tls_dialer

__all__ = [
    "Admission",
    "Authorizer",
    "GatePolicy",
    "LiveSession",
    "ProxyConfig",
    "ReplayGuard",
    "RtspProtocolError",
    "SessionConfig",
    "SessionError",
    "SessionHandler",
    "SessionRefused",
    "Tunnel",
    "UpstreamError",
    "dial_relay",
    "live_path",
    "playback_path",
    "serve_rtsp",
    "session_config_for",
    "tls_dialer",
]
