"""Device data from the registry: registration, presence, and grant-set data.

Part of `DeviceService` (see `devices` for the whole story).

The first registration creates the device row (unbound) and pins the
device's public key; later ones refresh what the device reports.  Every
refusal is an outcome, never an exception: the registry turns it into a
`RegistrationResult` for the device.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, bindparam, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from nvrshare.protocol.permissions import ALL_PERMISSIONS, MAX_CHANNEL, Permission
from nvrshare.protocol.validation import is_valid_domain, is_valid_serial
from nvrshare.relay.errors import (
    InvalidRequest,
)
from nvrshare.relay.services import audit
from nvrshare.relay.services.context import (
    ServiceContext,
    bump_device,
    decode_matrix,
    device_from_row,
    load_channels,
    load_device,
)
from nvrshare.relay.services.events import DeviceRegistered
from nvrshare.relay.services.models import Channel, Device, ShareState
from nvrshare.relay.services.secrets_hash import (
    is_valid_hash,
)
from nvrshare.relay.services.sites_access import InstallerAccess, installer_access
from nvrshare.relay.store import schema

__all__ = [
    "GrantSetData",
    "RegistrationOutcome",
    "RegistrationRefusal",
    "RegistryDeviceOps",
]

MAX_TEXT = 64


class RegistrationRefusal(enum.StrEnum):
    INVALID = "invalid"
    KEY_MISMATCH = "key_mismatch"
    DOMAIN_TAKEN = "domain_taken"


@dataclass(frozen=True, kw_only=True, slots=True)
class RegistrationOutcome:
    """What `apply_registration` decided; `reason` and `message` are set when refused."""

    accepted: bool
    reason: RegistrationRefusal | None = None
    message: str = ""
    bound: bool = False
    grant_version: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class GrantSetData:
    """Everything a grant set for one device is built from.

    `accounts` maps account id → channel matrix: the owner's covers every
    channel with every permission, recipients carry their accepted matrix.
    `revoked` lists (account id, share epoch at revocation) for accounts that
    lost access within the last two token lifetimes: tokens issued before then
    have expired anyway.
    """

    device_serial: str
    version: int
    share_epoch: int
    owner_id: str | None
    accounts: Mapping[str, Mapping[int, Permission]]
    revoked: tuple[tuple[str, int], ...] = field(default=())
    # Installer sites (`sites_access`): the cloud-service switch, and
    # account id -> (valid_from, valid_until) for grants with a validity period.
    service_enabled: bool = True
    validity: Mapping[str, tuple[int, int]] = field(default_factory=dict)


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT or not value.isprintable():
        raise InvalidRequest(f"{what} must be at most {MAX_TEXT} printable characters")
    return value


def _channels(channels: Sequence[tuple[int, str]]) -> dict[int, str]:
    if not isinstance(channels, list | tuple) or len(channels) > MAX_CHANNEL:
        raise InvalidRequest(f"at most {MAX_CHANNEL} channels")
    result: dict[int, str] = {}
    for entry in channels:
        if not isinstance(entry, list | tuple) or len(entry) != 2:
            raise InvalidRequest("a channel is (number, name)")
        number, name = entry
        if type(number) is not int or not 1 <= number <= MAX_CHANNEL or number in result:
            raise InvalidRequest(f"bad or repeated channel number {number!r}")
        result[number] = _text(name, "channel name")
    return result


@dataclass(frozen=True, kw_only=True, slots=True)
class _Report:
    """A registration that passed validation: what the device says, normalised."""

    serial: str
    domain: str | None
    fields: dict[str, object]
    public_key: bytes
    code_hash: str | None
    channel_names: dict[int, str]
    now: float


def _report(
    *,
    serial: str,
    domain: str | None,
    model: str,
    firmware_version: str,
    channels: Sequence[tuple[int, str]],
    ip: str,
    port: int,
    public_key: bytes,
    verification_code_hash: str | None = None,
    now: float,
) -> _Report | RegistrationOutcome:
    """The validated registration, or the `INVALID` refusal saying why not."""
    try:
        if not is_valid_serial(serial):
            raise InvalidRequest("invalid serial")
        if domain is not None and not is_valid_domain(domain):
            raise InvalidRequest("invalid domain")
        fields = {
            "model": _text(model, "model"),
            "firmware_version": _text(firmware_version, "firmware version"),
            "ip": str(ipaddress.ip_address(ip)) if ip else "",
            "port": port,
        }
        if type(port) is not int or not 0 <= port <= 65535:
            raise InvalidRequest("port must be in 0..65535")
        if not isinstance(public_key, bytes) or len(public_key) != 32:
            raise InvalidRequest("public key must be 32 bytes")
        if verification_code_hash is not None and not is_valid_hash(verification_code_hash):
            raise InvalidRequest("verification code hash is not a scrypt hash")
        channel_names = _channels(channels)
    except (InvalidRequest, ValueError) as exc:
        return RegistrationOutcome(
            accepted=False, reason=RegistrationRefusal.INVALID, message=str(exc)
        )
    return _Report(
        serial=serial, domain=domain, fields=fields, public_key=public_key,
        code_hash=verification_code_hash, channel_names=channel_names, now=now,
    )  # fmt: skip


async def _refusal(
    conn: AsyncConnection, report: _Report, row: Any, holders: Mapping[str, str]
) -> RegistrationOutcome | None:
    """Why `report` is refused (audited here, in the caller's transaction), or None."""
    serial, now = report.serial, report.now
    if row is not None and row.public_key is not None and row.public_key != report.public_key:
        await audit.record(
            conn, at=now, actor_id=None, action=audit.AuditAction.DEVICE_KEY_MISMATCH,
            device_serial=serial, detail={"ip": report.fields["ip"]},
        )  # fmt: skip
        return RegistrationOutcome(
            accepted=False,
            reason=RegistrationRefusal.KEY_MISMATCH,
            message="the device key does not match the key pinned for this serial",
        )
    holder = holders.get(report.domain) if report.domain is not None else None
    if holder is not None and holder != serial:
        await audit.record(
            conn, at=now, actor_id=None, device_serial=serial,
            action=audit.AuditAction.DEVICE_REGISTRATION_REFUSED,
            detail={"reason": "domain_taken", "domain": report.domain},
        )  # fmt: skip
        return RegistrationOutcome(
            accepted=False,
            reason=RegistrationRefusal.DOMAIN_TAKEN,
            message=f"domain {report.domain!r} belongs to another device",
        )
    return None


def _accepted(row: Any, version: int | None = None) -> RegistrationOutcome:
    if version is None:
        version = int(row.grant_version) if row is not None else 0
    bound = row is not None and row.owner_id is not None
    return RegistrationOutcome(accepted=True, bound=bound, grant_version=version)


class _BatchWrites:
    """The writes of one batch of registrations, grouped into one statement per kind."""

    def __init__(self) -> None:
        self._inserts: dict[tuple[str, ...], list[dict[str, object]]] = {}
        self._updates: dict[tuple[str, ...], list[dict[str, object]]] = {}
        self._seen: list[dict[str, object]] = []
        self._new: list[_Report] = []
        self.rechannel: dict[str, dict[int, str]] = {}

    def add(self, report: _Report, row: Any, fresh_for: float) -> bool:
        """Queue the device row's write; True if more than presence changes."""
        serial, now = report.serial, report.now
        values = dict(report.fields, domain=report.domain, public_key=report.public_key)
        if report.code_hash is not None:
            values["verification_code_hash"] = report.code_hash
        if row is None:
            values.update(serial=serial, registered_at=now, online=True, last_seen=now)
            self._inserts.setdefault(tuple(sorted(values)), []).append(values)
            self._new.append(report)
            return True
        if any(getattr(row, column) != value for column, value in values.items()):
            values.update(online=True, last_seen=now)
            params = {f"_{column}": value for column, value in values.items()}
            self._updates.setdefault(tuple(sorted(values)), []).append(params | {"_serial": serial})
            return True
        # Nothing changed: presence only, coalesced like heartbeats.
        if not (row.online and row.last_seen is not None and now - row.last_seen < fresh_for):
            self._seen.append({"_serial": serial, "_now": now})
        return False

    async def apply(self, conn: AsyncConnection) -> dict[str, int]:
        """Run the queued writes; the new grant version of each device whose channels changed."""
        devices = schema.devices
        by_serial = devices.c.serial == bindparam("_serial")
        for params in self._inserts.values():
            await conn.execute(devices.insert(), params)
        for report in self._new:
            await audit.record(
                conn, at=report.now, actor_id=None, action=audit.AuditAction.DEVICE_REGISTERED,
                device_serial=report.serial,
            )  # fmt: skip
        for columns, params in self._updates.items():
            values: dict[str, Any] = {column: bindparam(f"_{column}") for column in columns}
            await conn.execute(update(devices).where(by_serial).values(values), params)
        if self._seen:
            presence = update(devices).where(by_serial)
            presence = presence.values(online=True, last_seen=bindparam("_now"))
            await conn.execute(presence, self._seen)
        if not self.rechannel:
            return {}
        table, changed = schema.channels, list(self.rechannel)
        await conn.execute(delete(table).where(table.c.device_serial.in_(changed)))
        channel_rows = [
            {"device_serial": serial, "number": number, "name": name}
            for serial, names in self.rechannel.items()
            for number, name in sorted(names.items())
        ]
        if channel_rows:
            await conn.execute(table.insert(), channel_rows)
        # The owner's implicit grant covers every channel: it changed.
        bumped = await conn.execute(
            update(devices)
            .where(devices.c.serial.in_(changed))
            .values(grant_version=devices.c.grant_version + 1)
            .returning(devices.c.serial, devices.c.grant_version)
        )
        return {row.serial: int(row.grant_version) for row in bumped}


class RegistryDeviceOps:
    """What the device registry calls: registration, presence, grant-set data."""

    _ctx: ServiceContext

    async def apply_registration(
        self,
        *,
        serial: str,
        domain: str | None,
        model: str,
        firmware_version: str,
        channels: Sequence[tuple[int, str]],
        ip: str,
        port: int,
        public_key: bytes,
        verification_code_hash: str | None = None,
        now: float,
    ) -> RegistrationOutcome:
        """Record (or refresh) what a device says about itself and mark it online.

        The first registration pins `public_key`; a later one with another key
        is refused and audited as an alert (someone else claims the serial).
        A domain held by another serial is refused.  Malformed data is refused
        with `INVALID`, never raised.  `verification_code_hash` is a
        `secrets_hash.hash_secret` of the recorder's code (None keeps the old one).
        """
        report = _report(
            serial=serial, domain=domain, model=model, firmware_version=firmware_version,
            channels=channels, ip=ip, port=port, public_key=public_key,
            verification_code_hash=verification_code_hash, now=now,
        )  # fmt: skip
        if isinstance(report, RegistrationOutcome):
            return report
        outcome = await self._register_one(report)
        if outcome.accepted:
            self._ctx.events.publish(
                DeviceRegistered(device_serial=serial, grant_version=outcome.grant_version)
            )
        return outcome

    async def _register_one(self, report: _Report) -> RegistrationOutcome:
        for _attempt in range(2):
            try:
                return await self._register(report)
            except IntegrityError:
                continue  # a concurrent first registration of the same serial: look again
        return RegistrationOutcome(
            accepted=False, reason=RegistrationRefusal.DOMAIN_TAKEN, message="domain taken"
        )

    async def _register(self, report: _Report) -> RegistrationOutcome:
        devices = schema.devices
        serial, domain, now = report.serial, report.domain, report.now
        fields, public_key, code_hash = report.fields, report.public_key, report.code_hash
        channel_names = report.channel_names
        async with self._ctx.store.transaction() as conn:
            row = (await conn.execute(select(devices).where(devices.c.serial == serial))).first()
            holders: dict[str, str] = {}
            if domain is not None:
                holder = (
                    await conn.execute(select(devices.c.serial).where(devices.c.domain == domain))
                ).first()
                if holder is not None:
                    holders[domain] = holder.serial
            refusal = await _refusal(conn, report, row, holders)
            if refusal is not None:
                return refusal
            values = dict(fields, domain=domain, online=True, last_seen=now)
            if code_hash is not None:
                values["verification_code_hash"] = code_hash
            if row is None:
                await conn.execute(
                    devices.insert().values(
                        serial=serial, public_key=public_key, registered_at=now, **values
                    )
                )
                await audit.record(
                    conn, at=now, actor_id=None, action=audit.AuditAction.DEVICE_REGISTERED,
                    device_serial=serial,
                )  # fmt: skip
            else:
                await conn.execute(
                    update(devices)
                    .where(devices.c.serial == serial)
                    .values(public_key=public_key, **values)
                )
            old = {c.number: c.name for c in await load_channels(conn, serial)}
            if old != channel_names:
                table = schema.channels
                await conn.execute(delete(table).where(table.c.device_serial == serial))
                if channel_names:
                    await conn.execute(
                        table.insert(),
                        [
                            {"device_serial": serial, "number": n, "name": name}
                            for n, name in sorted(channel_names.items())
                        ],
                    )
                # The owner's implicit grant covers every channel: it changed.
                _epoch, version = await bump_device(conn, serial, epoch=False)
            else:
                version = row.grant_version if row is not None else 0
            bound = row is not None and row.owner_id is not None
        return RegistrationOutcome(accepted=True, bound=bound, grant_version=version)

    async def set_online(self, serial: str, online: bool, now: float) -> bool:
        """Record the device's presence; False if the serial is unknown."""
        if not is_valid_serial(serial):
            return False
        devices = schema.devices
        values: dict[str, object] = {"online": bool(online)}
        if online:
            values["last_seen"] = now
        async with self._ctx.store.transaction() as conn:
            result = await conn.execute(
                update(devices).where(devices.c.serial == serial).values(**values)
            )
        return bool(result.rowcount)

    async def set_presence(
        self, presence: Mapping[str, tuple[bool, float | None]], *, fresh_for: float = 0.0
    ) -> None:
        """Record many devices' presence in one transaction: serial → (online, last seen).

        A last-seen time of None leaves the stored one.  Going online is not
        written at all for a device that is online and was seen within
        `fresh_for` seconds of its time (last seen coalesced, like
        heartbeats).  Unknown or malformed serials are ignored.
        """
        devices = schema.devices
        groups: dict[tuple[bool, bool], list[dict[str, object]]] = {}
        for serial, (online, seen) in presence.items():
            if is_valid_serial(serial):
                groups.setdefault((bool(online), seen is not None), []).append(
                    {"_serial": serial, "_seen": seen}
                )
        if not groups:
            return
        async with self._ctx.store.transaction() as conn:
            for (online, with_seen), params in groups.items():
                statement = update(devices).where(devices.c.serial == bindparam("_serial"))
                if online and with_seen and fresh_for > 0:
                    statement = statement.where(
                        or_(
                            devices.c.online.is_(False),
                            devices.c.last_seen.is_(None),
                            devices.c.last_seen <= bindparam("_seen") - fresh_for,
                        )
                    )
                values: dict[str, object] = {"online": online}
                if with_seen:
                    values["last_seen"] = bindparam("_seen")
                await conn.execute(statement.values(values), params)

    async def apply_registrations(
        self, registrations: Sequence[Mapping[str, Any]], *, fresh_for: float = 0.0
    ) -> list[RegistrationOutcome]:
        """`apply_registration` for many devices in one transaction: one outcome each, in order.

        Each mapping holds `apply_registration`'s keyword arguments.  Every
        check and audit entry of the single call happens per device, and one
        device's refusal does not touch the others; should the shared
        transaction hit a constraint (a concurrent first registration, a
        domain handed over inside the batch), each device is applied on its
        own.  A re-registration that changes nothing writes only presence,
        and not even that while the device is online and was seen within
        `fresh_for` seconds.  Only registrations that changed something
        announce `DeviceRegistered` (the caller decides about grant sets for
        the others).  A serial repeated in the batch is applied in order.
        Raises `StoreUnavailable` like every store call.
        """
        outcomes: list[RegistrationOutcome | None] = [None] * len(registrations)
        pending: list[tuple[int, _Report]] = []
        for index, arguments in enumerate(registrations):
            report = _report(**arguments)
            if isinstance(report, RegistrationOutcome):
                outcomes[index] = report
            else:
                pending.append((index, report))
        while pending:
            # Each round holds a serial at most once; its next report waits a round.
            batch: list[tuple[int, _Report]] = []
            later: list[tuple[int, _Report]] = []
            serials: set[str] = set()
            for item in pending:
                (later if item[1].serial in serials else batch).append(item)
                serials.add(item[1].serial)
            reports = [report for _, report in batch]
            try:
                results = await self._register_batch(reports, fresh_for)
            except IntegrityError:
                results = [(await self._register_one(report), True) for report in reports]
            for (index, report), (outcome, wrote) in zip(batch, results, strict=True):
                outcomes[index] = outcome
                if outcome.accepted and wrote:
                    self._ctx.events.publish(
                        DeviceRegistered(
                            device_serial=report.serial, grant_version=outcome.grant_version
                        )
                    )
            pending = later
        return [outcome for outcome in outcomes if outcome is not None]

    async def _register_batch(
        self, reports: Sequence[_Report], fresh_for: float
    ) -> list[tuple[RegistrationOutcome, bool]]:
        """`_register` for distinct serials in one transaction; (outcome, wrote) each."""
        devices, table = schema.devices, schema.channels
        serials = [report.serial for report in reports]
        async with self._ctx.store.transaction() as conn:
            rows = {
                row.serial: row
                for row in await conn.execute(select(devices).where(devices.c.serial.in_(serials)))
            }
            holders = {row.domain: row.serial for row in rows.values() if row.domain is not None}
            wanted = {report.domain for report in reports if report.domain is not None}
            if wanted:
                query = select(devices.c.serial, devices.c.domain).where(
                    devices.c.domain.in_(wanted)
                )
                holders.update({row.domain: row.serial for row in await conn.execute(query)})
            old_channels: dict[str, dict[int, str]] = {}
            query = select(table.c.device_serial, table.c.number, table.c.name).where(
                table.c.device_serial.in_(serials)
            )
            for channel in await conn.execute(query):
                old_channels.setdefault(channel.device_serial, {})[channel.number] = channel.name
            writes = _BatchWrites()
            results: list[tuple[RegistrationOutcome, bool] | None] = []
            for report in reports:
                row = rows.get(report.serial)
                refusal = await _refusal(conn, report, row, holders)
                if refusal is not None:
                    results.append((refusal, False))
                    continue
                wrote = writes.add(report, row, fresh_for)
                if row is not None and row.domain is not None and row.domain != report.domain:
                    holders.pop(row.domain, None)
                if report.domain is not None:
                    holders[report.domain] = report.serial
                if old_channels.get(report.serial, {}) != report.channel_names:
                    writes.rechannel[report.serial] = report.channel_names
                    wrote = True
                results.append(None if wrote or row is None else (_accepted(row), False))
            versions = await writes.apply(conn)
        return [
            result
            if result is not None
            else (_accepted(rows.get(report.serial), versions.get(report.serial)), True)
            for report, result in zip(reports, results, strict=True)
        ]

    async def grant_set_for(self, serial: str, *, now: float | None = None) -> GrantSetData | None:
        """The data for the device's grant set, or None for an unknown serial."""
        if not is_valid_serial(serial):
            return None
        now = self._ctx.clock() if now is None else now
        shares, revocations = schema.shares, schema.revocations
        async with self._ctx.store.transaction(readonly=True) as conn:
            device = await load_device(conn, serial)
            if device is None:
                return None
            rows = await conn.execute(
                select(shares.c.recipient_id, shares.c.permissions).where(
                    and_(
                        shares.c.device_serial == serial,
                        shares.c.state == ShareState.ACCEPTED.value,
                    )
                )
            )
            accounts: dict[str, Mapping[int, Permission]] = {
                r.recipient_id: decode_matrix(r.permissions) for r in rows
            }
            horizon = now - 2 * self._ctx.config.token_ttl
            revoked = await conn.execute(
                select(revocations.c.account_id, revocations.c.share_epoch)
                .where(
                    and_(revocations.c.device_serial == serial, revocations.c.revoked_at > horizon)
                )
                .order_by(revocations.c.account_id)
            )
            revoked_pairs = tuple((r.account_id, int(r.share_epoch)) for r in revoked)
            site = await installer_access(conn, serial, device.channels, now)
        return _grant_set_data(device, accounts, revoked_pairs, site)

    async def grant_sets_for(
        self, serials: Sequence[str], *, now: float | None = None
    ) -> dict[str, GrantSetData]:
        """`grant_set_for` of many devices, read in one transaction; unknown serials left out."""
        wanted = [serial for serial in dict.fromkeys(serials) if is_valid_serial(serial)]
        if not wanted:
            return {}
        now = self._ctx.clock() if now is None else now
        devices, channels = schema.devices, schema.channels
        shares, revocations = schema.shares, schema.revocations
        async with self._ctx.store.transaction(readonly=True) as conn:
            rows = {
                row.serial: row
                for row in await conn.execute(select(devices).where(devices.c.serial.in_(wanted)))
            }
            known = list(rows)
            if not known:
                return {}
            names: dict[str, list[Channel]] = {}
            query = (
                select(channels.c.device_serial, channels.c.number, channels.c.name)
                .where(channels.c.device_serial.in_(known))
                .order_by(channels.c.number)
            )
            for row in await conn.execute(query):
                names.setdefault(row.device_serial, []).append(
                    Channel(number=row.number, name=row.name)
                )
            accounts: dict[str, dict[str, Mapping[int, Permission]]] = {s: {} for s in known}
            query = select(shares.c.device_serial, shares.c.recipient_id, shares.c.permissions)
            query = query.where(
                and_(
                    shares.c.device_serial.in_(known),
                    shares.c.state == ShareState.ACCEPTED.value,
                )
            )
            for row in await conn.execute(query):
                accounts[row.device_serial][row.recipient_id] = decode_matrix(row.permissions)
            horizon = now - 2 * self._ctx.config.token_ttl
            revoked: dict[str, list[tuple[str, int]]] = {s: [] for s in known}
            query = (
                select(revocations.c.device_serial, revocations.c.account_id,
                       revocations.c.share_epoch)
                .where(
                    and_(
                        revocations.c.device_serial.in_(known),
                        revocations.c.revoked_at > horizon,
                    )
                )
                .order_by(revocations.c.account_id)
            )  # fmt: skip
            for row in await conn.execute(query):
                revoked[row.device_serial].append((row.account_id, int(row.share_epoch)))
            found = {s: device_from_row(rows[s], tuple(names.get(s, ()))) for s in known}
            sites = {s: await installer_access(conn, s, found[s].channels, now) for s in known}
        return {
            s: _grant_set_data(found[s], accounts[s], tuple(revoked[s]), sites[s]) for s in known
        }


def _grant_set_data(
    device: Device,
    accounts: dict[str, Mapping[int, Permission]],
    revoked_pairs: tuple[tuple[str, int], ...],
    site: InstallerAccess,
) -> GrantSetData:
    """A device's grant-set data from its shares, revocations and installer access."""
    for account_id, timed in site.grants.items():
        accounts.setdefault(account_id, timed.matrix)
    if device.owner_id is not None and device.channels:
        accounts[device.owner_id] = {c.number: ALL_PERMISSIONS for c in device.channels}
    return GrantSetData(
        device_serial=device.serial,
        version=device.grant_version,
        share_epoch=device.share_epoch,
        owner_id=device.owner_id,
        accounts=accounts,
        revoked=tuple(p for p in revoked_pairs if p[0] not in accounts),
        service_enabled=site.service_enabled,
        validity={
            a: (t.valid_from, t.valid_until)
            for a, t in site.grants.items()
            if accounts.get(a) is t.matrix
        },
    )
