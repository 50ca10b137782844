"""What every SOAP operation handler receives, and the handler registry type."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .soap import NAMESPACES, SoapRequest
from .state import OnvifCameraState


@dataclass(frozen=True, kw_only=True, slots=True)
class OnvifSimulatorConfig:
    """Settings of one simulated ONVIF camera.

    username / password: the one account WS-UsernameToken digests are checked against.
    max_body_bytes: requests larger than this are refused before parsing.
    clock_skew: seconds a UsernameToken's Created may differ from the camera clock.
    nonce_cache_size: recent nonces remembered to refuse replays.
    allow_password_text: accept PasswordText tokens (off: digest only, like hardened cameras).
    max_pull_timeout: upper bound on a PullMessages long poll, whatever the client asks.
    max_message_limit: upper bound on messages returned by one PullMessages.
    default_termination: subscription lifetime when the client asks for none.
    """

    username: str = "admin"
    password: str = "admin"  # noqa: S105 - a simulator default, overridden by every composer
    max_body_bytes: int = 64 * 1024
    clock_skew: float = 300.0
    nonce_cache_size: int = 4096
    allow_password_text: bool = False
    max_pull_timeout: float = 60.0
    max_message_limit: int = 100
    default_termination: float = 60.0


@dataclass(frozen=True, kw_only=True, slots=True)
class OperationContext:
    """One request's view of the camera: state, config, the clocks read once, own base URL."""

    state: OnvifCameraState
    config: OnvifSimulatorConfig
    base_url: str
    now: float
    wall_now: dt.datetime
    subscription_id: str | None = None

    def xaddr(self, service: str) -> str:
        return f"{self.base_url}/onvif/{service}"


Handler = Callable[[OperationContext, SoapRequest], Awaitable[str]]


def qname(prefix: str, local: str) -> tuple[str, str]:
    """The registry key for an operation: (namespace URI, local name)."""
    return NAMESPACES[prefix], local
