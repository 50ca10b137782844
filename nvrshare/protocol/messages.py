"""Control-plane messages: what devices, the relay and clients say over MQTT.

Each message is a frozen, kw-only, slotted dataclass that checks its own
fields on construction (`LocalProtocolError`), so an invalid message cannot
exist, whether it was built here or decoded from a peer (the codec turns the
same check into `RemoteProtocolError`).  Field types are the wire contract:
the codec is driven by these annotations, so keep them to bool, int, float,
str, bytes, the enums below, `Permission`, nested messages, `X | None`,
`tuple[X, ...]` and the channel matrix `Mapping[int, Permission]`.

Secrets (share tokens, session secrets) are left out of `repr` so that a
logged message never leaks one.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from nvrshare.protocol._checks import (
    MAX_TIMESTAMP,
    check_bytes,
    check_channel,
    check_domain,
    check_host,
    check_ip,
    check_port,
    check_serial,
    check_text,
    check_uint,
    check_unit_float,
)
from nvrshare.protocol.errors import LocalProtocolError
from nvrshare.protocol.permissions import (
    MAX_CHANNEL,
    Decision,
    Grant,
    Permission,
    TimeWindow,
    check,
    check_playback,
    is_known_permission,
)
from nvrshare.protocol.reasons import CloseReason, RefusalReason
from nvrshare.protocol.signing import PUBLIC_KEY_LENGTH
from nvrshare.protocol.tokens import MAX_ID_LENGTH, MAX_TOKEN_SIZE, TOKEN_ID_BYTES

__all__ = [
    "MAX_PRESET",
    "NONCE_LENGTH",
    "SESSION_ID_LENGTH",
    "SESSION_SECRET_LENGTH",
    "AccountGrant",
    "AlarmEvent",
    "ChannelInfo",
    "DeviceRegistration",
    "DeviceState",
    "ErrorMessage",
    "GrantSet",
    "Heartbeat",
    "PtzAction",
    "PtzCommand",
    "PtzResult",
    "RegistrationResult",
    "SessionAccept",
    "SessionClose",
    "SessionKind",
    "SessionOffer",
    "SessionRefuse",
    "SessionRequest",
]

SESSION_ID_LENGTH = 16
SESSION_SECRET_LENGTH = 32
NONCE_LENGTH = 16
REQUEST_ID_LENGTH = 16
MAX_PRESET = 300  # Hikvision's largest preset number; ONVIF tokens are mapped onto 1..N
MAX_NAME = 128
MAX_REASON = 256


def _check_timestamp(name: str, value: object) -> None:
    check_uint(name, value, maximum=MAX_TIMESTAMP)


def _check_session_id(value: object) -> None:
    check_bytes("session_id", value, length=SESSION_ID_LENGTH)


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelInfo:
    """One camera channel of a recorder, as the device reports it."""

    number: int
    name: str
    online: bool
    capabilities: Permission  # what the channel can do at all, whoever asks

    def __post_init__(self) -> None:
        check_channel("channel number", self.number)
        check_text("channel name", self.name, max_length=MAX_NAME, allow_empty=True)
        if type(self.online) is not bool:
            raise LocalProtocolError("online must be a bool")
        if not isinstance(self.capabilities, Permission) or not is_known_permission(
            self.capabilities
        ):
            raise LocalProtocolError("capabilities must be known Permission flags")


@dataclass(frozen=True, kw_only=True, slots=True)
class DeviceRegistration:
    """A device announcing itself; always sent signed by the device key it carries."""

    serial: str
    domain: str
    model: str
    firmware_version: str
    channels: tuple[ChannelInfo, ...]
    ip: str
    port: int
    public_key: bytes
    timestamp: int
    nonce: bytes

    def __post_init__(self) -> None:
        check_serial("serial", self.serial)
        check_domain("domain", self.domain)
        check_text("model", self.model, max_length=MAX_NAME)
        check_text("firmware_version", self.firmware_version, max_length=MAX_NAME)
        if (
            not isinstance(self.channels, tuple)
            or len(self.channels) > MAX_CHANNEL
            or not all(isinstance(channel, ChannelInfo) for channel in self.channels)
        ):
            raise LocalProtocolError(f"channels must be a tuple of at most {MAX_CHANNEL}")
        if len({channel.number for channel in self.channels}) != len(self.channels):
            raise LocalProtocolError("channel numbers must be unique")
        check_ip("ip", self.ip)
        check_port("port", self.port)
        check_bytes("public_key", self.public_key, length=PUBLIC_KEY_LENGTH)
        _check_timestamp("timestamp", self.timestamp)
        check_bytes("nonce", self.nonce, length=NONCE_LENGTH)

    def is_fresh(self, now: float, *, max_skew: int = 300) -> bool:
        """Whether the registration was made within `max_skew` seconds of `now`."""
        return abs(now - self.timestamp) <= max_skew


@dataclass(frozen=True, kw_only=True, slots=True)
class RegistrationResult:
    """The relay's answer to a registration."""

    serial: str
    accepted: bool
    reason: str
    grant_set_version: int

    def __post_init__(self) -> None:
        check_serial("serial", self.serial)
        if type(self.accepted) is not bool:
            raise LocalProtocolError("accepted must be a bool")
        check_text("reason", self.reason, max_length=MAX_REASON, allow_empty=True)
        check_uint("grant_set_version", self.grant_set_version)


