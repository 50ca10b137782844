"""Installer-side site operations: sites, assignments and devices (the organisation: `sites_org`).

See `sites_base` for who may manage which site.  Devices are added to a site
the way an owner adds one (serial + verification code, `DeviceService.bind`,
with its rate limits): the installer's account holds the device until the
handover, so a device still has exactly one owner at every moment.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, delete, func, select, update

from nvrshare.protocol.validation import is_valid_serial
from nvrshare.relay.errors import (
    Conflict,
    DeviceAlreadyBound,
    DeviceNotFound,
    Forbidden,
    NotFound,
)
from nvrshare.relay.services import audit
from nvrshare.relay.services.context import new_id
from nvrshare.relay.services.models import Account, Page
from nvrshare.relay.services.paging import check_limit, decode_cursor, encode_cursor
from nvrshare.relay.services.sites_model import (
    InstallerRole,
    Site,
)
from nvrshare.relay.services.sites_org import OrgOps, check_text
from nvrshare.relay.store import schema_sites

__all__ = ["InstallerSiteOps"]


class InstallerSiteOps(OrgOps):
    """What installers do before (and, with permission, after) the handover."""

    # --- sites ----------------------------------------------------------------------

    async def create_site(self, account: Account, *, name: str, address: str = "") -> Site:
        """A new site (Not Invited) in your organisation; you are assigned to it."""
        name = check_text(name, "site name", max_length=64)
        address = check_text(address, "address", max_length=256, required=False)
        now = self._ctx.clock()
        sites = schema_sites.sites
        async with self._ctx.store.transaction() as conn:
            me = await self._member(conn, account)
            count = (
                await conn.execute(
                    select(func.count()).select_from(sites).where(sites.c.org_id == me.org_id)
                )
            ).scalar_one()
            if count >= self._config.max_sites_per_org:
                raise Conflict("the organisation has as many sites as allowed")
            site_id = new_id()
            await conn.execute(
                sites.insert().values(
                    id=site_id, org_id=me.org_id, name=name, address=address,
                    created_by=account.id, created_at=now, revision=0,
                    allow_disable_service=False,
                )
            )  # fmt: skip
            await conn.execute(
                schema_sites.site_assignments.insert().values(
                    site_id=site_id, account_id=account.id
                )
            )
            await audit.record(
                conn, at=now, actor_id=account.id, action=audit.AuditAction.SITE_CHANGED,
                subject_id=site_id, detail={"created": name},
            )  # fmt: skip
            row = await self._site_row(conn, site_id)
            return await self._load_site(conn, row, now)

    async def list_sites(
        self, account: Account, *, limit: int = 50, cursor: str | None = None
    ) -> Page[Site]:
        """The sites you may manage (every site of the organisation for `manage_all`)."""
        limit = check_limit(limit)
        after = decode_cursor(cursor, 1)
        sites, assignments = schema_sites.sites, schema_sites.site_assignments
        now = self._ctx.clock()
        async with self._ctx.store.transaction() as conn:
            me = await self._member(conn, account)
            query = select(sites).where(sites.c.org_id == me.org_id)
            if me.role != InstallerRole.MANAGE_ALL:
                query = query.join(
                    assignments,
                    and_(assignments.c.site_id == sites.c.id,
                         assignments.c.account_id == account.id),
                )  # fmt: skip
            if after is not None:
                query = query.where(sites.c.id > str(after[0]))
            rows = (await conn.execute(query.order_by(sites.c.id).limit(limit + 1))).all()
            page = rows[:limit]
            items = tuple([await self._load_site(conn, r, now) for r in page])
        next_cursor = encode_cursor([page[-1].id]) if len(rows) > limit else None
        return Page(items=items, next_cursor=next_cursor)

    async def get_site(self, account: Account, site_id: str) -> Site:
        now = self._ctx.clock()
        async with self._ctx.store.transaction() as conn:
            site, _member = await self._manageable_site(conn, account, site_id)
            return await self._load_site(conn, site, now)

    async def update_site(
        self, account: Account, site_id: str, *, name: str | None = None,
        address: str | None = None,
    ) -> Site:  # fmt: skip
        """Edit a site's name/address.

        Before the handover: any installer who may manage the site.  After: only
        with a site-information permission that is valid now.
        """
        values: dict[str, str] = {}
        if name is not None:
            values["name"] = check_text(name, "site name", max_length=64)
        if address is not None:
            values["address"] = check_text(address, "address", max_length=256, required=False)
        now = self._ctx.clock()
        sites, grants = schema_sites.sites, schema_sites.installer_grants
        async with self._ctx.store.transaction() as conn:
            site, _member = await self._manageable_site(conn, account, site_id)
            if site.owner_id is not None:
                live = (
                    await conn.execute(
                        select(grants.c.id).where(
                            and_(
                                grants.c.site_id == site.id, grants.c.device_serial.is_(None),
                                grants.c.installer_id == account.id,
                                grants.c.valid_from <= now, grants.c.valid_until > now,
                            )
                        )
                    )
                ).first()  # fmt: skip
                if live is None:
                    raise Forbidden(
                        "the site was handed over: you need a valid site information permission",
                        code="installer_permission_missing",
                    )
            if values:
                await conn.execute(update(sites).where(sites.c.id == site.id).values(**values))
                await audit.record(
                    conn, at=now, actor_id=account.id, action=audit.AuditAction.SITE_CHANGED,
                    subject_id=site.id, detail=dict(values),
                )  # fmt: skip
            site = await self._site_row(conn, site.id)
            return await self._load_site(conn, site, now)

    async def assign(
        self, admin: Account, site_id: str, account_id: str, *, assigned: bool = True
    ) -> Site:
        """Assign (or unassign) a member of your organisation to a site (`manage_all` only)."""
        members, assignments = schema_sites.installer_members, schema_sites.site_assignments
        now = self._ctx.clock()
        async with self._ctx.store.transaction() as conn:
            me = await self._admin(conn, admin)
            site, _ = await self._manageable_site(conn, admin, site_id)
            target = (
                await conn.execute(
                    select(members.c.account_id).where(
                        and_(members.c.account_id == account_id, members.c.org_id == me.org_id)
                    )
                )
            ).first()
            if target is None:
                raise NotFound("no such member in your organisation")
            where = and_(assignments.c.site_id == site.id, assignments.c.account_id == account_id)
            await conn.execute(delete(assignments).where(where))
            if assigned:
                await conn.execute(
                    assignments.insert().values(site_id=site.id, account_id=account_id)
                )
            await audit.record(
                conn, at=now, actor_id=admin.id, action=audit.AuditAction.SITE_CHANGED,
                subject_id=site.id, detail={"assigned" if assigned else "unassigned": account_id},
            )  # fmt: skip
            return await self._load_site(conn, site, now)

    # --- devices ----------------------------------------------------------------------

    async def _open_site_for_devices(self, conn: Any, account: Account, site_id: str) -> Any:
        site, member = await self._manageable_site(conn, account, site_id)
        if not member.device_management:
            raise Forbidden("you may not manage devices", code="device_management_denied")
        if site.owner_id is not None:
            raise Conflict("the site was handed over: its devices belong to the owner")
        return site

    async def _check_room(self, conn: Any, site: Any, serial: str) -> Any:
        """The device's current site row (None if in none); `Conflict` if it cannot join."""
        table = schema_sites.site_devices
        current = (
            await conn.execute(select(table).where(table.c.device_serial == serial))
        ).first()
        if current is not None and current.site_id != site.id:
            raise Conflict("this device belongs to another site")
        full = len(await self._site_devices(conn, site)) >= self._config.max_devices_per_site
        if current is None and full:
            raise Conflict("the site has as many devices as allowed")
        return current

    async def add_device(
        self, account: Account, site_id: str, *, serial: str, verification_code: str,
        source: str,
    ) -> Site:  # fmt: skip
        """Add a device to a site by serial + verification code (as an owner adds one).

        Raises what `DeviceService.bind` raises, plus `Forbidden` (no device
        management), `Conflict` (handed over, site full, device in another site).
        """
        async with self._ctx.store.transaction() as conn:
            site = await self._open_site_for_devices(conn, account, site_id)
            await self._check_room(conn, site, serial)  # before binding, to bind nothing in vain
        try:
            await self._devices.bind(
                account, serial=serial, verification_code=verification_code, source=source
            )
        except DeviceAlreadyBound:
            # Already on this installer's account (e.g. added before): attach it.
            await self._devices.get_owned(account, serial)
        table = schema_sites.site_devices
        now = self._ctx.clock()
        async with self._ctx.store.transaction() as conn:
            site = await self._open_site_for_devices(conn, account, site_id)
            await self._lock_site(conn, site.id)
            current = await self._check_room(conn, site, serial)
            if current is None:
                await conn.execute(
                    table.insert().values(
                        device_serial=serial, site_id=site.id, holder_id=account.id,
                        added_at=now, service_enabled=True,
                    )
                )  # fmt: skip
            else:
                await conn.execute(
                    update(table).where(table.c.device_serial == serial)
                    .values(holder_id=account.id)
                )  # fmt: skip
            await audit.record(
                conn, at=now, actor_id=account.id, action=audit.AuditAction.SITE_DEVICE_ADDED,
                device_serial=serial, subject_id=site.id,
            )  # fmt: skip
            return await self._load_site(conn, site, now)

    async def detach_device(self, account: Account, site_id: str, serial: str) -> Site:
        """Take a device out of a site before the handover (it stays on your account)."""
        table = schema_sites.site_devices
        now = self._ctx.clock()
        if not is_valid_serial(serial):
            raise DeviceNotFound("no such device in this site")
        async with self._ctx.store.transaction() as conn:
            site = await self._open_site_for_devices(conn, account, site_id)
            result = await conn.execute(
                delete(table).where(
                    and_(table.c.device_serial == serial, table.c.site_id == site.id)
                )
            )
            if not result.rowcount:
                raise DeviceNotFound("no such device in this site")
            await audit.record(
                conn, at=now, actor_id=account.id, action=audit.AuditAction.SITE_DEVICE_REMOVED,
                device_serial=serial, subject_id=site.id,
            )  # fmt: skip
            return await self._load_site(conn, site, now)
