"""The handover: invitations, acceptance, installer permissions after it, the service switch.

Rules (the rest are in `sites_base` and `sites_model`):
- Only an installer who may manage the site invites, and only while it is
  Not Invited or an invitation is pending.  The invitee is named by email or
  phone; the remark is shown to the invitee.  A new invitation invalidates
  the current one; accepting an invalidated one fails (`invitation_invalidated`).
- At most `max_invitations_per_day` sends (new or resent) per site in a
  rolling window; the refusal says when the next send is possible.
- Configuration and live view can be requested only if the inviting installer
  may manage devices and the site has devices (`installer_permission_unavailable`).
- Accepting, in one transaction serialised on the site row: the invitee
  becomes the owner of every device of the site (a conditional UPDATE per
  device from the installer holding it, so one device keeps one owner even
  under concurrent accepts), earlier shares of those devices end, and the
  requested permissions become grants of the inviting installer's account,
  each with its validity period.
- After the handover the owner may add or revoke installer permissions.  If
  the owner allowed it, an installer who may manage the site can switch the
  cloud service off (one device or all) and remove devices from the owner's
  account without the owner's approval.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from nvrshare.relay.errors import (
    Conflict,
    CrossRegionShare,
    Forbidden,
    InvalidRequest,
    NotFound,
)
from nvrshare.relay.services import audit
from nvrshare.relay.services.context import bump_device, new_id, record_revocations
from nvrshare.relay.services.events import (
    DeviceBound,
    RelayEvent,
)
from nvrshare.relay.services.identifiers import IdentifierKind, normalize
from nvrshare.relay.services.models import Account
from nvrshare.relay.services.sites_base import PENDING, invitation_from_row
from nvrshare.relay.services.sites_grants import GrantRules
from nvrshare.relay.services.sites_model import (
    InstallerPermissionRequest,
    InvitationClosed,
    InvitationExpired,
    InvitationInvalidated,
    InvitationLimitReached,
    Site,
    SiteInvitation,
)
from nvrshare.relay.services.sites_org import check_text
from nvrshare.relay.store import schema, schema_sites

__all__ = ["HandoverOps"]

INVALIDATED, ACCEPTED, DECLINED = "invalidated", "accepted", "declined"


class HandoverOps(GrantRules):
    """Invite, accept, installer permissions after the handover, and the service switch."""

    # --- checks -------------------------------------------------------------------

    async def _count_send(self, conn: AsyncConnection, site_id: str, now: float) -> None:
        """Refuse a send over the daily limit, else record it (site row already locked)."""
        sends = schema_sites.site_invitation_sends
        window = self._config.invitation_window
        recent = (
            await conn.execute(
                select(sends.c.at)
                .where(and_(sends.c.site_id == site_id, sends.c.at > now - window))
                .order_by(sends.c.at.desc())
                .limit(self._config.max_invitations_per_day)
            )
        ).scalars().all()  # fmt: skip
        if len(recent) >= self._config.max_invitations_per_day:
            wait = max(1, math.ceil(recent[-1] + window - now))
            raise InvitationLimitReached(
                f"at most {self._config.max_invitations_per_day} invitations per site per day;"
                f" try again in {wait} s",
                retry_after=wait,
            )
        await conn.execute(sends.delete().where(sends.c.site_id == site_id)
                           .where(sends.c.at <= now - window))  # fmt: skip
        await conn.execute(sends.insert().values(site_id=site_id, at=now))

    # --- installer: invite --------------------------------------------------------------

    async def invite(
        self, installer: Account, site_id: str, *, email: str | None = None,
        phone: str | None = None, remark: str | None = None,
        permissions: InstallerPermissionRequest | None = None,
        allow_disable_service: bool = False,
    ) -> SiteInvitation:  # fmt: skip
        """Invite the site owner by email or phone; invalidates the current invitation.

        Raises `InvalidRequest`, `InstallerPermissionUnavailable`,
        `InvitationLimitReached` (429), `Conflict` (handed over), `NotFound` /
        `Forbidden` (not your site).
        """
        if (email is None) == (phone is None):
            raise InvalidRequest("invite by exactly one of email or phone")
        channel = IdentifierKind.EMAIL if email is not None else IdentifierKind.PHONE
        address = normalize(channel, email if email is not None else phone)  # type: ignore[arg-type]
        if remark is not None:
            remark = check_text(remark, "remark", max_length=128, required=False) or None
        if type(allow_disable_service) is not bool:
            raise InvalidRequest("allow_disable_service must be a boolean")
        request = permissions if permissions is not None else InstallerPermissionRequest()
        now = self._ctx.clock()
        invitations, sites = schema_sites.site_invitations, schema_sites.sites
        async with self._ctx.store.transaction() as conn:
            site, _member = await self._manageable_site(conn, installer, site_id)
            if getattr(installer, channel.value) == address:
                raise InvalidRequest("you cannot invite yourself")
            await self._lock_site(conn, site.id)
            site = await self._site_row(conn, site.id)  # as of the lock
            if site.owner_id is not None:
                raise Conflict("the site was handed over already")
            request = await self._check_request(conn, site, installer.id, request, now)
            await self._count_send(conn, site.id, now)
            await conn.execute(
                update(invitations)
                .where(and_(invitations.c.site_id == site.id, invitations.c.state == PENDING))
                .values(state=INVALIDATED, answered_at=now)
            )
            invitation_id = new_id()
            await conn.execute(
                invitations.insert().values(
                    id=invitation_id, site_id=site.id, inviter_id=installer.id,
                    channel=channel.value, address=address, remark=remark,
                    request=request.to_json(), allow_disable_service=allow_disable_service,
                    state=PENDING, created_at=now, last_sent_at=now,
                    expires_at=now + self._config.invitation_ttl,
                )
            )  # fmt: skip
            await conn.execute(
                update(sites).where(sites.c.id == site.id)
                .values(current_invitation_id=invitation_id)
            )  # fmt: skip
            await audit.record(
                conn, at=now, actor_id=installer.id, action=audit.AuditAction.SITE_INVITED,
                subject_id=site.id, detail={"invitation": invitation_id, "by": channel.value},
            )  # fmt: skip
            site = await self._site_row(conn, site.id)
            row = await self._current_invitation(conn, site, now)
            return invitation_from_row(row, site, await self._org_name(conn, site.org_id))

    async def resend(self, installer: Account, site_id: str) -> SiteInvitation:
        """Send the pending invitation again (counts against the daily limit; renews expiry)."""
        now = self._ctx.clock()
        invitations = schema_sites.site_invitations
        async with self._ctx.store.transaction() as conn:
            site, _member = await self._manageable_site(conn, installer, site_id)
            await self._lock_site(conn, site.id)
            site = await self._site_row(conn, site.id)  # as of the lock
            row = await self._current_invitation(conn, site, now)
            if row is None:
                raise Conflict("there is no pending invitation to resend", code="not_invited")
            await self._count_send(conn, site.id, now)
            await conn.execute(
                update(invitations).where(invitations.c.id == row.id).values(
                    last_sent_at=now, expires_at=now + self._config.invitation_ttl
                )
            )
            await audit.record(
                conn, at=now, actor_id=installer.id, action=audit.AuditAction.SITE_INVITED,
                subject_id=site.id, detail={"invitation": row.id, "resent": True},
            )  # fmt: skip
            row = await self._current_invitation(conn, site, now)
            return invitation_from_row(row, site, await self._org_name(conn, site.org_id))

    async def _org_name(self, conn: AsyncConnection, org_id: str) -> str:
        orgs = schema_sites.installer_orgs
        return str((await conn.execute(select(orgs.c.name).where(orgs.c.id == org_id))).scalar())

    # --- invitee ------------------------------------------------------------------------

    def _addressed_to(self, account: Account) -> Any:
        table = schema_sites.site_invitations
        names = []
        if account.email is not None:
            names.append(and_(table.c.channel == "email", table.c.address == account.email))
        if account.phone is not None:
            names.append(and_(table.c.channel == "phone", table.c.address == account.phone))
        return or_(*names) if names else None

    async def invitations_for(self, account: Account) -> tuple[SiteInvitation, ...]:
        """Pending, unexpired invitations to your email or phone (newest first, at most 50)."""
        condition = self._addressed_to(account)
        if condition is None:
            return ()
        table, sites = schema_sites.site_invitations, schema_sites.sites
        now = self._ctx.clock()
        async with self._ctx.store.transaction() as conn:
            rows = (
                await conn.execute(
                    select(table).where(
                        and_(condition, table.c.state == PENDING, table.c.expires_at > now)
                    ).order_by(table.c.created_at.desc()).limit(50)
                )
            ).all()  # fmt: skip
            result = []
            for row in rows:
                site = (await conn.execute(select(sites).where(sites.c.id == row.site_id))).one()
                result.append(invitation_from_row(row, site, await self._org_name(conn,
                                                                                  site.org_id)))
        return tuple(result)

    async def _invitation_for(self, conn: AsyncConnection, account: Account, inv_id: str) -> Any:
        table = schema_sites.site_invitations
        condition = self._addressed_to(account)
        if condition is None or not isinstance(inv_id, str) or len(inv_id) > 32:
            raise NotFound("no such invitation")
        row = (
            await conn.execute(select(table).where(and_(table.c.id == inv_id, condition)))
        ).first()
        if row is None:
            raise NotFound("no such invitation")
        return row

    async def decline(self, account: Account, invitation_id: str) -> None:
        """Decline an invitation to you: the site goes back to Not Invited."""
        table = schema_sites.site_invitations
        now = self._ctx.clock()
        async with self._ctx.store.transaction() as conn:
            row = await self._invitation_for(conn, account, invitation_id)
            self._check_open(row, now)
            await conn.execute(
                update(table).where(and_(table.c.id == row.id, table.c.state == PENDING))
                .values(state=DECLINED, answered_at=now)
            )  # fmt: skip

    @staticmethod
    def _check_open(row: Any, now: float) -> None:
        if row.state == INVALIDATED:
            raise InvitationInvalidated
        if row.state != PENDING:
            raise InvitationClosed("this invitation was answered already")
        if row.expires_at <= now:
            raise InvitationExpired

    async def accept(self, account: Account, invitation_id: str) -> Site:
        """Accept an invitation to you: you become the owner of every device of the site.

        Raises `NotFound`, `InvitationInvalidated`, `InvitationExpired`,
        `InvitationClosed`, `CrossRegionShare`, `Forbidden` (an installer of
        the site's organisation), `Conflict` (device limit).
        """
        now = self._ctx.clock()
        sites, site_devices = schema_sites.sites, schema_sites.site_devices
        devices, shares = schema.devices, schema.shares
        events: list[RelayEvent] = []
        async with self._ctx.store.transaction() as conn:
            row = await self._invitation_for(conn, account, invitation_id)
            self._check_open(row, now)
            await self._lock_site(conn, row.site_id)
            # Re-read after the lock: a concurrent accept or invite may have won.
            row = await self._invitation_for(conn, account, invitation_id)
            self._check_open(row, now)
            site = await self._site_row(conn, row.site_id)
            if site.owner_id is not None or site.current_invitation_id != row.id:
                raise InvitationInvalidated
            members = schema_sites.installer_members
            if (
                await conn.execute(
                    select(members.c.account_id).where(
                        and_(members.c.account_id == account.id, members.c.org_id == site.org_id)
                    )
                )
            ).first() is not None:
                raise Forbidden("an installer of this site's organisation cannot take it over")
            inviter_region = (
                await conn.execute(
                    select(schema.accounts.c.region).where(schema.accounts.c.id == row.inviter_id)
                )
            ).scalar()
            if inviter_region is not None and inviter_region != account.region:
                raise CrossRegionShare
            held = await self._site_devices(conn, site)
            owned = (
                await conn.execute(
                    select(func.count()).select_from(devices)
                    .where(devices.c.owner_id == account.id)
                )
            ).scalar_one()  # fmt: skip
            if owned + len(held) > self._ctx.config.max_devices_per_account:
                raise Conflict("this account would exceed its device limit")
            moved = []
            for device in held:
                serial = device.device_serial
                claimed = await conn.execute(
                    update(devices)
                    .where(and_(devices.c.serial == serial,
                                devices.c.owner_id == device.holder_id))
                    .values(owner_id=account.id, alias=None, bound_at=now)
                )  # fmt: skip
                if not claimed.rowcount:
                    continue
                moved.append(serial)
                recipients = (
                    await conn.execute(
                        delete(shares).where(shares.c.device_serial == serial)
                        .returning(shares.c.recipient_id)
                    )
                ).scalars().all()  # fmt: skip
                epoch, version = await bump_device(conn, serial)
                revoked = (device.holder_id, *sorted(recipients))
                await record_revocations(conn, serial, revoked, epoch=epoch, now=now)
                await audit.record(
                    conn, at=now, actor_id=account.id, action=audit.AuditAction.DEVICE_BOUND,
                    device_serial=serial, subject_id=account.id,
                    detail={"site": site.id, "handover_from": device.holder_id},
                )  # fmt: skip
                events.append(DeviceBound(device_serial=serial, owner_id=account.id,
                                          share_epoch=epoch, grant_version=version))  # fmt: skip
            # Stale rows (a device the installer removed meanwhile) leave the site.
            await conn.execute(
                delete(site_devices).where(
                    and_(site_devices.c.site_id == site.id,
                         site_devices.c.device_serial.not_in(moved or [""]))
                )
            )  # fmt: skip
            request = InstallerPermissionRequest.from_json(row.request)
            await self._store_grants(
                conn, site, row.inviter_id, request, granted_by=account.id, only=set(moved),
                now=now,
            )  # fmt: skip
            await conn.execute(
                update(sites).where(sites.c.id == site.id).values(
                    owner_id=account.id, installer_id=row.inviter_id, handed_over_at=now,
                    allow_disable_service=bool(row.allow_disable_service),
                )
            )  # fmt: skip
            await conn.execute(
                update(schema_sites.site_invitations)
                .where(schema_sites.site_invitations.c.id == row.id)
                .values(state=ACCEPTED, answered_at=now, accepted_by=account.id)
            )
            await audit.record(
                conn, at=now, actor_id=account.id, action=audit.AuditAction.SITE_HANDED_OVER,
                subject_id=site.id, detail={"invitation": row.id, "devices": moved},
            )  # fmt: skip
            site = await self._site_row(conn, site.id)
            result = await self._load_site(conn, site, now)
        for event in events:
            self._ctx.events.publish(event)
        return result