@dataclass(frozen=True, kw_only=True, slots=True)
class DeviceState:
    """Retained presence of a device; its MQTT last will carries `online=False`."""

    serial: str
    online: bool
    timestamp: int
    ip: str
    port: int

    def __post_init__(self) -> None:
        check_serial("serial", self.serial)
        if type(self.online) is not bool:
            raise LocalProtocolError("online must be a bool")
        _check_timestamp("timestamp", self.timestamp)
        check_ip("ip", self.ip)
        check_port("port", self.port)


@dataclass(frozen=True, kw_only=True, slots=True)
class Heartbeat:
    serial: str
    timestamp: int

    def __post_init__(self) -> None:
        check_serial("serial", self.serial)
        _check_timestamp("timestamp", self.timestamp)


@dataclass(frozen=True, kw_only=True, slots=True)
class AccountGrant:
    """What one account may do on the device, as the device enforces it."""

    account_id: str
    channels: Mapping[int, Permission]
    valid_from: int | None = None
    valid_until: int | None = None
    playback_window: TimeWindow | None = None

    def __post_init__(self) -> None:
        check_text("account_id", self.account_id, max_length=MAX_ID_LENGTH)
        if not isinstance(self.channels, Mapping) or not self.channels:
            raise LocalProtocolError("an account grant must name at least one channel")
        for channel, bits in self.channels.items():
            check_channel("channel", channel)
            if not isinstance(bits, Permission) or not bits:
                raise LocalProtocolError("each granted channel needs Permission flags")
        if not isinstance(self.playback_window, TimeWindow | None):
            raise LocalProtocolError("playback_window must be a TimeWindow or None")
        for name in ("valid_from", "valid_until"):
            value = getattr(self, name)
            if value is not None:
                _check_timestamp(name, value)
        self.grant()  # the channel and validity rules of `Grant` apply unchanged

    def grant(self) -> Grant:
        return Grant(
            channels=self.channels,
            valid_from=self.valid_from,
            valid_until=self.valid_until,
            playback_window=self.playback_window,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class GrantSet:
    """Everything a device needs to enforce shares; sent signed by the relay's key.

    `version` only grows: a device ignores a set older than the one it holds.
    Raising `share_epoch` invalidates every token issued under an older epoch.
    """

    device_serial: str
    version: int
    share_epoch: int
    issued_at: int
    service_enabled: bool
    grants: tuple[AccountGrant, ...]
    revoked_token_ids: tuple[bytes, ...]
    revoked_accounts: tuple[str, ...]
    relay_public_keys: tuple[bytes, ...]

    def __post_init__(self) -> None:
        check_serial("device_serial", self.device_serial)
        check_uint("version", self.version)
        check_uint("share_epoch", self.share_epoch)
        _check_timestamp("issued_at", self.issued_at)
        if type(self.service_enabled) is not bool:
            raise LocalProtocolError("service_enabled must be a bool")
        for name in ("grants", "revoked_token_ids", "revoked_accounts", "relay_public_keys"):
            if not isinstance(getattr(self, name), tuple):
                raise LocalProtocolError(f"{name} must be a tuple")
        if not all(isinstance(grant, AccountGrant) for grant in self.grants):
            raise LocalProtocolError("grants must be AccountGrant messages")
        accounts = [grant.account_id for grant in self.grants]
        if len(set(accounts)) != len(accounts):
            raise LocalProtocolError("an account appears twice in a grant set")
        for token_id in self.revoked_token_ids:
            check_bytes("revoked token id", token_id, length=TOKEN_ID_BYTES)
        for account in self.revoked_accounts:
            check_text("revoked account", account, max_length=MAX_ID_LENGTH)
        for key in self.relay_public_keys:
            check_bytes("relay public key", key, length=PUBLIC_KEY_LENGTH)

    def grant_for(self, account_id: str) -> Grant | None:
        """The account's grant, or None if it has none or was revoked."""
        if account_id in self.revoked_accounts:
            return None
        for account_grant in self.grants:
            if account_grant.account_id == account_id:
                return account_grant.grant()
        return None


class SessionKind(enum.StrEnum):
    """What a media session carries."""

    LIVE_MAIN = "live_main"
    LIVE_SUB = "live_sub"
    PLAYBACK = "playback"
    TALK = "talk"
    ALARM = "alarm"


_REQUIRED_PERMISSION = {
    SessionKind.LIVE_MAIN: Permission.LIVE_VIEW,
    SessionKind.LIVE_SUB: Permission.LIVE_VIEW,
    SessionKind.PLAYBACK: Permission.PLAYBACK,
    SessionKind.TALK: Permission.TWO_WAY_AUDIO,
    SessionKind.ALARM: Permission.ALARM,
}


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionRequest:
    """What a client asks for; `playback_window` is set for, and only for, PLAYBACK."""

    device_serial: str
    channel: int
    kind: SessionKind
    playback_window: TimeWindow | None = None

    def __post_init__(self) -> None:
        check_serial("device_serial", self.device_serial)
        check_channel("channel", self.channel)
        if not isinstance(self.kind, SessionKind):
            raise LocalProtocolError("kind must be a SessionKind")
        if not isinstance(self.playback_window, TimeWindow | None):
            raise LocalProtocolError("playback_window must be a TimeWindow or None")
        if (self.kind is SessionKind.PLAYBACK) != (self.playback_window is not None):
            raise LocalProtocolError("a playback window is required for, and only for, playback")

    @property
    def required_permission(self) -> Permission:
        return _REQUIRED_PERMISSION[self.kind]

    def decide(self, grant: Grant, now: float) -> Decision:
        """Whether `grant` allows this request at `now` (playback window included)."""
        if self.playback_window is not None:
            return check_playback(grant, self.channel, self.playback_window, now)
        return check(grant, self.channel, self.required_permission, now)


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionOffer:
    """The relay telling a device to dial in and serve `request`."""

    session_id: bytes
    token: bytes = field(repr=False)
    request: SessionRequest
    relay_host: str
    relay_port: int
    session_secret: bytes = field(repr=False)
    expires_at: int

    def __post_init__(self) -> None:
        _check_session_id(self.session_id)
        check_bytes("token", self.token, max_length=MAX_TOKEN_SIZE)
        if not isinstance(self.request, SessionRequest):
            raise LocalProtocolError("request must be a SessionRequest")
        check_host("relay_host", self.relay_host)
        check_port("relay_port", self.relay_port)
        check_bytes("session_secret", self.session_secret, length=SESSION_SECRET_LENGTH)
        _check_timestamp("expires_at", self.expires_at)


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionAccept:
    session_id: bytes

    def __post_init__(self) -> None:
        _check_session_id(self.session_id)


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionRefuse:
    session_id: bytes
    reason: RefusalReason

    def __post_init__(self) -> None:
        _check_session_id(self.session_id)
        if not isinstance(self.reason, RefusalReason):
            raise LocalProtocolError("reason must be a RefusalReason")


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionClose:
    session_id: bytes
    reason: CloseReason

    def __post_init__(self) -> None:
        _check_session_id(self.session_id)
        if not isinstance(self.reason, CloseReason):
            raise LocalProtocolError("reason must be a CloseReason")


class PtzAction(enum.StrEnum):
    CONTINUOUS_MOVE = "continuous_move"
    STOP = "stop"
    GOTO_PRESET = "goto_preset"
    SET_PRESET = "set_preset"


_PRESET_ACTIONS = frozenset({PtzAction.GOTO_PRESET, PtzAction.SET_PRESET})


@dataclass(frozen=True, kw_only=True, slots=True)
class PtzCommand:
    """A pan/tilt/zoom order; speeds are in [-1, 1], `preset` only for preset actions."""

    request_id: bytes
    token: bytes = field(repr=False)
    channel: int
    action: PtzAction
    pan: float = 0.0
    tilt: float = 0.0
    zoom: float = 0.0
    preset: int | None = None

    def __post_init__(self) -> None:
        check_bytes("request_id", self.request_id, length=REQUEST_ID_LENGTH)
        check_bytes("token", self.token, max_length=MAX_TOKEN_SIZE)
        check_channel("channel", self.channel)
        if not isinstance(self.action, PtzAction):
            raise LocalProtocolError("action must be a PtzAction")
        for name in ("pan", "tilt", "zoom"):
            check_unit_float(name, getattr(self, name))
        if self.action in _PRESET_ACTIONS:
            check_uint("preset", self.preset, minimum=1, maximum=MAX_PRESET)
        elif self.preset is not None:
            raise LocalProtocolError(f"{self.action} takes no preset")

    @property
    def required_permission(self) -> Permission:
        return Permission.PTZ


@dataclass(frozen=True, kw_only=True, slots=True)
class PtzResult:
    request_id: bytes
    ok: bool
    reason: str

    def __post_init__(self) -> None:
        check_bytes("request_id", self.request_id, length=REQUEST_ID_LENGTH)
        if type(self.ok) is not bool:
            raise LocalProtocolError("ok must be a bool")
        check_text("reason", self.reason, max_length=MAX_REASON, allow_empty=True)


@dataclass(frozen=True, kw_only=True, slots=True)
class AlarmEvent:
    """An alarm input or analytics event changing state on one channel."""

    device_serial: str
    channel: int
    event_type: str
    active: bool
    timestamp: int

    def __post_init__(self) -> None:
        check_serial("device_serial", self.device_serial)
        check_channel("channel", self.channel)
        check_text("event_type", self.event_type, max_length=MAX_NAME)
        if type(self.active) is not bool:
            raise LocalProtocolError("active must be a bool")
        _check_timestamp("timestamp", self.timestamp)


@dataclass(frozen=True, kw_only=True, slots=True)
class ErrorMessage:
    """A peer telling us it could not handle something we sent."""

    code: str
    message: str

    def __post_init__(self) -> None:
        check_text("code", self.code, max_length=64)
        check_text("message", self.message, max_length=1024, allow_empty=True)
