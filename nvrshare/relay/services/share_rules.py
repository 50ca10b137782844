"""Shares: the whole "Share Device" model, owner side and recipient side.

Rules, all here and nowhere else:
- Only a device's owner shares it, edits or stops its shares, sees remarks.
- A share names an existing account (email, phone, account name, account id
  from the owner's history, or a scanned account QR code) in the owner's
  region; never the owner.  Its permission matrix is non-empty and names only
  channels the device has.
- A share starts pending; the recipient accepts or rejects it, renames it
  locally, or deletes it.  Re-sharing to an account that rejected resets the
  share to pending; any other second share is refused (edit it instead).
- Every change of who may do what (create, accept, reject, permission edit,
  revoke, delete) bumps the device's share epoch and grant-set version, is
  audited in the same transaction, and is published on the event bus after
  commit.  Remarks and recipient aliases change no access: audited, no bump.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from nvrshare.protocol.permissions import ALL_PERMISSIONS, MAX_CHANNEL, Permission
from nvrshare.protocol.validation import is_valid_serial
from nvrshare.relay.errors import (
    DeviceNotFound,
    Forbidden,
    InvalidRequest,
)
from nvrshare.relay.services import audit
from nvrshare.relay.services.accounts import AccountService
from nvrshare.relay.services.context import (
    ServiceContext,
    bump_device,
    decode_matrix,
    is_valid_id,
    record_revocations,
)
from nvrshare.relay.services.events import ShareChanged, ShareChangeKind
from nvrshare.relay.services.identifiers import IdentifierKind, normalize
from nvrshare.relay.services.models import (
    Account,
    AccountRef,
    OwnerShare,
    ShareState,
)
from nvrshare.relay.store import schema

__all__ = [
    "MAX_REMARK_LENGTH",
    "RecipientKind",
    "RecipientRef",
    "ShareServiceBase",
    "check_matrix",
]

MAX_REMARK_LENGTH = 64
MAX_BATCH = 200


class RecipientKind(enum.StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    NAME = "name"
    ACCOUNT_ID = "account_id"
    QR = "qr"


@dataclass(frozen=True, kw_only=True, slots=True)
class RecipientRef:
    """How the owner names the account to share with."""

    kind: RecipientKind
    value: str


def check_matrix(matrix: Mapping[int, Permission]) -> dict[int, Permission]:
    """A non-empty channel → permissions map with something granted on every channel."""
    if not isinstance(matrix, Mapping) or not matrix:
        raise InvalidRequest("the permission matrix is empty: grant at least one permission")
    result: dict[int, Permission] = {}
    for channel, permission in matrix.items():
        if type(channel) is not int or not 1 <= channel <= MAX_CHANNEL:
            raise InvalidRequest(f"bad channel number {channel!r}")
        bits = Permission(permission)
        if bits == Permission.NONE or bits & ~ALL_PERMISSIONS:
            raise InvalidRequest(f"channel {channel} must be granted at least one permission")
        result[channel] = bits
    return result


def _check_remark(remark: object) -> str | None:
    if remark is None:
        return None
    if not isinstance(remark, str):
        raise InvalidRequest("remark must be a string or null")
    remark = remark.strip()
    if len(remark) > MAX_REMARK_LENGTH or not remark.isprintable():
        raise InvalidRequest(f"remark must be at most {MAX_REMARK_LENGTH} printable characters")
    return remark or None


def _owner_share(row: Any) -> OwnerShare:
    return OwnerShare(
        id=row.id,
        device_serial=row.device_serial,
        recipient=AccountRef(id=row.recipient_id, email=row.email, phone=row.phone, name=row.name),
        state=ShareState(row.state),
        permissions=decode_matrix(row.permissions),
        remark=row.remark,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


_UNSET: Any = object()

class ShareServiceBase:
    """What the owner-side and recipient-side operations share: lookups and revocation."""

    def __init__(self, context: ServiceContext, accounts: AccountService) -> None:
        self._ctx = context
        self._accounts = accounts

    # --- helpers -------------------------------------------------------------

    async def _owned_device(self, conn: AsyncConnection, owner: Account, serial: str) -> Any:
        devices, shares = schema.devices, schema.shares
        if not is_valid_serial(serial):
            raise DeviceNotFound("no such device on your account")
        row = (await conn.execute(select(devices).where(devices.c.serial == serial))).first()
        if row is not None and row.owner_id == owner.id:
            return row
        if row is not None:
            has_share = (
                await conn.execute(
                    select(shares.c.id).where(
                        and_(shares.c.device_serial == serial, shares.c.recipient_id == owner.id)
                    )
                )
            ).first()
            if has_share is not None:
                raise Forbidden("only the device's owner can do this")
        raise DeviceNotFound("no such device on your account")

    def _recipient_condition(self, recipient: RecipientRef) -> Any:
        table = schema.accounts
        if not isinstance(recipient, RecipientRef):
            raise InvalidRequest("recipient must name an account")
        if recipient.kind is RecipientKind.QR:
            return table.c.id == self._accounts.account_id_from_qr(recipient.value)
        if recipient.kind is RecipientKind.ACCOUNT_ID:
            if not is_valid_id(recipient.value):
                raise InvalidRequest("account_id is invalid")
            return table.c.id == recipient.value
        kind = IdentifierKind(recipient.kind.value)
        return table.c[kind.value] == normalize(kind, recipient.value)

    async def _publish_after(self, events: Iterable[ShareChanged]) -> None:
        for event in events:
            self._ctx.events.publish(event)

    async def _revoke(
        self,
        conn: AsyncConnection,
        *,
        actor: Account,
        serial: str,
        share_rows: Sequence[Any],
        kind: ShareChangeKind,
        action: audit.AuditAction,
        now: float,
    ) -> ShareChanged:
        shares = schema.shares
        ids = [r.id for r in share_rows]
        await conn.execute(delete(shares).where(shares.c.id.in_(ids)))
        recipients = tuple(sorted(r.recipient_id for r in share_rows))
        epoch, version = await bump_device(conn, serial)
        await record_revocations(conn, serial, recipients, epoch=epoch, now=now)
        for row in share_rows:
            await audit.record(
                conn, at=now, actor_id=actor.id, action=action, device_serial=serial,
                subject_id=row.recipient_id, detail={"share": row.id, "state": row.state},
            )  # fmt: skip
        return ShareChanged(
            device_serial=serial,
            share_epoch=epoch,
            grant_version=version,
            kind=kind,
            account_ids=recipients,
            revoked=recipients,
        )

