"""Per-channel permissions and the one pure function that decides access.

A grant is a matrix channel → `Permission` flags with an optional validity
period and an optional playback window.  `check` is the single place that
answers "may this holder use this permission on this channel now?": the relay,
the agent and the tests all call it, so there is no second copy of the rule.
Time is always an argument (seconds since the Unix epoch); nothing here reads
a clock.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from nvrshare.protocol.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "ALLOW",
    "ALL_PERMISSIONS",
    "MAX_CHANNEL",
    "MAX_TIMESTAMP",
    "Allow",
    "Decision",
    "Deny",
    "DenyReason",
    "Grant",
    "Permission",
    "TimeWindow",
    "check",
    "check_playback",
    "decode_channel_matrix",
    "encode_channel_matrix",
    "is_known_permission",
    "parse_permission_names",
    "permission_names",
]

MAX_CHANNEL = 256  # recorders top out at 128 IP channels; leave head-room, stay bounded
# Seconds since the epoch; anything past year 9999 is a bug, not a date.
MAX_TIMESTAMP = 253_402_300_799


class Permission(enum.IntFlag):
    """What a holder may do on one channel (Hik-Connect's five share permissions)."""

    NONE = 0
    LIVE_VIEW = 1
    PLAYBACK = 2
    PTZ = 4
    ALARM = 8
    TWO_WAY_AUDIO = 16


ALL_PERMISSIONS = (
    Permission.LIVE_VIEW
    | Permission.PLAYBACK
    | Permission.PTZ
    | Permission.ALARM
    | Permission.TWO_WAY_AUDIO
)

_UNKNOWN_BITS = ~int(ALL_PERMISSIONS)
# Every valid flag combination by its bits: calling an IntFlag class costs a
# microsecond, which a token verification would pay on every channel.
_BY_BITS = tuple(Permission(bits) for bits in range(int(ALL_PERMISSIONS) + 1))


def is_known_permission(permission: object) -> bool:
    """Whether `permission` is an int made only of the five known flags (or none).

    Works on plain ints: ``~ALL_PERMISSIONS`` on the IntFlag itself would be
    the complement within the defined flags, i.e. zero, and hide unknown bits.
    """
    return isinstance(permission, int) and not int(permission) & _UNKNOWN_BITS


_NAMES = {
    Permission.LIVE_VIEW: "live_view",
    Permission.PLAYBACK: "playback",
    Permission.PTZ: "ptz",
    Permission.ALARM: "alarm",
    Permission.TWO_WAY_AUDIO: "two_way_audio",
}
_BY_NAME = {name: flag for flag, name in _NAMES.items()}


def permission_names(permission: Permission) -> tuple[str, ...]:
    """The stable names of the flags set in `permission`, in a fixed order."""
    return tuple(name for flag, name in _NAMES.items() if flag & permission)


def parse_permission_names(names: object) -> Permission:
    """Parse a list of permission names (as JSON carries them).

    Raises `RemoteProtocolError` for anything but a list of known names.
    """
    if not isinstance(names, list | tuple):
        raise RemoteProtocolError("permissions must be a list of names")
    result = Permission.NONE
    for name in names:
        if not isinstance(name, str) or name not in _BY_NAME:
            raise RemoteProtocolError(f"unknown permission {name!r}")
        result |= _BY_NAME[name]
    return result


@dataclass(frozen=True, kw_only=True, slots=True)
class TimeWindow:
    """A half-open interval [start, end) of Unix seconds."""

    start: int
    end: int

    def __post_init__(self) -> None:
        for value in (self.start, self.end):
            if type(value) is not int or not 0 <= value <= MAX_TIMESTAMP:
                raise LocalProtocolError(f"time window bounds must be in 0..{MAX_TIMESTAMP}")
        if self.end <= self.start:
            raise LocalProtocolError("a time window must end after it starts")

    def covers(self, other: TimeWindow) -> bool:
        return self.start <= other.start and other.end <= self.end


def _validate_channel(channel: int) -> None:
    if not 1 <= channel <= MAX_CHANNEL:
        raise LocalProtocolError(f"channel must be in 1..{MAX_CHANNEL}, got {channel}")


@dataclass(frozen=True, kw_only=True, slots=True)
class Grant:
    """What one account may do on one device.

    `channels` maps channel number to the permissions granted on it; channels
    absent from the map are not granted.  `valid_from`/`valid_until` bound the
    grant in time (installer permissions carry them); `playback_window`
    restricts which recordings may be played back.
    """

    channels: Mapping[int, Permission]
    valid_from: int | None = None
    valid_until: int | None = None
    playback_window: TimeWindow | None = None

    def __post_init__(self) -> None:
        for channel, permission in self.channels.items():
            _validate_channel(channel)
            if not is_known_permission(permission):
                raise LocalProtocolError(f"unknown permission bits on channel {channel}")
        if (
            self.valid_from is not None
            and self.valid_until is not None
            and self.valid_until <= self.valid_from
        ):
            raise LocalProtocolError("a grant must end after it starts")


class DenyReason(enum.StrEnum):
    """Why `check` said no; stable strings for refusals on the wire."""

    CHANNEL_NOT_GRANTED = "channel_not_granted"
    PERMISSION_NOT_GRANTED = "permission_not_granted"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    OUTSIDE_PLAYBACK_WINDOW = "outside_playback_window"


@dataclass(frozen=True, slots=True)
class Allow:
    """The grant allows the request."""

    def __bool__(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class Deny:
    """The grant does not allow the request, for `reason`."""

    reason: DenyReason

    def __bool__(self) -> bool:
        return False


Decision = Allow | Deny
ALLOW = Allow()


def check(grant: Grant, channel: int, permission: Permission, now: float) -> Decision:
    """Decide whether `grant` allows every flag of `permission` on `channel` at `now`.

    Raises `LocalProtocolError` if `permission` is empty or `channel` is out of
    range: asking for nothing is a bug in the caller, not a denial.
    """
    if permission == Permission.NONE or not is_known_permission(permission):
        raise LocalProtocolError("check needs a non-empty set of known permissions")
    _validate_channel(channel)
    if grant.valid_from is not None and now < grant.valid_from:
        return Deny(DenyReason.NOT_YET_VALID)
    if grant.valid_until is not None and now >= grant.valid_until:
        return Deny(DenyReason.EXPIRED)
    granted = grant.channels.get(channel)
    if not granted:
        return Deny(DenyReason.CHANNEL_NOT_GRANTED)
    # On plain ints: IntFlag's own operators run Python code on every request.
    if int(permission) & ~int(granted):
        return Deny(DenyReason.PERMISSION_NOT_GRANTED)
    return ALLOW


def check_playback(grant: Grant, channel: int, window: TimeWindow, now: float) -> Decision:
    """`check` for PLAYBACK, plus: the requested recordings lie inside the grant's window."""
    decision = check(grant, channel, Permission.PLAYBACK, now)
    if decision and grant.playback_window is not None and not grant.playback_window.covers(window):
        return Deny(DenyReason.OUTSIDE_PLAYBACK_WINDOW)
    return decision


def encode_channel_matrix(channels: Mapping[int, Permission]) -> dict[int, int]:
    """The wire form of a channel matrix: {channel: flag bits}."""
    return {channel: int(permission) for channel, permission in sorted(channels.items())}


def decode_channel_matrix(
    value: object, *, max_channels: int = MAX_CHANNEL
) -> dict[int, Permission]:
    """Parse the wire form of a channel matrix; `RemoteProtocolError` on anything odd."""
    if not isinstance(value, dict):
        raise RemoteProtocolError("channel matrix must be a map")
    if len(value) > max_channels:
        raise RemoteProtocolError("channel matrix has too many channels")
    result: dict[int, Permission] = {}
    for channel, bits in value.items():
        if type(channel) is not int or not 1 <= channel <= MAX_CHANNEL:
            raise RemoteProtocolError(f"bad channel number {channel!r}")
        if type(bits) is not int or bits <= 0 or bits & _UNKNOWN_BITS:
            raise RemoteProtocolError(f"bad permission bits on channel {channel}")
        result[channel] = _BY_BITS[bits]
    return result
