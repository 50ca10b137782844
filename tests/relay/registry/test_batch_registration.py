"""Registrations applied in batches: same verdicts as one by one, fewer writes."""

from __future__ import annotations

from typing import Any

import pytest

from nvrshare.protocol.permissions import Permission
from nvrshare.relay.services import (
    DeviceRegistered,
    RecipientKind,
    RecipientRef,
    RegistrationRefusal,
)
from nvrshare.relay.services.audit import AuditAction, entries_for_device
from nvrshare.relay.services.context import load_device
from nvrshare.relay.services.models import Device
from tests.relay.conftest import World

KEY_A, KEY_B, KEY_C = b"a" * 32, b"b" * 32, b"c" * 32


def _registration(world: World, serial: str, key: bytes, **overrides: object) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "serial": serial,
        "domain": None,
        "model": "DS-7608NI-K2",
        "firmware_version": "V4.30",
        "channels": [(1, "Gate"), (2, "Yard")],
        "ip": "192.0.2.10",
        "port": 8000,
        "public_key": key,
        "now": world.clock(),
    }
    fields.update(overrides)
    return fields


async def _device(world: World, serial: str) -> Device:
    async with world.services.context.store.transaction(readonly=True) as conn:
        device = await load_device(conn, serial)
    assert device is not None
    return device


async def test_each_device_gets_its_own_verdict_and_refusals_are_audited(world: World) -> None:
    devices = world.services.devices
    await devices.apply_registration(**_registration(world, "SN1", KEY_A, domain="shop"))
    await devices.apply_registration(**_registration(world, "SN2", KEY_B))
    world.clock.advance(5)
    batch = [
        _registration(world, "SN1", KEY_A, domain="shop"),  # unchanged
        _registration(world, "SN2", KEY_C),  # another key: refused, alert
        _registration(world, "SN3", KEY_C, domain="shop"),  # domain held by SN1
        _registration(world, "SN4", KEY_C, port=70000),  # malformed
        _registration(world, "SN5", KEY_C, domain="yard"),  # new
        _registration(world, "SN6", KEY_A, domain="yard"),  # taken inside the batch
        _registration(world, "SN5", KEY_C, domain="yard", ip="::1"),  # again, applied after
    ]
    with world.services.events.subscribe() as events:
        outcomes = await devices.apply_registrations(batch)
        announced = []
        while (event := events.get_nowait()) is not None:
            announced.append(event)
    assert [o.accepted for o in outcomes] == [True, False, False, False, True, False, True]
    assert outcomes[1].reason is RegistrationRefusal.KEY_MISMATCH
    assert outcomes[2].reason is outcomes[5].reason is RegistrationRefusal.DOMAIN_TAKEN
    assert outcomes[3].reason is RegistrationRefusal.INVALID
    assert outcomes[4].grant_version == 1  # its channels are new
    # Only registrations that changed something announce themselves.
    assert {(e.device_serial, type(e)) for e in announced} == {("SN5", DeviceRegistered)}
    assert (await _device(world, "SN5")).ip == "::1"
    assert (await _device(world, "SN2")).ip == "192.0.2.10"
    async with world.services.context.store.transaction() as conn:
        sn2 = [e.action for e in await entries_for_device(conn, "SN2")]
        sn3 = [e.action for e in await entries_for_device(conn, "SN3")]
        sn5 = [e.action for e in await entries_for_device(conn, "SN5")]
    assert AuditAction.DEVICE_KEY_MISMATCH in sn2
    assert sn3 == [AuditAction.DEVICE_REGISTRATION_REFUSED]
    assert sn5 == [AuditAction.DEVICE_REGISTERED]


async def test_changes_are_written_and_channel_changes_bump_the_version(world: World) -> None:
    devices = world.services.devices
    first = await devices.apply_registration(**_registration(world, "SN1", KEY_A))
    await devices.apply_registration(**_registration(world, "SN2", KEY_B))
    world.clock.advance(5)
    outcomes = await devices.apply_registrations(
        [
            _registration(world, "SN1", KEY_A, channels=[(1, "Gate"), (2, "Yard"), (3, "Hall")]),
            _registration(world, "SN2", KEY_B, firmware_version="V4.31", domain="two"),
        ]
    )
    assert outcomes[0].grant_version == first.grant_version + 1
    assert [c.name for c in (await _device(world, "SN1")).channels] == ["Gate", "Yard", "Hall"]
    sn2 = await _device(world, "SN2")
    assert (sn2.firmware_version, sn2.domain, sn2.last_seen) == ("V4.31", "two", world.clock())
    assert outcomes[1].grant_version == sn2.grant_version


