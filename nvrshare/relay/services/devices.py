"""Devices: registration data from the registry, binding to an owner, rename, remove.

A device row exists from its first registration, unbound.  An owner binds it
with the serial and the verification code the recorder holds; the code is
compared against the scrypt hash the registry stored (`secrets_hash`), failed
attempts are limited per device, account and source address (`ratelimit`,
counted in the store so every relay process shares one limit: the 6-character
code cannot be guessed N times faster on N processes), and the bind itself is one
conditional UPDATE (`owner_id IS NULL`), so of two concurrent binds exactly one
wins.  A wrong code and an unknown serial get the same answer: only someone
holding the right code learns that a device is already bound.

The registry and provisioning call `apply_registration(s)`, `set_presence` and
`grant_set(s)_for` (in `devices_registry`); the API calls the rest.
"""

from __future__ import annotations

import secrets

from sqlalchemy import and_, delete, func, select, update

from nvrshare.protocol.validation import is_valid_serial
from nvrshare.relay.errors import (
    Conflict,
    DeviceAlreadyBound,
    DeviceNotFound,
    Forbidden,
    InvalidRequest,
)
from nvrshare.relay.services import audit
from nvrshare.relay.services.context import (
    ServiceContext,
    bump_device,
    channels_for,
    device_from_row,
    load_device,
    record_revocations,
)
from nvrshare.relay.services.devices_registry import (
    GrantSetData,
    RegistrationOutcome,
    RegistrationRefusal,
    RegistryDeviceOps,
)
from nvrshare.relay.services.events import DeviceBound, DeviceRemoved
from nvrshare.relay.services.models import Account, Device, Page
from nvrshare.relay.services.paging import check_limit, decode_cursor, encode_cursor
from nvrshare.relay.services.ratelimit import (
    LimitCheck,
    SharedLimiter,
    begin_attempt,
    forgive_attempt,
)
from nvrshare.relay.services.secrets_hash import (
    MAX_SECRET_LENGTH,
    hash_secret,
    verify_secret_async,
)
from nvrshare.relay.store import schema

__all__ = [
    "MAX_ALIAS_LENGTH",
    "DeviceService",
    "GrantSetData",
    "RegistrationOutcome",
    "RegistrationRefusal",
    "check_alias",
]

MAX_ALIAS_LENGTH = 64


def check_alias(alias: object) -> str | None:
    """A display alias: None to clear, else 1..64 printable characters."""
    if alias is None:
        return None
    if not isinstance(alias, str):
        raise InvalidRequest("alias must be a string or null")
    alias = alias.strip()
    if not 0 < len(alias) <= MAX_ALIAS_LENGTH or not alias.isprintable():
        raise InvalidRequest(f"alias must be 1..{MAX_ALIAS_LENGTH} printable characters")
    return alias


