"""Devices: registration from the registry, binding, rename, remove; both stores."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from nvrshare.protocol.permissions import ALL_PERMISSIONS, Permission
from nvrshare.relay.errors import DeviceAlreadyBound, DeviceNotFound, Forbidden, RateLimited
from nvrshare.relay.services import (
    DeviceBound,
    DeviceRegistered,
    DeviceRemoved,
    RecipientKind,
    RecipientRef,
    RegistrationRefusal,
)
from nvrshare.relay.services.audit import AuditAction, entries_for_device
from nvrshare.relay.services.secrets_hash import hash_secret
from tests.relay.conftest import World


def _registration(world: World, sn: str, key: bytes, **overrides: object) -> dict:
    fields: dict = {
        "serial": sn,
        "domain": None,
        "model": "DS-7608NI-K2",
        "firmware_version": "V4.30",
        "channels": [(1, "Gate"), (2, "Yard")],
        "ip": "192.0.2.10",
        "port": 8000,
        "public_key": key,
        "verification_code_hash": hash_secret("ABCDEF", world.services.context.config.scrypt),
        "now": world.clock(),
    }
    fields.update(overrides)
    return fields


async def test_registration_creates_an_unbound_device(world: World) -> None:
    devices = world.services.devices
    with world.services.events.subscribe() as events:
        outcome = await devices.apply_registration(
            **_registration(world, "SN1", b"k" * 32, domain="gate-nvr")
        )
        assert outcome.accepted
        assert not outcome.bound
        assert isinstance(events.get_nowait(), DeviceRegistered)
    grant_set = await devices.grant_set_for("SN1")
    assert grant_set is not None
    assert grant_set.owner_id is None
    assert grant_set.accounts == {}
    assert await devices.grant_set_for("UNKNOWN") is None


async def test_registration_pins_the_device_key(world: World) -> None:
    devices = world.services.devices
    assert (await devices.apply_registration(**_registration(world, "SN1", b"a" * 32))).accepted
    again = await devices.apply_registration(**_registration(world, "SN1", b"a" * 32, ip="::1"))
    assert again.accepted
    impostor = await devices.apply_registration(**_registration(world, "SN1", b"b" * 32))
    assert not impostor.accepted
    assert impostor.reason is RegistrationRefusal.KEY_MISMATCH
    async with world.services.context.store.transaction() as conn:
        actions = [e.action for e in await entries_for_device(conn, "SN1")]
    assert AuditAction.DEVICE_KEY_MISMATCH in actions


async def test_registration_refuses_a_taken_domain(world: World) -> None:
    devices = world.services.devices
    await devices.apply_registration(**_registration(world, "SN1", b"a" * 32, domain="shop"))
    taken = await devices.apply_registration(
        **_registration(world, "SN2", b"b" * 32, domain="shop")
    )
    assert taken.reason is RegistrationRefusal.DOMAIN_TAKEN


@pytest.mark.parametrize(
    "bad",
    [
        {"serial": "bad/serial"},
        {"domain": "Not A Domain"},
        {"channels": [(0, "zero")]},
        {"channels": [(1, "a"), (1, "b")]},
        {"ip": "not-an-ip"},
        {"port": 70000},
        {"public_key": b"short"},
        {"verification_code_hash": "plain-text-code"},
        {"model": "x" * 500},
    ],
)
async def test_registration_refuses_malformed_data(world: World, bad: dict) -> None:
    outcome = await world.services.devices.apply_registration(
        **_registration(world, "SN1", b"a" * 32, **bad)
    )
    assert outcome.reason is RegistrationRefusal.INVALID


async def test_channel_changes_bump_the_grant_version(world: World) -> None:
    devices = world.services.devices
    first = await devices.apply_registration(**_registration(world, "SN1", b"a" * 32))
    same = await devices.apply_registration(**_registration(world, "SN1", b"a" * 32))
    more = await devices.apply_registration(
        **_registration(world, "SN1", b"a" * 32, channels=[(1, "Gate"), (2, "Yard"), (3, "Hall")])
    )
    assert first.grant_version == same.grant_version < more.grant_version


async def test_set_online(world: World) -> None:
    owner = await world.account("alice")
    serial = await world.owned_device(owner, "SN1")
    devices = world.services.devices
    world.clock.advance(30)
    assert await devices.set_online(serial, False, world.clock())
    assert not (await devices.get_owned(owner, serial)).online
    assert await devices.set_online(serial, True, world.clock())
    device = await devices.get_owned(owner, serial)
    assert device.online
    assert device.last_seen == world.clock()
    assert not await devices.set_online("NOPE", True, world.clock())


async def test_bind_with_verification_code(world: World) -> None:
    alice = await world.account("alice")
    await world.device("SN1", code="XYZ123")
    devices = world.services.devices
    with world.services.events.subscribe() as events:
        device = await devices.bind(alice, serial="SN1", verification_code="XYZ123", source="s")
        event = events.get_nowait()
    assert isinstance(event, DeviceBound)
    assert event.owner_id == alice.id
    assert device.owner_id == alice.id
    assert [c.number for c in device.channels] == [1, 2, 3, 4]
    grant_set = await devices.grant_set_for("SN1")
    assert grant_set is not None
    assert grant_set.accounts == {alice.id: dict.fromkeys(range(1, 5), ALL_PERMISSIONS)}


async def test_wrong_code_and_unknown_serial_look_the_same(world: World) -> None:
    alice = await world.account("alice")
    await world.device("SN1", code="XYZ123")
    devices = world.services.devices
    with pytest.raises(Forbidden) as wrong:
        await devices.bind(alice, serial="SN1", verification_code="nope", source="s")
    with pytest.raises(Forbidden) as unknown:
        await devices.bind(alice, serial="SN404", verification_code="XYZ123", source="s")
    assert wrong.value.code == unknown.value.code == "verification_failed"
    assert wrong.value.message == unknown.value.message


async def test_bind_attempts_are_rate_limited(world: World) -> None:
    alice = await world.account("alice")
    await world.device("SN1", code="XYZ123")
    devices = world.services.devices
    for _ in range(world.services.context.config.bind_failures_per_device):
        with pytest.raises(Forbidden):
            await devices.bind(alice, serial="SN1", verification_code="guess", source="s")
    with pytest.raises(RateLimited):
        await devices.bind(alice, serial="SN1", verification_code="XYZ123", source="s")
    world.clock.advance(world.services.context.config.bind_window + 1)
    await devices.bind(alice, serial="SN1", verification_code="XYZ123", source="s")


async def test_one_device_one_owner(world: World) -> None:
    alice, bob = await world.account("alice"), await world.account("bob")
    serial = await world.owned_device(alice, "SN1")
    devices = world.services.devices
    with pytest.raises(DeviceAlreadyBound, match="another account"):
        await devices.bind(bob, serial=serial, verification_code="ABCDEF", source="s")
    with pytest.raises(DeviceAlreadyBound, match="your account"):
        await devices.bind(alice, serial=serial, verification_code="ABCDEF", source="s")
    assert (await devices.get_owned(alice, serial)).owner_id == alice.id


async def test_concurrent_binds_have_exactly_one_winner(world: World) -> None:
    contenders = [await world.account(f"user{i}") for i in range(4)]
    await world.device("SN1", code="ABCDEF")
    devices = world.services.devices
    results = await asyncio.gather(
        *(
            devices.bind(account, serial="SN1", verification_code="ABCDEF", source=f"s{i}")
            for i, account in enumerate(contenders)
        ),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, DeviceAlreadyBound) for r in losers), losers
    grant_set = await devices.grant_set_for("SN1")
    assert grant_set is not None
    assert grant_set.owner_id == winners[0].owner_id


async def test_list_rename_and_pagination(world: World) -> None:
    alice = await world.account("alice")
    serials = [await world.owned_device(alice, f"SN{i:02d}") for i in range(5)]
    devices = world.services.devices
    await devices.rename(alice, "SN03", "  Shop floor ")
    seen, cursor = [], None
    while True:
        page = await devices.list_owned(alice, limit=2, cursor=cursor)
        seen.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [d.serial for d in seen] == serials
    assert {d.serial: d.alias for d in seen}["SN03"] == "Shop floor"
    await devices.rename(alice, "SN03", None)
    assert (await devices.get_owned(alice, "SN03")).alias is None


async def test_others_cannot_see_or_touch_a_device(world: World) -> None:
    alice, mallory = await world.account("alice"), await world.account("mallory")
    serial = await world.owned_device(alice, "SN1")
    devices = world.services.devices
    with pytest.raises(DeviceNotFound):
        await devices.get_owned(mallory, serial)
    with pytest.raises(DeviceNotFound):
        await devices.rename(mallory, serial, "mine")
    with pytest.raises(DeviceNotFound):
        await devices.remove(mallory, serial)
    assert (await devices.list_owned(mallory)).items == ()
    assert (await devices.get_owned(alice, serial)).alias is None


async def test_remove_ends_every_share_and_allows_rebinding(world: World) -> None:
    alice, bob = await world.account("alice"), await world.account("bob")
    serial = await world.owned_device(alice, "SN1")
    services = world.services
    share = await services.shares.create(
        alice, serial=serial, recipient=RecipientRef(kind=RecipientKind.NAME, value="bob"),
        permissions={1: Permission.LIVE_VIEW},
    )  # fmt: skip
    await services.shares.accept(bob, share.id)
    before = await services.devices.grant_set_for(serial)
    with services.events.subscribe() as events:
        await services.devices.remove(alice, serial)
        event = events.get_nowait()
    assert isinstance(event, DeviceRemoved)
    assert set(event.revoked) == {alice.id, bob.id}
    after = await services.devices.grant_set_for(serial)
    assert before is not None
    assert after is not None
    assert after.share_epoch > before.share_epoch
    assert after.version > before.version
    assert after.owner_id is None
    assert after.accounts == {}
    assert {a for a, _ in after.revoked} == {alice.id, bob.id}
    assert (await services.shares.list_received(bob)).items == ()
    # The device (and its verification code) remain: someone can add it again.
    await services.devices.bind(bob, serial=serial, verification_code="ABCDEF", source="s")


async def test_serials_are_names_not_secrets(world: World) -> None:
    # A device that registered without a verification code cannot be bound at all.
    alice = await world.account("alice")
    await world.services.devices.apply_registration(
        **_registration(world, "SN1", secrets.token_bytes(32), verification_code_hash=None)
    )
    with pytest.raises(Forbidden):
        await world.services.devices.bind(alice, serial="SN1", verification_code="", source="s")


async def test_bind_attempts_are_limited_per_source(world: World) -> None:
    config = world.services.context.config
    accounts = [await world.account(f"guesser{i}") for i in range(3)]
    for n in range(config.bind_failures_per_source):
        with pytest.raises(Forbidden):
            await world.services.devices.bind(
                accounts[n % 3], serial=f"SN{n}", verification_code="guess", source="203.0.113.9"
            )
    owner = await world.account("owner")
    await world.device("SNX", code="RIGHT1")
    with pytest.raises(RateLimited):
        await world.services.devices.bind(
            owner, serial="SNX", verification_code="RIGHT1", source="203.0.113.9"
        )
    await world.services.devices.bind(
        owner, serial="SNX", verification_code="RIGHT1", source="198.51.100.2"
    )
