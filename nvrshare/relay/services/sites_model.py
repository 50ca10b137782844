"""Installer sites: the records, the requests, the limits and the typed refusals.

Choices written down once:
- "At most five invitations per site per day" counts every invitation *sent*
  (a new one or a resend) in a rolling 24-hour window: a send at `t` stops
  counting at exactly `t + 86400`.  A rolling window has no midnight burst
  (five at 23:59 and five more at 00:01) and needs no time zone.
- An installer permission's validity period is per device (configuration,
  live view and playback of one device share it, as one device grant carries
  one period on the device) and one for site information.  Periods are
  half-open `[valid_from, valid_until)` in Unix seconds; an end is required.
- Configuration has no flag in the device protocol: it is a relay-side grant
  (shown and checked here), while live view and playback become the
  installer's entry in the device's grant set.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nvrshare.protocol.permissions import Permission
from nvrshare.relay.errors import Conflict, Forbidden, InvalidRequest, RateLimited

__all__ = [
    "DEVICE_PERMISSION_FLAGS",
    "DevicePermission",
    "DevicePermissionRequest",
    "InstallerGrant",
    "InstallerMember",
    "InstallerOrg",
    "InstallerPermissionRequest",
    "InstallerPermissionUnavailable",
    "InstallerRole",
    "InvitationClosed",
    "InvitationExpired",
    "InvitationInvalidated",
    "InvitationLimitReached",
    "ServiceDisabled",
    "Site",
    "SiteDevice",
    "SiteInvitation",
    "SiteStatus",
    "SitesConfig",
    "Validity",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class SitesConfig:
    """Limits of the installer side; the defaults are the product's rules."""

    max_invitations_per_day: int = 5
    invitation_window: int = 24 * 3600  # rolling, see the module docstring
    invitation_ttl: int = 7 * 24 * 3600
    max_validity: int = 5 * 366 * 24 * 3600
    max_sites_per_org: int = 10_000
    max_devices_per_site: int = 64
    max_members_per_org: int = 500


class InstallerRole(enum.StrEnum):
    MANAGE_ALL = "manage_all"
    MANAGE_ASSIGNED = "manage_assigned"


class SiteStatus(enum.StrEnum):
    NOT_INVITED = "not_invited"
    NOT_REGISTERED = "not_registered"
    NOT_ACCEPTED = "not_accepted"
    HANDED_OVER = "handed_over"


class DevicePermission(enum.StrEnum):
    CONFIGURATION = "configuration"
    LIVE_VIEW = "live_view"
    PLAYBACK = "playback"


# What each installer permission lets the installer's account do on the device.
DEVICE_PERMISSION_FLAGS: Mapping[DevicePermission, Permission] = {
    DevicePermission.CONFIGURATION: Permission.NONE,
    DevicePermission.LIVE_VIEW: Permission.LIVE_VIEW,
    DevicePermission.PLAYBACK: Permission.PLAYBACK,
}


# --- refusals -----------------------------------------------------------------


class InvitationLimitReached(RateLimited):
    code = "invitation_limit"


class InvitationInvalidated(Conflict):
    code = "invitation_invalidated"

    def __init__(self) -> None:
        super().__init__("this invitation was replaced by a newer one and is no longer valid")


class InvitationExpired(Conflict):
    code = "invitation_expired"

    def __init__(self) -> None:
        super().__init__("this invitation has expired: ask the installer to invite you again")


class InvitationClosed(Conflict):
    code = "invitation_closed"


class InstallerPermissionUnavailable(InvalidRequest):
    code = "installer_permission_unavailable"
    status = 422


class ServiceDisabled(Forbidden):
    code = "service_disabled"

    def __init__(self) -> None:
        super().__init__("the installer disabled the cloud service for this device")


