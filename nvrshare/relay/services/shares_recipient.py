"""Recipient-side share operations: count, list, accept, reject, rename, delete."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from nvrshare.protocol.permissions import ALL_PERMISSIONS, Permission
from nvrshare.protocol.validation import is_valid_serial
from nvrshare.relay.errors import (
    Conflict,
    DeviceNotFound,
    Forbidden,
    NotFound,
)
from nvrshare.relay.services import audit
from nvrshare.relay.services.context import (
    bump_device,
    channels_for,
    decode_matrix,
    is_valid_id,
    load_device,
)
from nvrshare.relay.services.devices import check_alias
from nvrshare.relay.services.events import ShareChanged, ShareChangeKind
from nvrshare.relay.services.models import (
    Account,
    AccountRef,
    Device,
    Page,
    ReceivedShare,
    ShareState,
)
from nvrshare.relay.services.paging import check_limit, decode_cursor, encode_cursor
from nvrshare.relay.services.share_rules import (
    ShareServiceBase,
)
from nvrshare.relay.store import schema

__all__ = ["RecipientShareOps"]


class RecipientShareOps(ShareServiceBase):
    """What the account a device is shared with may do."""

    # --- recipient -----------------------------------------------------------

    async def pending_count(self, recipient: Account) -> int:
        """How many shares wait for `recipient` to accept or reject ("N new sharings")."""
        shares = schema.shares
        async with self._ctx.store.transaction(readonly=True) as conn:
            return int(
                (
                    await conn.execute(
                        select(func.count()).select_from(shares).where(
                            and_(shares.c.recipient_id == recipient.id,
                                 shares.c.state == ShareState.PENDING.value)
                        )
                    )
                ).scalar_one()
            )  # fmt: skip

    async def list_received(
        self,
        recipient: Account,
        *,
        state: ShareState | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[ReceivedShare]:
        """Shares others made to `recipient`, newest first.

        By default pending and accepted ones; `state` picks one state.
        """
        limit = check_limit(limit)
        after = decode_cursor(cursor, 2, (float, str))
        shares, devices, accounts = schema.shares, schema.devices, schema.accounts
        states = [state.value] if state is not None else [
            ShareState.PENDING.value, ShareState.ACCEPTED.value
        ]  # fmt: skip
        query = (
            select(
                shares.c.id, shares.c.device_serial, shares.c.state, shares.c.permissions,
                shares.c.recipient_alias, shares.c.created_at,
                devices.c.domain, devices.c.model, devices.c.ip, devices.c.port,
                devices.c.online, devices.c.last_seen,
                accounts.c.id.label("sharer_id"), accounts.c.email, accounts.c.phone,
                accounts.c.name,
            )
            .join(devices, devices.c.serial == shares.c.device_serial)
            .join(accounts, accounts.c.id == shares.c.owner_id)
            .where(and_(shares.c.recipient_id == recipient.id, shares.c.state.in_(states)))
        )  # fmt: skip
        if after is not None:
            at, share_id = float(after[0]), str(after[1])
            query = query.where(
                or_(
                    shares.c.created_at < at,
                    and_(shares.c.created_at == at, shares.c.id > share_id),
                )
            )
        async with self._ctx.store.transaction(readonly=True) as conn:
            newest_first = query.order_by(shares.c.created_at.desc(), shares.c.id)
            rows = (await conn.execute(newest_first.limit(limit + 1))).all()
            page = rows[:limit]
            channels = await channels_for(conn, sorted({r.device_serial for r in page}))
        items = tuple(
            ReceivedShare(
                id=r.id, device_serial=r.device_serial, domain=r.domain, model=r.model,
                ip=r.ip, port=r.port, online=bool(r.online), last_seen=r.last_seen,
                channels=channels.get(r.device_serial, ()),
                sharer=AccountRef(id=r.sharer_id, email=r.email, phone=r.phone, name=r.name),
                state=ShareState(r.state), permissions=decode_matrix(r.permissions),
                alias=r.recipient_alias, created_at=r.created_at,
            )
            for r in page
        )  # fmt: skip
        next_cursor = (
            encode_cursor([page[-1].created_at, page[-1].id]) if len(rows) > limit else None
        )
        return Page(items=items, next_cursor=next_cursor)

    async def _share_for_recipient(
        self, conn: AsyncConnection, recipient: Account, share_id: str
    ) -> Any:
        shares = schema.shares
        if not is_valid_id(share_id):
            raise NotFound("no such share")
        row = (
            await conn.execute(
                select(shares).where(
                    and_(shares.c.id == share_id, shares.c.recipient_id == recipient.id)
                )
            )
        ).first()
        if row is None:
            raise NotFound("no such share")
        return row

    async def _respond(self, recipient: Account, share_id: str, accept: bool) -> None:
        now = self._ctx.clock()
        shares = schema.shares
        new_state = ShareState.ACCEPTED if accept else ShareState.REJECTED
        async with self._ctx.store.transaction() as conn:
            row = await self._share_for_recipient(conn, recipient, share_id)
            result = await conn.execute(
                update(shares)
                .where(and_(shares.c.id == row.id, shares.c.state == ShareState.PENDING.value))
                .values(state=new_state.value, updated_at=now)
            )
            if not result.rowcount:
                raise Conflict(f"this share is {row.state}, not pending")
            epoch, version = await bump_device(conn, row.device_serial)
            await audit.record(
                conn, at=now, actor_id=recipient.id, device_serial=row.device_serial,
                action=audit.AuditAction.SHARE_ACCEPTED if accept
                else audit.AuditAction.SHARE_REJECTED,
                subject_id=recipient.id, detail={"share": row.id},
            )  # fmt: skip
        self._ctx.events.publish(
            ShareChanged(
                device_serial=row.device_serial, share_epoch=epoch, grant_version=version,
                kind=ShareChangeKind.ACCEPTED if accept else ShareChangeKind.REJECTED,
                account_ids=(recipient.id,),
            )
        )  # fmt: skip

    async def accept(self, recipient: Account, share_id: str) -> None:
        """Accept a pending share; `Conflict` if it is not pending."""
        await self._respond(recipient, share_id, accept=True)

    async def reject(self, recipient: Account, share_id: str) -> None:
        """Reject a pending share; `Conflict` if it is not pending."""
        await self._respond(recipient, share_id, accept=False)

    async def rename_received(self, recipient: Account, share_id: str, alias: str | None) -> None:
        """Set the recipient's own alias for a shared device (None clears it)."""
        alias = check_alias(alias)
        shares = schema.shares
        async with self._ctx.store.transaction() as conn:
            row = await self._share_for_recipient(conn, recipient, share_id)
            await conn.execute(
                update(shares).where(shares.c.id == row.id).values(recipient_alias=alias)
            )

    async def delete_received(self, recipient: Account, share_id: str) -> None:
        """The recipient drops a device shared with them; the owner sees the share end."""
        now = self._ctx.clock()
        async with self._ctx.store.transaction() as conn:
            row = await self._share_for_recipient(conn, recipient, share_id)
            event = await self._revoke(
                conn, actor=recipient, serial=row.device_serial, share_rows=[row],
                kind=ShareChangeKind.DELETED_BY_RECIPIENT,
                action=audit.AuditAction.SHARE_DELETED_BY_RECIPIENT, now=now,
            )  # fmt: skip
        self._ctx.events.publish(event)

    async def accepted_matrix(
        self, account: Account, serial: str
    ) -> tuple[Device, dict[int, Permission]]:
        """(device, matrix) `account` may use on `serial` now; for token issuing.

        The owner gets every permission on every channel; a recipient their
        accepted matrix.  `DeviceNotFound` for no relation, `Forbidden` for a
        share not (yet) accepted.
        """
        if not is_valid_serial(serial):
            raise DeviceNotFound("no such device")
        shares = schema.shares
        async with self._ctx.store.transaction(readonly=True) as conn:
            device = await load_device(conn, serial)
            if device is None:
                raise DeviceNotFound("no such device")
            if device.owner_id == account.id:
                if not device.channels:
                    raise Conflict("the device has not reported any channels yet")
                return device, {c.number: ALL_PERMISSIONS for c in device.channels}
            row = (
                await conn.execute(
                    select(shares.c.state, shares.c.permissions).where(
                        and_(shares.c.device_serial == serial,
                             shares.c.recipient_id == account.id)
                    )
                )
            ).first()  # fmt: skip
        if row is None:
            raise DeviceNotFound("no such device")
        if row.state != ShareState.ACCEPTED.value:
            raise Forbidden("accept the share before using the device")
        return device, decode_matrix(row.permissions)

