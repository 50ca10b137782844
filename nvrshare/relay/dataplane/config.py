"""The data port's configuration: one frozen dataclass with documented defaults."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

from nvrshare.relay.dataplane.admission import SessionLimits
from nvrshare.relay.dataplane.relaying import RelayConfig

__all__ = ["DataPlaneConfig"]


@dataclass(frozen=True, kw_only=True, slots=True)
class DataPlaneConfig:
    """The data port.

    host/port: where to listen (port 0 picks one; read `DataPlane.port`).
    advertised_host/advertised_port: the endpoint put into offers for agents
        to dial (default: the listening address).
    hello_timeout: seconds for a peer to send its hello.
    agent_timeout: seconds a client waits for the device's agent to dial in.
    offer_ttl: seconds an offer (and its one-time secret) stays valid.
    publish_timeout: seconds the offer publisher may take.
    max_handshakes: connections allowed in the hello phase at once; more are closed.
    engine: "auto" (splice on Linux), "splice" or "protocol".
    tls: a server-side TLS context; when set every connection (client and
        agent) must speak TLS, and sessions are moved in user space (no splice).
    max_session_seconds: no session outlives this (CloseReason.EXPIRED).
    close_at_token_expiry: also end each session when the token that opened it
        expires.  Off by default: tokens are short-lived (minutes) and a live
        view should not drop every few minutes; share stops and expiries reach
        live sessions through `DataPlane.revoke` instead.
    """

    host: str = "127.0.0.1"
    port: int = 0
    advertised_host: str | None = None
    advertised_port: int | None = None
    hello_timeout: float = 5.0
    agent_timeout: float = 10.0
    offer_ttl: int = 30
    publish_timeout: float = 5.0
    max_handshakes: int = 1024
    backlog: int = 1024
    engine: str = "auto"
    max_session_seconds: float = 12 * 3600
    close_at_token_expiry: bool = False
    tls: ssl.SSLContext | None = None
    relay: RelayConfig = field(default_factory=RelayConfig)
    limits: SessionLimits = field(default_factory=SessionLimits)

    def __post_init__(self) -> None:
        if min(self.hello_timeout, self.agent_timeout, self.publish_timeout) <= 0:
            raise ValueError("timeouts must be positive")
        if self.max_session_seconds <= 0:
            raise ValueError("max_session_seconds must be positive")
        if self.offer_ttl < 1 or self.max_handshakes < 1:
            raise ValueError("offer_ttl and max_handshakes must be at least 1")
        if self.engine not in {"auto", "splice", "protocol"}:
            raise ValueError(f"unknown engine {self.engine!r}")
