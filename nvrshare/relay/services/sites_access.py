"""What installer sites change about access to a device: grants, validity, the service switch.

Called from the places that decide access for everyone: `grant_set_for` (the
grant set a device enforces) and `TokenService.issue` (share tokens).  Kept
apart from the site service so those callers import a few functions, not the
whole installer side.

- A device of a site whose installer switched the service off: no token for
  anyone (owner included), and the grant set says `service_enabled=False`, so
  the agent refuses every session.
- An installer grant with live view and/or playback gives the installer's
  account those flags on every channel, for its validity period only: the
  grant set carries the period, and a token for it never outlives its end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from nvrshare.protocol.permissions import Permission
from nvrshare.relay.errors import Conflict, Forbidden
from nvrshare.relay.services.context import ServiceContext, load_device
from nvrshare.relay.services.models import Channel, Device
from nvrshare.relay.services.sites_model import (
    DEVICE_PERMISSION_FLAGS,
    DevicePermission,
    ServiceDisabled,
)
from nvrshare.relay.store import schema, schema_sites

__all__ = [
    "InstallerAccess",
    "TimedMatrix",
    "check_service_enabled",
    "installer_access",
    "installer_token_scope",
    "service_enabled",
    "still_in_site",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class TimedMatrix:
    matrix: Mapping[int, Permission]
    valid_from: int
    valid_until: int


@dataclass(frozen=True, kw_only=True, slots=True)
class InstallerAccess:
    """What the sites add to one device's grant set."""

    service_enabled: bool = True
    grants: Mapping[str, TimedMatrix] = field(default_factory=dict)


def still_in_site() -> ColumnElement[bool]:
    """SQL: the `site_devices` row's device is still part of its site.

    Before the handover the installer who added it must still hold it; after
    it, the site owner must still own it *from the handover on*: a device the
    owner removed (or that was removed and bound again later, so its
    `bound_at` is after the handover) left the site, and neither the service
    switch nor installer grants follow it.  Joins `sites` and `devices`.
    """
    table, sites, devices = schema_sites.site_devices, schema_sites.sites, schema.devices
    return and_(
        sites.c.id == table.c.site_id,
        devices.c.serial == table.c.device_serial,
        or_(
            and_(sites.c.owner_id.is_(None), devices.c.owner_id == table.c.holder_id),
            and_(
                devices.c.owner_id == sites.c.owner_id,
                devices.c.bound_at <= sites.c.handed_over_at,
            ),
        ),
    )


def _flags(permissions: str) -> Permission:
    bits = Permission.NONE
    for name in permissions.split(","):
        if name:
            bits |= DEVICE_PERMISSION_FLAGS[DevicePermission(name)]
    return bits


async def service_enabled(conn: AsyncConnection, serial: str) -> bool:
    """False only when the device's site installer switched the cloud service off."""
    table = schema_sites.site_devices
    value = (
        await conn.execute(
            select(table.c.service_enabled).where(
                and_(table.c.device_serial == serial, still_in_site())
            )
        )
    ).scalar()
    return value is None or bool(value)


def _live_grants(serial: str) -> Select[Any]:
    """Installer grants on `serial` whose device is still in the site that granted them."""
    grants, table = schema_sites.installer_grants, schema_sites.site_devices
    return select(grants).where(
        and_(
            grants.c.device_serial == serial,
            table.c.device_serial == serial,
            table.c.site_id == grants.c.site_id,
            still_in_site(),
        )
    )


async def check_service_enabled(context: ServiceContext, serial: str) -> None:
    """Raise `ServiceDisabled` if the device's cloud service is switched off."""
    async with context.store.transaction() as conn:
        if not await service_enabled(conn, serial):
            raise ServiceDisabled


async def installer_access(
    conn: AsyncConnection, serial: str, channels: tuple[Channel, ...], now: float
) -> InstallerAccess:
    """The service switch and the unexpired installer grants with device flags."""
    grants = schema_sites.installer_grants
    rows = await conn.execute(_live_grants(serial).where(grants.c.valid_until > now))
    timed: dict[str, TimedMatrix] = {}
    for row in rows:
        bits = _flags(row.permissions)
        if bits == Permission.NONE or not channels:
            continue
        timed[row.installer_id] = TimedMatrix(
            matrix={c.number: bits for c in channels},
            valid_from=int(row.valid_from),
            valid_until=int(row.valid_until),
        )
    return InstallerAccess(service_enabled=await service_enabled(conn, serial), grants=timed)


async def installer_token_scope(
    context: ServiceContext, account_id: str, serial: str, now: float
) -> tuple[Device, dict[int, Permission], int] | None:
    """(device, matrix, end of validity) an installer grant gives `account_id` now.

    None when there is no such grant at all (the caller answers "no such
    device"); `Forbidden` when there is one but it is not valid now.
    """
    grants = schema_sites.installer_grants
    async with context.store.transaction() as conn:
        rows = (
            await conn.execute(_live_grants(serial).where(grants.c.installer_id == account_id))
        ).all()
        rows = [r for r in rows if _flags(r.permissions) != Permission.NONE]
        if not rows:
            return None
        device = await load_device(conn, serial)
    if device is None:
        return None
    if not device.channels:
        raise Conflict("the device has not reported any channels yet")
    row = rows[0]
    if now < row.valid_from:
        raise Forbidden("your installer permission on this device is not valid yet",
                        code="grant_not_yet_valid")  # fmt: skip
    if now >= row.valid_until:
        raise Forbidden("your installer permission on this device has expired",
                        code="grant_expired")  # fmt: skip
    bits = _flags(row.permissions)
    return device, {c.number: bits for c in device.channels}, int(row.valid_until)
