"""The protocol's exceptions: one root, split by whose fault it is.

`LocalProtocolError` means *you* misused the API (built an invalid message,
asked for a topic with a bad serial).  `RemoteProtocolError` means the *peer*
sent something we will not accept; it is the only exception a decoder raises
for bad input, whatever the bytes were.
"""

from __future__ import annotations

import enum

__all__ = [
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "SignatureError",
    "TokenError",
    "TokenRejection",
]


class ProtocolError(Exception):
    """Root of every error raised by `nvrshare.protocol`."""


class LocalProtocolError(ProtocolError):
    """The caller misused the API; nothing was sent or accepted."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something invalid: malformed, oversized or not allowed."""


class TokenRejection(enum.StrEnum):
    """Machine-readable reason a share token was not accepted."""

    MALFORMED = "malformed"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    WRONG_AUDIENCE = "wrong_audience"
    WRONG_DEVICE = "wrong_device"


class TokenError(RemoteProtocolError):
    """A share token was rejected; `reason` says why, for refusals on the wire."""

    def __init__(self, reason: TokenRejection, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail


class SignatureError(RemoteProtocolError):
    """A signed payload did not verify: its key is unknown, or the signature is bad."""

    def __init__(self, message: str, *, unknown_key: bool) -> None:
        super().__init__(message)
        self.unknown_key = unknown_key
