"""What the installer-side and handover operations share: who may manage which site.

Rules:
- An installer is an account in an installer organisation, with a role:
  `manage_all` (every site of the organisation, plus members and
  assignments) or `manage_assigned` (only the sites assigned to it; a site's
  creator is assigned to it).  `device_management` says whether it may add
  devices and request configuration / live view for the owner's devices.
- A site of another organisation does not exist for you (`NotFound`); a site
  of your organisation you are not assigned to is `Forbidden`.
- Site status is derived, never stored: handed over once accepted; else the
  current invitation, if still pending and unexpired, makes it Not
  Registered (no account has the invited email/phone yet) or Not Accepted;
  else Not Invited.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, exists, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from nvrshare.relay.errors import Forbidden, NotFound
from nvrshare.relay.services.accounts import AccountService
from nvrshare.relay.services.context import ServiceContext
from nvrshare.relay.services.devices import DeviceService
from nvrshare.relay.services.models import Account
from nvrshare.relay.services.sites_access import still_in_site
from nvrshare.relay.services.sites_model import (
    InstallerPermissionRequest,
    InstallerRole,
    Site,
    SiteDevice,
    SiteInvitation,
    SitesConfig,
    SiteStatus,
    grant_from_row,
)
from nvrshare.relay.store import schema, schema_sites

__all__ = ["PENDING", "SiteServiceBase", "invitation_from_row"]

PENDING = "pending"
MAX_ID = 32


def invitation_from_row(row: Any, site: Any, org_name: str) -> SiteInvitation:
    return SiteInvitation(
        id=row.id,
        site_id=row.site_id,
        site_name=site.name,
        site_address=site.address,
        org_name=org_name,
        channel=row.channel,
        address=row.address,
        remark=row.remark,
        request=InstallerPermissionRequest.from_json(row.request),
        allow_disable_service=bool(row.allow_disable_service),
        state=row.state,
        created_at=row.created_at,
        last_sent_at=row.last_sent_at,
        expires_at=row.expires_at,
    )


class SiteServiceBase:
    """Lookups and permission checks for the site operations."""

    def __init__(
        self,
        context: ServiceContext,
        accounts: AccountService,
        devices: DeviceService,
        config: SitesConfig | None = None,
    ) -> None:
        self._ctx = context
        self._accounts = accounts
        self._devices = devices
        self._config = config if config is not None else SitesConfig()

    @property
    def config(self) -> SitesConfig:
        return self._config

    async def _member(self, conn: AsyncConnection, account: Account) -> Any:
        table = schema_sites.installer_members
        row = (await conn.execute(select(table).where(table.c.account_id == account.id))).first()
        if row is None:
            raise Forbidden(
                "you are not an installer: create or join an installer organisation first",
                code="not_an_installer",
            )
        return row

    async def _site_row(self, conn: AsyncConnection, site_id: str) -> Any:
        if not isinstance(site_id, str) or not 0 < len(site_id) <= MAX_ID:
            return None
        table = schema_sites.sites
        return (await conn.execute(select(table).where(table.c.id == site_id))).first()

    async def _manageable_site(
        self, conn: AsyncConnection, account: Account, site_id: str
    ) -> tuple[Any, Any]:
        """(site row, member row) if `account` may manage `site_id`; else NotFound/Forbidden."""
        member = await self._member(conn, account)
        site = await self._site_row(conn, site_id)
        if site is None or site.org_id != member.org_id:
            raise NotFound("no such site")
        if member.role != InstallerRole.MANAGE_ALL:
            table = schema_sites.site_assignments
            assigned = (
                await conn.execute(
                    select(table.c.site_id).where(
                        and_(table.c.site_id == site.id, table.c.account_id == account.id)
                    )
                )
            ).first()
            if assigned is None:
                raise Forbidden("you may only manage the sites assigned to you",
                                code="site_not_assigned")  # fmt: skip
        return site, member

    async def _lock_site(self, conn: AsyncConnection, site_id: str) -> None:
        # One UPDATE so concurrent invitations / accepts of a site serialise on its row.
        table = schema_sites.sites
        await conn.execute(
            update(table).where(table.c.id == site_id).values(revision=table.c.revision + 1)
        )

    async def _current_invitation(self, conn: AsyncConnection, site: Any, now: float) -> Any:
        if site.current_invitation_id is None or site.owner_id is not None:
            return None
        table = schema_sites.site_invitations
        row = (
            await conn.execute(select(table).where(table.c.id == site.current_invitation_id))
        ).first()
        if row is None or row.state != PENDING or row.expires_at <= now:
            return None
        return row

    async def _status(self, conn: AsyncConnection, site: Any, now: float) -> SiteStatus:
        if site.owner_id is not None:
            return SiteStatus.HANDED_OVER
        invitation = await self._current_invitation(conn, site, now)
        if invitation is None:
            return SiteStatus.NOT_INVITED
        accounts = schema.accounts
        column = accounts.c.email if invitation.channel == "email" else accounts.c.phone
        registered = (
            await conn.execute(select(exists().where(column == invitation.address)))
        ).scalar()
        return SiteStatus.NOT_ACCEPTED if registered else SiteStatus.NOT_REGISTERED

    async def _site_devices(self, conn: AsyncConnection, site: Any) -> list[Any]:
        """The site's devices still part of it (`sites_access.still_in_site`)."""
        table, devices = schema_sites.site_devices, schema.devices
        rows = await conn.execute(
            select(table, devices.c.model, devices.c.online)
            .select_from(table.join(schema_sites.sites, schema_sites.sites.c.id == table.c.site_id)
                         .join(devices, devices.c.serial == table.c.device_serial))
            .where(and_(table.c.site_id == site.id, still_in_site()))
            .order_by(table.c.device_serial)
        )  # fmt: skip
        return list(rows)

    async def _load_site(self, conn: AsyncConnection, site: Any, now: float) -> Site:
        device_rows = await self._site_devices(conn, site)
        channels = schema.channels
        counts: dict[str, int] = {}
        if device_rows:
            for row in await conn.execute(
                select(channels.c.device_serial).where(
                    channels.c.device_serial.in_([r.device_serial for r in device_rows])
                )
            ):
                counts[row.device_serial] = counts.get(row.device_serial, 0) + 1
        grants = schema_sites.installer_grants
        grant_rows = await conn.execute(
            select(grants).where(grants.c.site_id == site.id).order_by(grants.c.device_serial)
        )
        assignments = schema_sites.site_assignments
        assignees = await conn.execute(
            select(assignments.c.account_id)
            .where(assignments.c.site_id == site.id)
            .order_by(assignments.c.account_id)
        )
        invitation_row = await self._current_invitation(conn, site, now)
        invitation = None
        if invitation_row is not None:
            orgs = schema_sites.installer_orgs
            org_name = (
                await conn.execute(select(orgs.c.name).where(orgs.c.id == site.org_id))
            ).scalar_one()
            invitation = invitation_from_row(invitation_row, site, org_name)
        return Site(
            id=site.id,
            org_id=site.org_id,
            name=site.name,
            address=site.address,
            status=await self._status(conn, site, now),
            created_at=site.created_at,
            owner_id=site.owner_id,
            installer_id=site.installer_id,
            handed_over_at=site.handed_over_at,
            allow_disable_service=bool(site.allow_disable_service),
            devices=tuple(
                SiteDevice(
                    serial=r.device_serial,
                    model=r.model,
                    online=bool(r.online),
                    channels=counts.get(r.device_serial, 0),
                    service_enabled=bool(r.service_enabled),
                )
                for r in device_rows
            ),
            invitation=invitation,
            grants=tuple(grant_from_row(r, now) for r in grant_rows),
            assignees=tuple(r.account_id for r in assignees),
        )