# --- requests -----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Validity:
    """A half-open period `[valid_from, valid_until)` of Unix seconds."""

    valid_from: int
    valid_until: int

    def check(self, *, now: float, config: SitesConfig) -> Validity:
        if type(self.valid_from) is not int or type(self.valid_until) is not int:
            raise InvalidRequest("valid_from and valid_until must be integers (Unix seconds)")
        if self.valid_from < 0 or self.valid_until <= self.valid_from:
            raise InvalidRequest("a validity period must end after it starts")
        if self.valid_until <= now:
            raise InvalidRequest("a validity period must end in the future")
        if self.valid_until - self.valid_from > config.max_validity:
            raise InvalidRequest(f"a validity period may last at most {config.max_validity} s")
        if self.valid_from > now + config.max_validity:
            raise InvalidRequest("a validity period may start at most as far ahead as it may last")
        return self

    def live(self, now: float) -> bool:
        return self.valid_from <= now < self.valid_until


@dataclass(frozen=True, kw_only=True, slots=True)
class DevicePermissionRequest:
    serial: str
    permissions: frozenset[DevicePermission]
    validity: Validity


@dataclass(frozen=True, kw_only=True, slots=True)
class InstallerPermissionRequest:
    """Installer permissions after handover: site information and per-device ones."""

    site_info: Validity | None = None
    devices: tuple[DevicePermissionRequest, ...] = ()

    def to_json(self) -> str:
        return json.dumps(
            {
                "site_info": _validity_json(self.site_info),
                "devices": [
                    {
                        "serial": d.serial,
                        "permissions": sorted(p.value for p in d.permissions),
                        **_validity_json(d.validity),  # type: ignore[dict-item]
                    }
                    for d in self.devices
                ],
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> InstallerPermissionRequest:
        """Decode what `to_json` stored (our own store: odd data is a bug)."""
        raw = json.loads(text)
        site = raw["site_info"]
        return cls(
            site_info=None if site is None else Validity(**site),
            devices=tuple(
                DevicePermissionRequest(
                    serial=d["serial"],
                    permissions=frozenset(DevicePermission(p) for p in d["permissions"]),
                    validity=Validity(valid_from=d["valid_from"], valid_until=d["valid_until"]),
                )
                for d in raw["devices"]
            ),
        )


def _validity_json(validity: Validity | None) -> dict[str, int] | None:
    if validity is None:
        return None
    return {"valid_from": validity.valid_from, "valid_until": validity.valid_until}


# --- records ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class InstallerOrg:
    id: str
    name: str
    created_at: float


@dataclass(frozen=True, kw_only=True, slots=True)
class InstallerMember:
    account_id: str
    org_id: str
    role: InstallerRole
    device_management: bool
    email: str | None
    phone: str | None
    name: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class SiteDevice:
    serial: str
    model: str
    online: bool
    channels: int
    service_enabled: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class InstallerGrant:
    """One installer permission after handover; `device_serial` None: site information."""

    device_serial: str | None
    installer_id: str
    permissions: frozenset[DevicePermission]
    validity: Validity
    active: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class SiteInvitation:
    """An invitation as the installer and the invitee see it."""

    id: str
    site_id: str
    site_name: str
    site_address: str
    org_name: str
    channel: str
    address: str
    remark: str | None
    request: InstallerPermissionRequest
    allow_disable_service: bool
    state: str
    created_at: float
    last_sent_at: float
    expires_at: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Site:
    id: str
    org_id: str
    name: str
    address: str
    status: SiteStatus
    created_at: float
    owner_id: str | None
    installer_id: str | None
    handed_over_at: float | None
    allow_disable_service: bool
    devices: tuple[SiteDevice, ...]
    invitation: SiteInvitation | None
    grants: tuple[InstallerGrant, ...]
    assignees: tuple[str, ...]


def grant_from_row(row: Any, now: float) -> InstallerGrant:
    validity = Validity(valid_from=int(row.valid_from), valid_until=int(row.valid_until))
    return InstallerGrant(
        device_serial=row.device_serial,
        installer_id=row.installer_id,
        permissions=frozenset(
            DevicePermission(p) for p in str(row.permissions).split(",") if p
        ),
        validity=validity,
        active=validity.live(now),
    )
