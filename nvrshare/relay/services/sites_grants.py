"""Installer permissions: checking a request and storing it as timed grants.

Shared by the invitation (checked when sent, stored at acceptance) and by the
owner authorising more later.  Configuration and live view can be requested
only if the installer may manage devices and the site has devices; every
device must be in the site; every period is checked (`Validity.check`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from nvrshare.relay.errors import InvalidRequest
from nvrshare.relay.services import audit
from nvrshare.relay.services.context import new_id
from nvrshare.relay.services.sites_base import SiteServiceBase
from nvrshare.relay.services.sites_model import (
    DevicePermission,
    InstallerPermissionRequest,
    InstallerPermissionUnavailable,
)
from nvrshare.relay.store import schema_sites

__all__ = ["GrantRules"]

_NEEDS_DEVICE_MANAGEMENT = frozenset({DevicePermission.CONFIGURATION, DevicePermission.LIVE_VIEW})


class GrantRules(SiteServiceBase):
    """Check and store installer permission requests."""

    async def _check_request(
        self, conn: AsyncConnection, site: Any, installer_id: str | None,
        request: InstallerPermissionRequest, now: float,
    ) -> InstallerPermissionRequest:  # fmt: skip
        if not isinstance(request, InstallerPermissionRequest):
            raise InvalidRequest("installer permissions are malformed")
        if request.site_info is not None:
            request.site_info.check(now=now, config=self._config)
        if not request.devices:
            return request
        serials = [d.serial for d in request.devices]
        if len(set(serials)) != len(serials):
            raise InvalidRequest("a device appears twice in the installer permissions")
        in_site = {r.device_serial for r in await self._site_devices(conn, site)}
        members = schema_sites.installer_members
        manages_devices = installer_id is not None and bool(
            (
                await conn.execute(
                    select(members.c.device_management).where(
                        and_(members.c.account_id == installer_id,
                             members.c.org_id == site.org_id)
                    )
                )
            ).scalar()
        )  # fmt: skip
        for wanted in request.devices:
            if not wanted.permissions or not all(
                isinstance(p, DevicePermission) for p in wanted.permissions
            ):
                raise InvalidRequest(f"device {wanted.serial}: name at least one permission")
            if wanted.permissions & _NEEDS_DEVICE_MANAGEMENT:
                if not in_site:
                    raise InstallerPermissionUnavailable(
                        "configuration and live view cannot be requested: the site has no devices"
                    )
                if not manages_devices:
                    raise InstallerPermissionUnavailable(
                        "configuration and live view cannot be requested: the installer may "
                        "not manage devices"
                    )
            if wanted.serial not in in_site:
                raise InvalidRequest(f"device {str(wanted.serial)[:64]} is not in this site")
            wanted.validity.check(now=now, config=self._config)
        return request

    async def _store_grants(
        self, conn: AsyncConnection, site: Any, installer_id: str,
        request: InstallerPermissionRequest, *, granted_by: str, only: set[str], now: float,
    ) -> list[str]:  # fmt: skip
        """Replace the installer's grants named by `request`; return the devices touched."""
        grants = schema_sites.installer_grants
        common = {"site_id": site.id, "installer_id": installer_id, "granted_by": granted_by,
                  "granted_at": now}  # fmt: skip
        if request.site_info is not None:
            await conn.execute(
                delete(grants).where(
                    and_(grants.c.site_id == site.id, grants.c.device_serial.is_(None))
                )
            )
            await conn.execute(
                grants.insert().values(
                    id=new_id(), device_serial=None, permissions="",
                    valid_from=request.site_info.valid_from,
                    valid_until=request.site_info.valid_until, **common,
                )
            )  # fmt: skip
        touched = []
        for wanted in request.devices:
            if wanted.serial not in only:
                continue
            await conn.execute(
                delete(grants).where(
                    and_(grants.c.site_id == site.id, grants.c.device_serial == wanted.serial)
                )
            )
            await conn.execute(
                grants.insert().values(
                    id=new_id(), device_serial=wanted.serial,
                    permissions=",".join(sorted(p.value for p in wanted.permissions)),
                    valid_from=wanted.validity.valid_from,
                    valid_until=wanted.validity.valid_until, **common,
                )
            )  # fmt: skip
            await audit.record(
                conn, at=now, actor_id=granted_by, action=audit.AuditAction.INSTALLER_GRANTED,
                device_serial=wanted.serial, subject_id=installer_id,
                detail={"site": site.id,
                        "permissions": sorted(p.value for p in wanted.permissions),
                        "valid_from": wanted.validity.valid_from,
                        "valid_until": wanted.validity.valid_until},
            )  # fmt: skip
            touched.append(wanted.serial)
        return touched