async def test_an_unchanged_reregistration_writes_presence_only_when_stale(world: World) -> None:
    devices = world.services.devices
    await devices.apply_registration(**_registration(world, "SN1", KEY_A))
    registered_at = world.clock()
    world.clock.advance(10)
    [fresh] = await devices.apply_registrations([_registration(world, "SN1", KEY_A)], fresh_for=60)
    assert fresh.accepted
    assert (await _device(world, "SN1")).last_seen == registered_at  # coalesced
    await devices.set_online("SN1", False, world.clock())
    await devices.apply_registrations([_registration(world, "SN1", KEY_A)], fresh_for=60)
    device = await _device(world, "SN1")
    assert device.online
    assert device.last_seen == world.clock()
    world.clock.advance(61)
    await devices.apply_registrations([_registration(world, "SN1", KEY_A)], fresh_for=60)
    assert (await _device(world, "SN1")).last_seen == world.clock()


async def test_a_constraint_hit_falls_back_to_one_by_one(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    devices = world.services.devices
    await devices.apply_registration(**_registration(world, "SN1", KEY_A, domain="old"))
    one_by_one = devices._register_one
    applied: list[str] = []

    async def spy(report: Any) -> Any:
        applied.append(report.serial)
        return await one_by_one(report)

    monkeypatch.setattr(devices, "_register_one", spy)
    # SN1 hands "old" over to a new SN2 inside one batch: the grouped writes
    # insert SN2 before SN1's update frees the domain, so the batch fails on
    # the unique domain and each registration is applied on its own, in order.
    outcomes = await devices.apply_registrations(
        [
            _registration(world, "SN1", KEY_A, domain="new"),
            _registration(world, "SN2", KEY_B, domain="old"),
        ]
    )
    assert [o.accepted for o in outcomes] == [True, True]
    assert applied == ["SN1", "SN2"]
    assert (await _device(world, "SN1")).domain == "new"
    assert (await _device(world, "SN2")).domain == "old"


async def test_set_presence_in_one_go(world: World) -> None:
    devices = world.services.devices
    for serial, key in (("SN1", KEY_A), ("SN2", KEY_B), ("SN3", KEY_C)):
        await devices.apply_registration(**_registration(world, serial, key))
    start = world.clock()
    world.clock.advance(10)
    now = world.clock()
    await devices.set_presence(
        {
            "SN1": (True, now),  # online and seen 10 s ago: coalesced
            "SN2": (False, None),
            "SN3": (False, now),
            "NOPE": (True, now),
            "bad/serial": (True, now),
        },
        fresh_for=60,
    )
    sn1, sn2, sn3 = [await _device(world, s) for s in ("SN1", "SN2", "SN3")]
    assert (sn1.online, sn1.last_seen) == (True, start)
    assert (sn2.online, sn2.last_seen) == (False, start)
    assert (sn3.online, sn3.last_seen) == (False, now)
    await devices.set_presence({"SN1": (True, now), "SN2": (True, now)})
    sn1, sn2 = [await _device(world, s) for s in ("SN1", "SN2")]
    assert (sn1.online, sn1.last_seen, sn2.online, sn2.last_seen) == (True, now, True, now)
    await devices.set_presence({"bad/serial": (True, now)})


async def test_grant_sets_read_together_equal_those_read_one_by_one(world: World) -> None:
    services = world.services
    alice = await world.account("alice")
    bob = await world.account("bob")
    carol = await world.account("carol")
    await world.owned_device(alice, "SN1")
    await world.owned_device(alice, "SN2", channels=2)
    await world.device("SN3")  # not bound: no owner
    for serial, friend in (("SN1", bob), ("SN1", carol), ("SN2", bob)):
        share = await services.shares.create(
            alice,
            serial=serial,
            recipient=RecipientRef(kind=RecipientKind.EMAIL, value=f"{friend.email}"),
            permissions={1: Permission.LIVE_VIEW},
        )
        await services.shares.accept(friend, share.id)
        if friend is carol:
            await services.shares.revoke(alice, share.id)
    serials = ["SN1", "SN2", "SN3", "NOPE", "bad/serial", "SN1"]
    together = await services.devices.grant_sets_for(serials)
    assert set(together) == {"SN1", "SN2", "SN3"}
    for serial, data in together.items():
        assert data == await services.devices.grant_set_for(serial)
    assert together["SN1"].revoked
    assert together["SN1"].accounts[bob.id]
    assert await services.devices.grant_sets_for(["NOPE"]) == {}
    assert await services.devices.grant_sets_for([]) == {}
