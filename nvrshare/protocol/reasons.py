"""Why a session was refused or closed: stable strings for the wire.

Token and permission checks have their own reason enums (`TokenRejection`,
`DenyReason`); a peer only ever sees a `RefusalReason`, and the two mapping
functions here are the one place that decides how much of the cause is told.
Signature details (unknown key vs bad signature vs wrong audience) all read
"token_invalid": a prober learns nothing about our keys.
"""

from __future__ import annotations

import enum

from nvrshare.protocol.errors import TokenRejection
from nvrshare.protocol.permissions import DenyReason

__all__ = ["CloseReason", "RefusalReason", "refusal_for_denial", "refusal_for_token"]


class RefusalReason(enum.StrEnum):
    """Why a session (or a hello on the data plane) was refused."""

    PERMISSION_DENIED = "permission_denied"
    CHANNEL_NOT_GRANTED = "channel_not_granted"
    OUTSIDE_PLAYBACK_WINDOW = "outside_playback_window"
    NOT_YET_VALID = "not_yet_valid"
    SHARE_EXPIRED = "share_expired"
    DEVICE_OFFLINE = "device_offline"
    DEVICE_BUSY = "device_busy"
    TOKEN_EXPIRED = "token_expired"  # noqa: S105 (a reason, not a secret)
    TOKEN_INVALID = "token_invalid"  # noqa: S105
    WRONG_DEVICE = "wrong_device"
    REPLAYED = "replayed"
    REVOKED = "revoked"
    SERVICE_DISABLED = "service_disabled"
    TIMEOUT = "timeout"
    BAD_REQUEST = "bad_request"
    INTERNAL = "internal"


class CloseReason(enum.StrEnum):
    """Why an established session ended."""

    NORMAL = "normal"
    TIMEOUT = "timeout"
    EXPIRED = "expired"
    REVOKED = "revoked"
    SERVICE_DISABLED = "service_disabled"
    DEVICE_OFFLINE = "device_offline"
    PEER_GONE = "peer_gone"
    ERROR = "error"


_FOR_TOKEN = {
    TokenRejection.MALFORMED: RefusalReason.TOKEN_INVALID,
    TokenRejection.UNKNOWN_KEY: RefusalReason.TOKEN_INVALID,
    TokenRejection.BAD_SIGNATURE: RefusalReason.TOKEN_INVALID,
    TokenRejection.WRONG_AUDIENCE: RefusalReason.TOKEN_INVALID,
    TokenRejection.EXPIRED: RefusalReason.TOKEN_EXPIRED,
    TokenRejection.NOT_YET_VALID: RefusalReason.NOT_YET_VALID,
    TokenRejection.WRONG_DEVICE: RefusalReason.WRONG_DEVICE,
}

_FOR_DENIAL = {
    DenyReason.CHANNEL_NOT_GRANTED: RefusalReason.CHANNEL_NOT_GRANTED,
    DenyReason.PERMISSION_NOT_GRANTED: RefusalReason.PERMISSION_DENIED,
    DenyReason.NOT_YET_VALID: RefusalReason.NOT_YET_VALID,
    DenyReason.EXPIRED: RefusalReason.SHARE_EXPIRED,
    DenyReason.OUTSIDE_PLAYBACK_WINDOW: RefusalReason.OUTSIDE_PLAYBACK_WINDOW,
}


def refusal_for_token(rejection: TokenRejection) -> RefusalReason:
    """What to tell a peer whose share token was rejected for `rejection`."""
    return _FOR_TOKEN[rejection]


def refusal_for_denial(reason: DenyReason) -> RefusalReason:
    """What to tell a peer whose request a grant denied for `reason`."""
    return _FOR_DENIAL[reason]
