"""`SessionConfig`: the limits and timeouts of session handling, and how an agent derives it.

Defaults suit a recorder: a handful of viewers at once, tokens good for a
few dozen sessions, every network step bounded.  `session_config_for`
narrows what the agent may dial to the data endpoint in its own config, so
a compromised relay cannot point the device at other hosts.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

from nvrshare.agent.config import AgentConfig
from nvrshare.agent.sessions.rtsp_proxy import ProxyConfig

__all__ = ["SessionConfig", "session_config_for"]


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionConfig:
    """Limits and timeouts of session handling (seconds where a time)."""

    max_sessions: int = 16
    max_sessions_per_token: int = 4
    max_uses_per_token: int = 32
    replay_entries: int = 4096
    dial_timeout: float = 5.0
    recheck_interval: float = 2.0
    report_timeout: float = 2.0
    relay_tls: ssl.SSLContext | None = None  # set when the relay's data port speaks TLS
    # The data endpoints the agent may dial (host, port); empty = whatever the offer names.
    # Set it from the agent's configured data endpoint: a compromised relay could otherwise
    # make the device dial arbitrary hosts on its own network.
    allowed_relays: frozenset[tuple[str, int]] = frozenset()
    proxy: ProxyConfig = field(default_factory=ProxyConfig)

    def __post_init__(self) -> None:
        numbers = (
            self.max_sessions,
            self.max_sessions_per_token,
            self.max_uses_per_token,
            self.replay_entries,
        )
        if min(numbers) < 1:
            raise ValueError("session limits must be at least 1")
        if min(self.dial_timeout, self.recheck_interval, self.report_timeout) <= 0:
            raise ValueError("session timeouts must be positive")


def session_config_for(
    config: AgentConfig, *, relay_tls: ssl.SSLContext | None = None
) -> SessionConfig:
    """The session settings an agent runs with: only its configured data endpoint is dialled.

    Without a configured endpoint the agent dials what offers name (documented
    trade-off: offers come over the device's own authenticated broker account).
    """
    allowed = frozenset({config.data_endpoint}) if config.data_endpoint is not None else frozenset()
    return SessionConfig(allowed_relays=allowed, relay_tls=relay_tls)
