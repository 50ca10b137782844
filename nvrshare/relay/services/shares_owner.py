"""Owner-side share operations: share, list, edit, stop sharing, history (see `share_rules`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from nvrshare.protocol.permissions import Permission
from nvrshare.relay.errors import (
    AccountNotFound,
    Conflict,
    CrossRegionShare,
    Forbidden,
    InvalidRequest,
    NotFound,
    SelfShare,
    ShareExists,
)
from nvrshare.relay.services import audit
from nvrshare.relay.services.context import (
    bump_device,
    channels_for,
    device_from_row,
    encode_matrix,
    is_valid_id,
    new_id,
    ref_from_row,
)
from nvrshare.relay.services.events import ShareChanged, ShareChangeKind
from nvrshare.relay.services.models import (
    Account,
    DeviceShares,
    HistoryEntry,
    OwnerShare,
    Page,
    ShareState,
)
from nvrshare.relay.services.paging import check_limit, decode_cursor, encode_cursor
from nvrshare.relay.services.share_rules import (
    _UNSET,
    MAX_BATCH,
    RecipientRef,
    ShareServiceBase,
    _check_remark,
    _owner_share,
    check_matrix,
)
from nvrshare.relay.store import schema

__all__ = ["OwnerShareOps"]


class OwnerShareOps(ShareServiceBase):
    """What only a device's owner may do with its shares."""

    # --- owner ---------------------------------------------------------------

    async def create(
        self,
        owner: Account,
        *,
        serial: str,
        recipient: RecipientRef,
        permissions: Mapping[int, Permission],
        remark: str | None = None,
    ) -> OwnerShare:
        """Share `serial` with `recipient`: the result is the new (pending) share.

        Raises `AccountNotFound` (the account doesn't exist), `StoreUnavailable`
        (network busy: nothing was written), `CrossRegionShare`, `SelfShare`,
        `ShareExists`, `DeviceNotFound`/`Forbidden` (not the owner),
        `InvalidRequest` (bad matrix, unknown channel, bad remark).
        """
        matrix = check_matrix(permissions)
        remark = _check_remark(remark)
        condition = self._recipient_condition(recipient)
        now = self._ctx.clock()
        accounts, shares, history = schema.accounts, schema.shares, schema.share_history
        try:
            async with self._ctx.store.transaction() as conn:
                await self._owned_device(conn, owner, serial)
                known = {c.number for c in (await channels_for(conn, [serial])).get(serial, ())}
                unknown = sorted(set(matrix) - known)
                if unknown:
                    raise InvalidRequest(f"the device has no channel {unknown[0]}")
                target = (await conn.execute(select(accounts).where(condition))).first()
                if target is None:
                    raise AccountNotFound
                if target.id == owner.id:
                    raise SelfShare
                if target.region != owner.region:
                    raise CrossRegionShare
                existing = (
                    await conn.execute(
                        select(shares).where(
                            and_(shares.c.device_serial == serial,
                                 shares.c.recipient_id == target.id)
                        )
                    )
                ).first()  # fmt: skip
                if existing is not None and existing.state != ShareState.REJECTED:
                    raise ShareExists("the device is already shared with this account: edit it")
                count = (
                    await conn.execute(
                        select(func.count()).select_from(shares)
                        .where(shares.c.device_serial == serial)
                    )
                ).scalar_one()  # fmt: skip
                if existing is None and count >= self._ctx.config.max_shares_per_device:
                    raise Conflict("this device is shared with as many accounts as allowed")
                values = {
                    "state": ShareState.PENDING.value,
                    "permissions": encode_matrix(matrix),
                    "remark": remark,
                    "updated_at": now,
                }
                if existing is None:
                    share_id = new_id()
                    await conn.execute(
                        shares.insert().values(
                            id=share_id, device_serial=serial, owner_id=owner.id,
                            recipient_id=target.id, created_at=now, recipient_alias=None,
                            **values,
                        )
                    )  # fmt: skip
                else:
                    share_id = existing.id
                    await conn.execute(
                        update(shares).where(shares.c.id == share_id)
                        .values(created_at=now, **values)
                    )  # fmt: skip
                await conn.execute(
                    delete(history).where(
                        and_(history.c.owner_id == owner.id, history.c.recipient_id == target.id)
                    )
                )
                await conn.execute(
                    history.insert().values(
                        owner_id=owner.id, recipient_id=target.id, last_shared_at=now
                    )
                )
                epoch, version = await bump_device(conn, serial)
                await audit.record(
                    conn, at=now, actor_id=owner.id, action=audit.AuditAction.SHARE_CREATED,
                    device_serial=serial, subject_id=target.id,
                    detail={"share": share_id, "permissions": encode_matrix(matrix)},
                )  # fmt: skip
                row = await self._owner_share_row(conn, share_id)
        except IntegrityError:
            # A concurrent share to the same account won the unique constraint.
            raise ShareExists("the device is already shared with this account") from None
        self._ctx.events.publish(
            ShareChanged(
                device_serial=serial, share_epoch=epoch, grant_version=version,
                kind=ShareChangeKind.CREATED, account_ids=(target.id,),
            )
        )  # fmt: skip
        return _owner_share(row)

    async def _owner_share_row(self, conn: AsyncConnection, share_id: str) -> Any:
        shares, accounts = schema.shares, schema.accounts
        return (
            await conn.execute(
                select(
                    shares,
                    accounts.c.email, accounts.c.phone, accounts.c.name,
                )
                .join(accounts, accounts.c.id == shares.c.recipient_id)
                .where(shares.c.id == share_id)
            )
        ).one()  # fmt: skip

    async def _shares_of(self, conn: AsyncConnection, serials: list[str]) -> list[Any]:
        shares, accounts = schema.shares, schema.accounts
        if not serials:
            return []
        return list(
            await conn.execute(
                select(shares, accounts.c.email, accounts.c.phone, accounts.c.name)
                .join(accounts, accounts.c.id == shares.c.recipient_id)
                .where(shares.c.device_serial.in_(serials))
                .order_by(shares.c.device_serial, shares.c.created_at, shares.c.id)
            )
        )

    async def list_for_owner(
        self, owner: Account, *, limit: int = 50, cursor: str | None = None
    ) -> Page[DeviceShares]:
        """"My shared devices": each owned device with at least one share, and its shares."""
        limit = check_limit(limit)
        after = decode_cursor(cursor, 1, (str,))
        devices, shares = schema.devices, schema.shares
        query = select(devices).where(
            and_(
                devices.c.owner_id == owner.id,
                exists().where(shares.c.device_serial == devices.c.serial),
            )
        )
        if after is not None:
            query = query.where(devices.c.serial > str(after[0]))
        async with self._ctx.store.transaction(readonly=True) as conn:
            rows = (await conn.execute(query.order_by(devices.c.serial).limit(limit + 1))).all()
            page = rows[:limit]
            serials = [r.serial for r in page]
            channels = await channels_for(conn, serials)
            share_rows = await self._shares_of(conn, serials)
        by_device: dict[str, list[OwnerShare]] = {}
        for row in share_rows:
            by_device.setdefault(row.device_serial, []).append(_owner_share(row))
        items = tuple(
            DeviceShares(
                device=device_from_row(r, channels.get(r.serial, ())),
                shares=tuple(by_device.get(r.serial, ())),
            )
            for r in page
        )
        next_cursor = encode_cursor([page[-1].serial]) if len(rows) > limit else None
        return Page(items=items, next_cursor=next_cursor)

    async def device_shares(self, owner: Account, serial: str) -> DeviceShares:
        """One owned device and every account it is shared with."""
        async with self._ctx.store.transaction(readonly=True) as conn:
            row = await self._owned_device(conn, owner, serial)
            channels = await channels_for(conn, [serial])
            share_rows = await self._shares_of(conn, [serial])
        return DeviceShares(
            device=device_from_row(row, channels.get(serial, ())),
            shares=tuple(_owner_share(r) for r in share_rows),
        )

    async def _share_for_owner(self, conn: AsyncConnection, owner: Account, share_id: str) -> Any:
        shares = schema.shares
        row = (
            await conn.execute(select(shares).where(shares.c.id == share_id))
        ).first() if is_valid_id(share_id) else None  # fmt: skip
        if row is not None and row.owner_id == owner.id:
            return row
        if row is not None and row.recipient_id == owner.id:
            raise Forbidden("only the device's owner can change this share")
        raise NotFound("no such share")

    async def update(
        self,
        owner: Account,
        share_id: str,
        *,
        permissions: Mapping[int, Permission] | None = None,
        remark: str | None = _UNSET,
    ) -> OwnerShare:
        """Edit a share's permissions and/or remark (owner only)."""
        matrix = check_matrix(permissions) if permissions is not None else None
        remark_given = remark is not _UNSET
        remark = _check_remark(remark) if remark_given else None
        if matrix is None and not remark_given:
            raise InvalidRequest("nothing to change: give permissions and/or remark")
        now = self._ctx.clock()
        shares = schema.shares
        event = None
        async with self._ctx.store.transaction() as conn:
            row = await self._share_for_owner(conn, owner, share_id)
            values: dict[str, Any] = {"updated_at": now}
            if remark_given:
                values["remark"] = remark
            if matrix is not None:
                known = {c.number for c in (await channels_for(conn, [row.device_serial]))
                         .get(row.device_serial, ())}  # fmt: skip
                unknown = sorted(set(matrix) - known)
                if unknown:
                    raise InvalidRequest(f"the device has no channel {unknown[0]}")
                values["permissions"] = encode_matrix(matrix)
            await conn.execute(update(shares).where(shares.c.id == row.id).values(**values))
            if matrix is not None:
                epoch, version = await bump_device(conn, row.device_serial)
                event = ShareChanged(
                    device_serial=row.device_serial, share_epoch=epoch, grant_version=version,
                    kind=ShareChangeKind.UPDATED, account_ids=(row.recipient_id,),
                )  # fmt: skip
            await audit.record(
                conn, at=now, actor_id=owner.id, action=audit.AuditAction.SHARE_UPDATED,
                device_serial=row.device_serial, subject_id=row.recipient_id,
                detail={"share": row.id, "permissions": values.get("permissions"),
                        "remark_changed": remark_given},
            )  # fmt: skip
            result = await self._owner_share_row(conn, row.id)
        if event is not None:
            self._ctx.events.publish(event)
        return _owner_share(result)

    async def revoke(self, owner: Account, share_id: str) -> None:
        """Stop sharing: the recipient loses access at once (owner only)."""
        now = self._ctx.clock()
        async with self._ctx.store.transaction() as conn:
            row = await self._share_for_owner(conn, owner, share_id)
            event = await self._revoke(
                conn, actor=owner, serial=row.device_serial, share_rows=[row],
                kind=ShareChangeKind.REVOKED, action=audit.AuditAction.SHARE_REVOKED, now=now,
            )  # fmt: skip
        self._ctx.events.publish(event)

    async def revoke_accounts(
        self, owner: Account, serial: str, account_ids: Sequence[str] | None
    ) -> int:
        """Stop sharing `serial` with several accounts (None: with everyone).

        All or nothing: an id the device is not shared with → `NotFound`, no change.
        Returns how many shares ended.
        """
        if account_ids is not None and (
            not isinstance(account_ids, list | tuple)
            or not 0 < len(account_ids) <= MAX_BATCH
            or not all(is_valid_id(a) for a in account_ids)
        ):
            raise InvalidRequest(f"account_ids must list 1..{MAX_BATCH} account ids")
        now = self._ctx.clock()
        shares = schema.shares
        async with self._ctx.store.transaction() as conn:
            await self._owned_device(conn, owner, serial)
            query = select(shares).where(shares.c.device_serial == serial)
            if account_ids is not None:
                query = query.where(shares.c.recipient_id.in_(set(account_ids)))
            rows = (await conn.execute(query)).all()
            if account_ids is not None and len(rows) != len(set(account_ids)):
                raise NotFound("the device is not shared with some of these accounts")
            if not rows:
                return 0
            event = await self._revoke(
                conn, actor=owner, serial=serial, share_rows=rows,
                kind=ShareChangeKind.REVOKED, action=audit.AuditAction.SHARE_REVOKED, now=now,
            )  # fmt: skip
        self._ctx.events.publish(event)
        return len(rows)

    async def history(
        self, owner: Account, *, limit: int = 50, cursor: str | None = None
    ) -> Page[HistoryEntry]:
        """Accounts `owner` has shared with before, most recent first (for quick re-share)."""
        limit = check_limit(limit)
        after = decode_cursor(cursor, 2, (float, str))
        history, accounts = schema.share_history, schema.accounts
        query = (
            select(history.c.last_shared_at, accounts)
            .join(accounts, accounts.c.id == history.c.recipient_id)
            .where(history.c.owner_id == owner.id)
        )
        if after is not None:
            at, account_id = float(after[0]), str(after[1])
            query = query.where(
                or_(
                    history.c.last_shared_at < at,
                    and_(history.c.last_shared_at == at, history.c.recipient_id > account_id),
                )
            )
        query = query.order_by(history.c.last_shared_at.desc(), history.c.recipient_id)
        async with self._ctx.store.transaction(readonly=True) as conn:
            rows = (await conn.execute(query.limit(limit + 1))).all()
        page = rows[:limit]
        items = tuple(
            HistoryEntry(account=ref_from_row(r), last_shared_at=r.last_shared_at) for r in page
        )
        next_cursor = (
            encode_cursor([page[-1].last_shared_at, page[-1].id]) if len(rows) > limit else None
        )
        return Page(items=items, next_cursor=next_cursor)

    async def delete_recipient(self, owner: Account, recipient_id: str) -> int:
        """End every share from `owner` to `recipient_id` and forget them in the history.

        Raises `NotFound` if there was nothing to delete.  Returns shares ended.
        """
        if not is_valid_id(recipient_id):
            raise InvalidRequest("account id is invalid")
        now = self._ctx.clock()
        shares, history = schema.shares, schema.share_history
        events = []
        async with self._ctx.store.transaction() as conn:
            rows = (
                await conn.execute(
                    select(shares).where(
                        and_(shares.c.owner_id == owner.id, shares.c.recipient_id == recipient_id)
                    ).order_by(shares.c.device_serial)
                )
            ).all()  # fmt: skip
            forgotten = await conn.execute(
                delete(history).where(
                    and_(history.c.owner_id == owner.id, history.c.recipient_id == recipient_id)
                )
            )
            if not rows and not forgotten.rowcount:
                raise NotFound("you have no sharing information with this account")
            for row in rows:
                events.append(
                    await self._revoke(
                        conn, actor=owner, serial=row.device_serial, share_rows=[row],
                        kind=ShareChangeKind.REVOKED, action=audit.AuditAction.SHARE_REVOKED,
                        now=now,
                    )
                )  # fmt: skip
            await audit.record(
                conn, at=now, actor_id=owner.id, action=audit.AuditAction.RECIPIENT_DELETED,
                subject_id=recipient_id, detail={"shares": len(rows)},
            )  # fmt: skip
        await self._publish_after(events)
        return len(rows)

