"""The installer organisation: its accounts and their roles (see `sites_base` for the rules).

An account belongs to at most one organisation.  Its creator manages all
sites; only such members add or remove members and assign sites.  A member
who is removed loses the installer permissions their account holds on the
organisation's handed-over sites.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from nvrshare.relay.errors import AccountNotFound, Conflict, Forbidden, InvalidRequest, NotFound
from nvrshare.relay.services import audit
from nvrshare.relay.services.context import bump_device, new_id, record_revocations
from nvrshare.relay.services.events import ShareChanged, ShareChangeKind
from nvrshare.relay.services.identifiers import classify, normalize
from nvrshare.relay.services.models import Account
from nvrshare.relay.services.sites_base import SiteServiceBase
from nvrshare.relay.services.sites_model import InstallerMember, InstallerOrg, InstallerRole
from nvrshare.relay.store import schema, schema_sites

__all__ = ["OrgOps", "check_text"]


def check_text(value: object, what: str, *, max_length: int, required: bool = True) -> str:
    """Printable text, stripped, 1..max_length characters (0.. when not required)."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{what} must be a string")
    text = value.strip()
    if len(text) > max_length or not text.isprintable() or (required and not text):
        raise InvalidRequest(f"{what} must be 1..{max_length} printable characters")
    return text


def _member_record(row: Any) -> InstallerMember:
    return InstallerMember(
        account_id=row.account_id, org_id=row.org_id, role=InstallerRole(row.role),
        device_management=bool(row.device_management), email=row.email, phone=row.phone,
        name=row.name,
    )  # fmt: skip


