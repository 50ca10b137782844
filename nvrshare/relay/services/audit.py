"""The audit log: who did what to which device or account, and when.

Entries are written inside the same transaction as the change they describe,
so there is never a change without its entry (nor an entry for a change that
was rolled back).  The log is append-only and keeps no foreign keys, so it
outlives the accounts and devices it names.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from nvrshare.relay.store import schema

__all__ = ["AuditAction", "AuditEntry", "entries_for_device", "page_for_device", "record"]


class AuditAction(enum.StrEnum):
    ACCOUNT_REGISTERED = "account.registered"
    DEVICE_REGISTERED = "device.registered"
    DEVICE_REGISTRATION_REFUSED = "device.registration_refused"
    DEVICE_KEY_MISMATCH = "alert.device_key_mismatch"
    DEVICE_BOUND = "device.bound"
    DEVICE_BIND_FAILED = "device.bind_failed"
    DEVICE_RENAMED = "device.renamed"
    DEVICE_REMOVED = "device.removed"
    SHARE_CREATED = "share.created"
    SHARE_ACCEPTED = "share.accepted"
    SHARE_REJECTED = "share.rejected"
    SHARE_UPDATED = "share.updated"
    SHARE_REVOKED = "share.revoked"
    SHARE_DELETED_BY_RECIPIENT = "share.deleted_by_recipient"
    RECIPIENT_DELETED = "recipient.deleted"
    # installer sites (nvrshare.relay.services.sites)
    INSTALLER_ORG_CHANGED = "installer.org_changed"
    INSTALLER_GRANTED = "installer.granted"
    INSTALLER_REVOKED = "installer.revoked"
    SITE_CHANGED = "site.changed"
    SITE_DEVICE_ADDED = "site.device_added"
    SITE_DEVICE_REMOVED = "site.device_removed"
    SITE_INVITED = "site.invited"
    SITE_HANDED_OVER = "site.handed_over"
    SITE_SERVICE_SWITCHED = "site.service_switched"


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditEntry:
    at: float
    actor_id: str | None
    action: AuditAction
    device_serial: str | None
    subject_id: str | None
    detail: dict[str, Any]


async def record(
    conn: AsyncConnection,
    *,
    at: float,
    actor_id: str | None,
    action: AuditAction,
    device_serial: str | None = None,
    subject_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one entry inside the caller's transaction."""
    await conn.execute(
        schema.audit_log.insert().values(
            at=at,
            actor_id=actor_id,
            action=action.value,
            device_serial=device_serial,
            subject_id=subject_id,
            detail=json.dumps(detail or {}, sort_keys=True, separators=(",", ":")),
        )
    )


async def entries_for_device(
    conn: AsyncConnection, device_serial: str, *, limit: int = 200
) -> list[AuditEntry]:
    """The newest `limit` entries about one device, oldest first."""
    table = schema.audit_log
    rows = (
        await conn.execute(
            select(table)
            .where(table.c.device_serial == device_serial)
            .order_by(table.c.id.desc())
            .limit(limit)
        )
    ).all()
    return [
        AuditEntry(
            at=row.at,
            actor_id=row.actor_id,
            action=AuditAction(row.action),
            device_serial=row.device_serial,
            subject_id=row.subject_id,
            detail=json.loads(row.detail),
        )
        for row in reversed(rows)
    ]


async def page_for_device(
    conn: AsyncConnection,
    device_serial: str,
    *,
    since: float,
    limit: int,
    before_id: int | None = None,
) -> tuple[list[AuditEntry], int | None]:
    """Entries about one device at or after `since`, newest first.

    Returns (entries, the id to continue before, or None on the last page).
    """
    table = schema.audit_log
    query = select(table).where(table.c.device_serial == device_serial, table.c.at >= since)
    if before_id is not None:
        query = query.where(table.c.id < before_id)
    rows = (await conn.execute(query.order_by(table.c.id.desc()).limit(limit + 1))).all()
    page = rows[:limit]
    entries = [
        AuditEntry(
            at=row.at,
            actor_id=row.actor_id,
            action=AuditAction(row.action),
            device_serial=row.device_serial,
            subject_id=row.subject_id,
            detail=json.loads(row.detail),
        )
        for row in page
    ]
    return entries, (page[-1].id if len(rows) > limit else None)
