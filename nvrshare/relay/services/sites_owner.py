"""After the handover: the owner's sites, installer permissions, the service switch, removal.

- The owner may authorise further installer permissions for devices of the
  site (same checks as in the invitation) or revoke them; revoking bumps the
  device's share epoch, so the installer's tokens die at once.
- If the owner allowed it at acceptance, an installer who may manage the site
  can switch the cloud service off (one device or all; the grant set then says
  `service_enabled=False` and no token is issued for the device) and remove
  devices from the owner's account without the owner's approval.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from nvrshare.protocol.validation import is_valid_serial
from nvrshare.relay.errors import (
    Conflict,
    DeviceNotFound,
    Forbidden,
    InvalidRequest,
    NotFound,
)
from nvrshare.relay.services import audit
from nvrshare.relay.services.context import bump_device, record_revocations
from nvrshare.relay.services.events import (
    DeviceRemoved,
    RelayEvent,
    ShareChanged,
    ShareChangeKind,
)
from nvrshare.relay.services.models import Account, Page
from nvrshare.relay.services.paging import check_limit, decode_cursor, encode_cursor
from nvrshare.relay.services.sites_handover import HandoverOps
from nvrshare.relay.services.sites_model import InstallerPermissionRequest, Site
from nvrshare.relay.store import schema, schema_sites

__all__ = ["AfterHandoverOps"]


class AfterHandoverOps(HandoverOps):
    """What the owner and (with consent) the installer do once the site is handed over."""

    # --- owner --------------------------------------------------------------------------

    async def _owned_site(self, conn: AsyncConnection, owner: Account, site_id: str) -> Any:
        site = await self._site_row(conn, site_id)
        if site is None or site.owner_id != owner.id:
            raise NotFound("no such site on your account")
        return site

    async def owned_sites(
        self, owner: Account, *, limit: int = 50, cursor: str | None = None
    ) -> Page[Site]:
        """Sites handed over to you."""
        limit = check_limit(limit)
        after = decode_cursor(cursor, 1)
        sites = schema_sites.sites
        now = self._ctx.clock()
        query = select(sites).where(sites.c.owner_id == owner.id)
        if after is not None:
            query = query.where(sites.c.id > str(after[0]))
        async with self._ctx.store.transaction() as conn:
            rows = (await conn.execute(query.order_by(sites.c.id).limit(limit + 1))).all()
            page = rows[:limit]
            items = tuple([await self._load_site(conn, r, now) for r in page])
        next_cursor = encode_cursor([page[-1].id]) if len(rows) > limit else None
        return Page(items=items, next_cursor=next_cursor)

    async def owned_site(self, owner: Account, site_id: str) -> Site:
        now = self._ctx.clock()
        async with self._ctx.store.transaction() as conn:
            return await self._load_site(conn, await self._owned_site(conn, owner, site_id), now)

    async def grant_installer(
        self, owner: Account, site_id: str, request: InstallerPermissionRequest
    ) -> Site:
        """Authorise (or replace) installer permissions on your site's devices / information."""
        now = self._ctx.clock()
        events: list[RelayEvent] = []
        async with self._ctx.store.transaction() as conn:
            site = await self._owned_site(conn, owner, site_id)
            if site.installer_id is None:
                raise Conflict("this site has no installer to authorise")
            await self._lock_site(conn, site.id)
            request = await self._check_request(conn, site, site.installer_id, request, now)
            in_site = {r.device_serial for r in await self._site_devices(conn, site)}
            touched = await self._store_grants(
                conn, site, site.installer_id, request, granted_by=owner.id, only=in_site, now=now
            )
            for serial in touched:
                epoch, version = await bump_device(conn, serial, epoch=False)
                events.append(ShareChanged(
                    device_serial=serial, share_epoch=epoch, grant_version=version,
                    kind=ShareChangeKind.UPDATED, account_ids=(site.installer_id,),
                ))  # fmt: skip
            result = await self._load_site(conn, site, now)
        for event in events:
            self._ctx.events.publish(event)
        return result

    async def revoke_installer(
        self, owner: Account, site_id: str, *, site_info: bool = False,
        serials: Sequence[str] | None = None,
    ) -> int:  # fmt: skip
        """Revoke installer permissions: site information and/or devices (None: every device).

        Returns how many grants ended; the installer's tokens for those devices die.
        """
        now = self._ctx.clock()
        grants = schema_sites.installer_grants
        events: list[RelayEvent] = []
        if type(site_info) is not bool:
            raise InvalidRequest("site_info must be a boolean")
        if serials is not None and (
            not isinstance(serials, list | tuple)
            or len(serials) > self._config.max_devices_per_site
            or not all(isinstance(s, str) for s in serials)
        ):  # fmt: skip
            raise InvalidRequest("serials must be a list of device serials")
        async with self._ctx.store.transaction() as conn:
            site = await self._owned_site(conn, owner, site_id)
            await self._lock_site(conn, site.id)
            ended = 0
            if site_info:
                ended += (
                    await conn.execute(
                        delete(grants).where(
                            and_(grants.c.site_id == site.id, grants.c.device_serial.is_(None))
                        )
                    )
                ).rowcount
            device_filter = grants.c.device_serial.is_not(None)
            if serials is not None:
                device_filter = grants.c.device_serial.in_(list(serials) or [""])
            rows = (
                await conn.execute(
                    delete(grants).where(and_(grants.c.site_id == site.id, device_filter))
                    .returning(grants.c.device_serial, grants.c.installer_id)
                )
            ).all()  # fmt: skip
            ended += len(rows)
            for serial in sorted({r.device_serial for r in rows}):
                installers = sorted({r.installer_id for r in rows if r.device_serial == serial})
                epoch, version = await bump_device(conn, serial)
                await record_revocations(conn, serial, installers, epoch=epoch, now=now)
                await audit.record(
                    conn, at=now, actor_id=owner.id, action=audit.AuditAction.INSTALLER_REVOKED,
                    device_serial=serial, subject_id=installers[0], detail={"site": site.id},
                )  # fmt: skip
                events.append(ShareChanged(
                    device_serial=serial, share_epoch=epoch, grant_version=version,
                    kind=ShareChangeKind.REVOKED, account_ids=tuple(installers),
                    revoked=tuple(installers),
                ))  # fmt: skip
        for event in events:
            self._ctx.events.publish(event)
        return ended

    # --- installer after the handover: the service switch and removal ---------------------

    async def _switchable_site(
        self, conn: AsyncConnection, installer: Account, site_id: str
    ) -> Any:
        site, _member = await self._manageable_site(conn, installer, site_id)
        if site.owner_id is None or not site.allow_disable_service:
            raise Forbidden(
                "the owner did not allow you to disable the cloud service of this site",
                code="service_switch_not_allowed",
            )
        return site

    async def set_service(
        self, installer: Account, site_id: str, *, enabled: bool, serial: str | None = None
    ) -> Site:
        """Switch the cloud service on/off for one device of the site, or all (serial None)."""
        if type(enabled) is not bool:
            raise InvalidRequest("enabled must be a boolean")
        table = schema_sites.site_devices
        now = self._ctx.clock()
        events: list[RelayEvent] = []
        async with self._ctx.store.transaction() as conn:
            site = await self._switchable_site(conn, installer, site_id)
            serials = [r.device_serial for r in await self._site_devices(conn, site)
                       if bool(r.service_enabled) != enabled]  # fmt: skip
            if serial is not None:
                if serial not in {r.device_serial for r in await self._site_devices(conn, site)}:
                    raise DeviceNotFound("no such device in this site")
                serials = [s for s in serials if s == serial]
            for changed in serials:
                await conn.execute(
                    update(table).where(table.c.device_serial == changed)
                    .values(service_enabled=enabled)
                )  # fmt: skip
                # A new epoch: tokens minted while it was on die at the agent.
                epoch, version = await bump_device(conn, changed, epoch=not enabled)
                await audit.record(
                    conn, at=now, actor_id=installer.id, device_serial=changed,
                    action=audit.AuditAction.SITE_SERVICE_SWITCHED, subject_id=site.id,
                    detail={"enabled": enabled},
                )  # fmt: skip
                events.append(ShareChanged(
                    device_serial=changed, share_epoch=epoch, grant_version=version,
                    kind=ShareChangeKind.UPDATED, account_ids=(),
                ))  # fmt: skip
            result = await self._load_site(conn, site, now)
        for event in events:
            self._ctx.events.publish(event)
        return result

    async def remove_from_owner(self, installer: Account, site_id: str, serial: str) -> None:
        """Remove a device of a handed-over site from the owner's account (owner consented)."""
        await self._remove_from_owner(installer, site_id, serial)

    async def _remove_from_owner(self, installer: Account, site_id: str, serial: str) -> None:
        devices, shares = schema.devices, schema.shares
        now = self._ctx.clock()
        if not is_valid_serial(serial):
            raise DeviceNotFound("no such device in this site")
        async with self._ctx.store.transaction() as conn:
            site = await self._switchable_site(conn, installer, site_id)
            if serial not in {r.device_serial for r in await self._site_devices(conn, site)}:
                raise DeviceNotFound("no such device in this site")
            await conn.execute(
                update(devices)
                .where(and_(devices.c.serial == serial, devices.c.owner_id == site.owner_id))
                .values(owner_id=None, alias=None, bound_at=None)
            )
            recipients = (
                await conn.execute(
                    delete(shares).where(shares.c.device_serial == serial)
                    .returning(shares.c.recipient_id)
                )
            ).scalars().all()  # fmt: skip
            grants = schema_sites.installer_grants
            installers = (
                await conn.execute(
                    delete(grants).where(grants.c.device_serial == serial)
                    .returning(grants.c.installer_id)
                )
            ).scalars().all()  # fmt: skip
            await conn.execute(
                delete(schema_sites.site_devices).where(
                    schema_sites.site_devices.c.device_serial == serial
                )
            )
            epoch, version = await bump_device(conn, serial)
            revoked = (site.owner_id, *sorted(set(recipients) | set(installers)))
            await record_revocations(conn, serial, revoked, epoch=epoch, now=now)
            await audit.record(
                conn, at=now, actor_id=installer.id, action=audit.AuditAction.DEVICE_REMOVED,
                device_serial=serial, subject_id=site.owner_id,
                detail={"site": site.id, "by_installer": True, "revoked": list(revoked)},
            )  # fmt: skip
        self._ctx.events.publish(
            DeviceRemoved(device_serial=serial, share_epoch=epoch, grant_version=version,
                          revoked=revoked)
        )  # fmt: skip