class OrgOps(SiteServiceBase):
    """Create an organisation, list it, add and remove its members."""

    # --- organisation ------------------------------------------------------------

    async def create_org(self, account: Account, name: str) -> InstallerOrg:
        """Create an installer organisation; `account` becomes its first `manage_all` member."""
        name = check_text(name, "organisation name", max_length=64)
        now = self._ctx.clock()
        org = InstallerOrg(id=new_id(), name=name, created_at=now)
        members = schema_sites.installer_members
        try:
            async with self._ctx.store.transaction() as conn:
                taken = (
                    await conn.execute(
                        select(members.c.org_id).where(members.c.account_id == account.id)
                    )
                ).first()
                if taken is not None:
                    raise Conflict("you already belong to an installer organisation")
                await conn.execute(
                    schema_sites.installer_orgs.insert().values(
                        id=org.id, name=name, created_at=now
                    )
                )
                await conn.execute(
                    members.insert().values(
                        account_id=account.id, org_id=org.id, role=InstallerRole.MANAGE_ALL.value,
                        device_management=True, created_at=now,
                    )
                )  # fmt: skip
                await audit.record(
                    conn, at=now, actor_id=account.id, subject_id=account.id,
                    action=audit.AuditAction.INSTALLER_ORG_CHANGED,
                    detail={"org": org.id, "created": name},
                )  # fmt: skip
        except IntegrityError:
            raise Conflict("you already belong to an installer organisation") from None
        return org

    async def org(self, account: Account) -> tuple[InstallerOrg, tuple[InstallerMember, ...]]:
        """Your organisation and its members."""
        orgs, members, accounts = (
            schema_sites.installer_orgs, schema_sites.installer_members, schema.accounts
        )  # fmt: skip
        async with self._ctx.store.transaction() as conn:
            me = await self._member(conn, account)
            org = (await conn.execute(select(orgs).where(orgs.c.id == me.org_id))).one()
            rows = await conn.execute(
                select(members, accounts.c.email, accounts.c.phone, accounts.c.name)
                .join(accounts, accounts.c.id == members.c.account_id)
                .where(members.c.org_id == me.org_id)
                .order_by(members.c.created_at, members.c.account_id)
            )
            listed = tuple(_member_record(r) for r in rows)
        return InstallerOrg(id=org.id, name=org.name, created_at=org.created_at), listed

    async def _admin(self, conn: Any, account: Account) -> Any:
        me = await self._member(conn, account)
        if me.role != InstallerRole.MANAGE_ALL:
            raise Forbidden("only an installer who manages all sites can do this")
        return me

    async def add_member(
        self, admin: Account, *, login: str, role: InstallerRole, device_management: bool = True
    ) -> InstallerMember:
        """Add an existing account (email, phone or account name) to your organisation."""
        try:
            role = InstallerRole(role)
        except ValueError:
            raise InvalidRequest("role must be manage_all or manage_assigned") from None
        if type(device_management) is not bool:
            raise InvalidRequest("device_management must be a boolean")
        if not isinstance(login, str):
            raise InvalidRequest("login must be a string")
        kind = classify(login)
        value = normalize(kind, login)
        now = self._ctx.clock()
        accounts, members = schema.accounts, schema_sites.installer_members
        try:
            async with self._ctx.store.transaction() as conn:
                me = await self._admin(conn, admin)
                target = (
                    await conn.execute(select(accounts).where(accounts.c[kind.value] == value))
                ).first()
                if target is None:
                    raise AccountNotFound
                if (
                    await conn.execute(
                        select(members.c.org_id).where(members.c.account_id == target.id)
                    )
                ).first() is not None:
                    raise Conflict("this account already belongs to an installer organisation")
                count = (
                    await conn.execute(
                        select(func.count()).select_from(members)
                        .where(members.c.org_id == me.org_id)
                    )
                ).scalar_one()  # fmt: skip
                if count >= self._config.max_members_per_org:
                    raise Conflict("the organisation has as many members as allowed")
                await conn.execute(
                    members.insert().values(
                        account_id=target.id, org_id=me.org_id, role=role.value,
                        device_management=device_management, created_at=now,
                    )
                )  # fmt: skip
                await audit.record(
                    conn, at=now, actor_id=admin.id, subject_id=target.id,
                    action=audit.AuditAction.INSTALLER_ORG_CHANGED,
                    detail={"org": me.org_id, "added": role.value,
                            "device_management": device_management},
                )  # fmt: skip
        except IntegrityError:
            raise Conflict("this account already belongs to an installer organisation") from None
        return InstallerMember(
            account_id=target.id, org_id=me.org_id, role=role,
            device_management=device_management, email=target.email, phone=target.phone,
            name=target.name,
        )  # fmt: skip

    async def remove_member(self, admin: Account, account_id: str) -> None:
        """Remove a member (not yourself) from your organisation.

        Installer permissions the member's account holds on the organisation's
        handed-over sites end with it (an installer who left keeps no live view).
        """
        members, sites = schema_sites.installer_members, schema_sites.sites
        grants = schema_sites.installer_grants
        now = self._ctx.clock()
        events: list[ShareChanged] = []
        if account_id == admin.id:
            raise Conflict("you cannot remove yourself from your organisation")
        async with self._ctx.store.transaction() as conn:
            me = await self._admin(conn, admin)
            result = await conn.execute(
                delete(members).where(
                    and_(members.c.account_id == account_id, members.c.org_id == me.org_id)
                )
            )
            if not result.rowcount:
                raise NotFound("no such member in your organisation")
            await conn.execute(
                delete(schema_sites.site_assignments).where(
                    schema_sites.site_assignments.c.account_id == account_id
                )
            )
            org_sites = select(sites.c.id).where(sites.c.org_id == me.org_id)
            serials = (
                await conn.execute(
                    delete(grants)
                    .where(and_(grants.c.installer_id == account_id,
                                grants.c.site_id.in_(org_sites)))
                    .returning(grants.c.device_serial)
                )
            ).scalars().all()  # fmt: skip
            await conn.execute(
                update(sites)
                .where(and_(sites.c.org_id == me.org_id, sites.c.installer_id == account_id))
                .values(installer_id=None)
            )
            for serial in sorted({s for s in serials if s is not None}):
                epoch, version = await bump_device(conn, serial)
                await record_revocations(conn, serial, [account_id], epoch=epoch, now=now)
                events.append(ShareChanged(
                    device_serial=serial, share_epoch=epoch, grant_version=version,
                    kind=ShareChangeKind.REVOKED, account_ids=(account_id,),
                    revoked=(account_id,),
                ))  # fmt: skip
            await audit.record(
                conn, at=now, actor_id=admin.id, subject_id=account_id,
                action=audit.AuditAction.INSTALLER_ORG_CHANGED,
                detail={"org": me.org_id, "removed": True, "grants_ended": len(serials)},
            )  # fmt: skip
        for event in events:
            self._ctx.events.publish(event)

