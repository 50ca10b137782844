"""The agent's exceptions: one root; configuration and local-state problems vs peers."""

from __future__ import annotations

import enum

__all__ = [
    "AgentError",
    "BootstrapError",
    "ConfigError",
    "GrantRejected",
    "GrantRejection",
    "IdentityError",
]


class AgentError(Exception):
    """Root of every error raised by `nvrshare.agent`."""


class ConfigError(AgentError):
    """The agent's configuration is invalid; the message names the file and the key."""


class IdentityError(AgentError):
    """The device key in the state dir is unusable (corrupt, or readable by others)."""


class BootstrapError(AgentError):
    """Provisioning at the relay failed; `retryable` says whether trying later may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class GrantRejection(enum.StrEnum):
    """Why a received grant set was not applied (the previous one stays in force)."""

    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_KEY = "unknown_key"
    WRONG_DEVICE = "wrong_device"
    ROLLBACK = "rollback"
    NO_KEYS = "no_keys"


class GrantRejected(AgentError):
    """A grant set from the wire was refused; `reason` says why."""

    def __init__(self, reason: GrantRejection, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