class DeviceService(RegistryDeviceOps):
    """Device records, binding and the grant data the registry publishes."""

    def __init__(self, context: ServiceContext) -> None:
        self._ctx = context
        config = context.config
        # Stored keys: bind:dev:<serial>, bind:acct:<id>, bind:src:<address>.
        self._per_device = SharedLimiter(
            scope="bind", limit=config.bind_failures_per_device, window=config.bind_window
        )
        self._per_account = SharedLimiter(
            scope="bind", limit=config.bind_failures_per_account, window=config.bind_window
        )
        self._per_source = SharedLimiter(
            scope="bind", limit=config.bind_failures_per_source, window=config.bind_window
        )
        self._decoy_hash = hash_secret(secrets.token_urlsafe(8), config.scrypt)

    # --- called for owners -------------------------------------------------------

    async def bind(
        self, account: Account, *, serial: str, verification_code: str, source: str
    ) -> Device:
        """Add a device to `account` by serial + verification code.

        Raises `Forbidden` (code `verification_failed`: unknown serial or wrong
        code), `RateLimited` (too many failures for this device, account or
        source address), `DeviceAlreadyBound` (bound to this or another
        account), `Conflict` (too many devices).
        """
        now = self._ctx.clock()
        if not isinstance(serial, str) or not isinstance(verification_code, str):
            raise InvalidRequest("serial and verification_code must be strings")
        device_key, account_key = f"dev:{serial[:64]}", f"acct:{account.id}"
        source_key = f"src:{source[:64]}"
        devices = schema.devices
        code_hash = None
        device_check = LimitCheck(
            limiter=self._per_device, key=device_key, what="verification attempts for this device"
        )
        async with self._ctx.store.transaction() as conn:
            # Counted before the code is checked: racing guesses cannot pass together.
            attempt = await begin_attempt(
                conn,
                [
                    device_check,
                    LimitCheck(limiter=self._per_account, key=account_key,
                               what="verification attempts"),
                    LimitCheck(limiter=self._per_source, key=source_key,
                               what="verification attempts from here"),
                ],
                now=now,
            )  # fmt: skip
            if is_valid_serial(serial) and 0 < len(verification_code) <= MAX_SECRET_LENGTH:
                code_hash = (
                    await conn.execute(
                        select(devices.c.verification_code_hash).where(devices.c.serial == serial)
                    )
                ).scalar()
        ok = await verify_secret_async(
            verification_code[:MAX_SECRET_LENGTH], code_hash or self._decoy_hash
        )
        if not ok or code_hash is None:
            raise Forbidden(  # the attempt stays counted
                "the serial number or the verification code is wrong",
                code="verification_failed",
            )
        # The right code: whatever happens next (already bound, device limit) is no guess.
        async with self._ctx.store.transaction() as conn:
            await forgive_attempt(conn, attempt, reset=[device_check])
        async with self._ctx.store.transaction() as conn:
            owned = (
                await conn.execute(
                    select(func.count())
                    .select_from(devices)
                    .where(devices.c.owner_id == account.id)
                )
            ).scalar_one()
            if owned >= self._ctx.config.max_devices_per_account:
                raise Conflict("this account has reached its device limit")
            claimed = await conn.execute(
                update(devices)
                .where(and_(devices.c.serial == serial, devices.c.owner_id.is_(None)))
                .values(owner_id=account.id, bound_at=now, alias=None)
            )
            if not claimed.rowcount:
                owner = (
                    await conn.execute(select(devices.c.owner_id).where(devices.c.serial == serial))
                ).scalar()
                if owner == account.id:
                    raise DeviceAlreadyBound("this device is already added to your account")
                raise DeviceAlreadyBound("this device is already added to another account")
            epoch, version = await bump_device(conn, serial)
            await audit.record(
                conn, at=now, actor_id=account.id, action=audit.AuditAction.DEVICE_BOUND,
                device_serial=serial, subject_id=account.id,
            )  # fmt: skip
            device = await load_device(conn, serial)
        assert device is not None
        self._ctx.events.publish(
            DeviceBound(
                device_serial=serial, owner_id=account.id, share_epoch=epoch, grant_version=version
            )
        )
        return device

    async def list_owned(
        self, account: Account, *, limit: int = 50, cursor: str | None = None
    ) -> Page[Device]:
        """The devices `account` owns, by serial."""
        limit = check_limit(limit)
        after = decode_cursor(cursor, 1, (str,))
        devices = schema.devices
        query = select(devices).where(devices.c.owner_id == account.id)
        if after is not None:
            query = query.where(devices.c.serial > str(after[0]))
        async with self._ctx.store.transaction(readonly=True) as conn:
            rows = (await conn.execute(query.order_by(devices.c.serial).limit(limit + 1))).all()
            page = rows[:limit]
            channels = await channels_for(conn, [r.serial for r in page])
        items = tuple(device_from_row(r, channels.get(r.serial, ())) for r in page)
        next_cursor = encode_cursor([page[-1].serial]) if len(rows) > limit else None
        return Page(items=items, next_cursor=next_cursor)

    async def get_owned(self, account: Account, serial: str) -> Device:
        """One device `account` owns; `DeviceNotFound` for any other (no existence leak)."""
        async with self._ctx.store.transaction(readonly=True) as conn:
            device = await load_device(conn, serial) if is_valid_serial(serial) else None
        if device is None or device.owner_id != account.id:
            raise DeviceNotFound("no such device on your account")
        return device

    async def audit_trail(
        self, account: Account, serial: str, *, limit: int = 50, cursor: str | None = None
    ) -> Page[audit.AuditEntry]:
        """What happened to a device since `account` added it, newest first (owner only).

        Entries from before the current owner bound the device (a previous
        owner's shares) are not shown.
        """
        limit = check_limit(limit)
        after = decode_cursor(cursor, 1, (int,))
        devices = schema.devices
        async with self._ctx.store.transaction(readonly=True) as conn:
            row = (
                await conn.execute(
                    select(devices.c.owner_id, devices.c.bound_at).where(
                        devices.c.serial == serial
                    )
                )
            ).first() if is_valid_serial(serial) else None  # fmt: skip
            if row is None or row.owner_id != account.id:
                raise DeviceNotFound("no such device on your account")
            before = int(after[0]) if after is not None else None
            if before is not None and not 0 < before < 2**31:
                raise InvalidRequest("cursor is invalid")
            entries, next_id = await audit.page_for_device(
                conn, serial, since=row.bound_at or 0.0, limit=limit, before_id=before
            )
        next_cursor = encode_cursor([next_id]) if next_id is not None else None
        return Page(items=tuple(entries), next_cursor=next_cursor)

    async def rename(self, account: Account, serial: str, alias: str | None) -> Device:
        """Set (or clear, with None) the owner's alias for a device."""
        alias = check_alias(alias)
        if not is_valid_serial(serial):
            raise DeviceNotFound("no such device on your account")
        devices = schema.devices
        now = self._ctx.clock()
        async with self._ctx.store.transaction() as conn:
            result = await conn.execute(
                update(devices)
                .where(and_(devices.c.serial == serial, devices.c.owner_id == account.id))
                .values(alias=alias)
            )
            if not result.rowcount:
                raise DeviceNotFound("no such device on your account")
            await audit.record(
                conn, at=now, actor_id=account.id, action=audit.AuditAction.DEVICE_RENAMED,
                device_serial=serial, detail={"alias": alias},
            )  # fmt: skip
            device = await load_device(conn, serial)
        assert device is not None
        return device

    async def remove(self, account: Account, serial: str) -> None:
        """Unbind a device from its owner: every share of it ends, every token dies."""
        if not is_valid_serial(serial):
            raise DeviceNotFound("no such device on your account")
        devices, shares = schema.devices, schema.shares
        now = self._ctx.clock()
        async with self._ctx.store.transaction() as conn:
            result = await conn.execute(
                update(devices)
                .where(and_(devices.c.serial == serial, devices.c.owner_id == account.id))
                .values(owner_id=None, alias=None, bound_at=None)
            )
            if not result.rowcount:
                raise DeviceNotFound("no such device on your account")
            recipients = (
                await conn.execute(
                    delete(shares).where(shares.c.device_serial == serial)
                    .returning(shares.c.recipient_id)
                )
            ).scalars().all()  # fmt: skip
            epoch, version = await bump_device(conn, serial)
            revoked = (account.id, *sorted(recipients))
            await record_revocations(conn, serial, revoked, epoch=epoch, now=now)
            await audit.record(
                conn, at=now, actor_id=account.id, action=audit.AuditAction.DEVICE_REMOVED,
                device_serial=serial, detail={"revoked": list(revoked)},
            )  # fmt: skip
        self._ctx.events.publish(
            DeviceRemoved(
                device_serial=serial, share_epoch=epoch, grant_version=version, revoked=revoked
            )
        )
