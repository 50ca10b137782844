"""What every service is built from, and the row ↔ record helpers they share."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from nvrshare.protocol.permissions import ALL_PERMISSIONS, MAX_CHANNEL, Permission
from nvrshare.relay.config import RelayConfig
from nvrshare.relay.errors import RelayError
from nvrshare.relay.services.events import EventBus
from nvrshare.relay.services.keystore import KeyStore
from nvrshare.relay.services.models import Account, AccountRef, Channel, Device
from nvrshare.relay.store import Store, schema

__all__ = [
    "Clock",
    "ServiceContext",
    "account_from_row",
    "bump_device",
    "channels_for",
    "decode_matrix",
    "encode_matrix",
    "is_valid_id",
    "load_channels",
    "load_device",
    "new_id",
    "record_revocations",
    "ref_from_row",
]

Clock = Callable[[], float]


@dataclass(frozen=True, kw_only=True, slots=True)
class ServiceContext:
    """The collaborators every service shares; `clock` is injectable so tests move time."""

    config: RelayConfig
    store: Store
    events: EventBus
    keys: KeyStore
    clock: Clock = field(default=time.time)


_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


def is_valid_id(value: object) -> bool:
    """Whether `value` can be an id `new_id` made (checked before it reaches SQL)."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def new_id() -> str:
    """A random opaque id (128 bits); never sequential, never meaningful."""
    return secrets.token_urlsafe(16)


def account_from_row(row: Any) -> Account:
    return Account(
        id=row.id,
        email=row.email,
        phone=row.phone,
        name=row.name,
        region=row.region,
        created_at=row.created_at,
    )


def ref_from_row(row: Any) -> AccountRef:
    return AccountRef(id=row.id, email=row.email, phone=row.phone, name=row.name)


def encode_matrix(matrix: Mapping[int, Permission]) -> str:
    return json.dumps({str(ch): int(p) for ch, p in sorted(matrix.items())})


def decode_matrix(text: str) -> dict[int, Permission]:
    """Decode a stored matrix; the store is ours, so anything odd is a bug (RelayError)."""
    raw = json.loads(text)
    result = {}
    for channel, bits in raw.items():
        number = int(channel)
        if not 1 <= number <= MAX_CHANNEL or not 0 < bits <= int(ALL_PERMISSIONS):
            raise RelayError("a stored permission matrix is corrupt")
        result[number] = Permission(bits)
    return result


async def load_channels(conn: AsyncConnection, serial: str) -> tuple[Channel, ...]:
    table = schema.channels
    rows = await conn.execute(
        select(table.c.number, table.c.name)
        .where(table.c.device_serial == serial)
        .order_by(table.c.number)
    )
    return tuple(Channel(number=r.number, name=r.name) for r in rows)


def device_from_row(row: Any, channels: tuple[Channel, ...]) -> Device:
    return Device(
        serial=row.serial,
        domain=row.domain,
        alias=row.alias,
        model=row.model,
        firmware_version=row.firmware_version,
        ip=row.ip,
        port=row.port,
        online=bool(row.online),
        last_seen=row.last_seen,
        channels=channels,
        owner_id=row.owner_id,
        share_epoch=row.share_epoch,
        grant_version=row.grant_version,
    )


async def load_device(conn: AsyncConnection, serial: str) -> Device | None:
    row = (
        await conn.execute(select(schema.devices).where(schema.devices.c.serial == serial))
    ).first()
    if row is None:
        return None
    return device_from_row(row, await load_channels(conn, serial))


async def bump_device(
    conn: AsyncConnection, serial: str, *, epoch: bool = True
) -> tuple[int, int]:
    """Advance a device's grant-set version (and share epoch); return (epoch, version).

    Done as one UPDATE so concurrent changes serialise on the device row and
    each gets its own number.
    """
    table = schema.devices
    values: dict[str, Any] = {"grant_version": table.c.grant_version + 1}
    if epoch:
        values["share_epoch"] = table.c.share_epoch + 1
    row = (
        await conn.execute(
            update(table)
            .where(table.c.serial == serial)
            .values(**values)
            .returning(table.c.share_epoch, table.c.grant_version)
        )
    ).one()
    return int(row.share_epoch), int(row.grant_version)


async def channels_for(
    conn: AsyncConnection, serials: list[str]
) -> dict[str, tuple[Channel, ...]]:
    if not serials:
        return {}
    table = schema.channels
    rows = await conn.execute(
        select(table)
        .where(table.c.device_serial.in_(serials))
        .order_by(table.c.device_serial, table.c.number)
    )
    result: dict[str, list[Channel]] = {}
    for row in rows:
        result.setdefault(row.device_serial, []).append(Channel(number=row.number, name=row.name))
    return {serial: tuple(chs) for serial, chs in result.items()}


async def record_revocations(
    conn: AsyncConnection, serial: str, account_ids: Sequence[str], *, epoch: int, now: float
) -> None:
    """Remember that `account_ids` lost access to `serial` at `epoch` (upsert)."""
    table = schema.revocations
    for account_id in dict.fromkeys(account_ids):
        await conn.execute(
            delete(table).where(
                and_(table.c.device_serial == serial, table.c.account_id == account_id)
            )
        )
        await conn.execute(
            table.insert().values(
                device_serial=serial, account_id=account_id, revoked_at=now, share_epoch=epoch
            )
        )
