"""The data plane's view of the control plane (share epochs, presence), and its cache."""

from __future__ import annotations

import asyncio

import pytest

from nvrshare.protocol.permissions import Permission
from nvrshare.relay.services import RecipientKind, RecipientRef
from nvrshare.relay.services.dataplane_view import DEFAULT_MAX_AGE, DataPlaneView
from nvrshare.relay.services.events import DeviceRegistered
from tests.relay.conftest import World


class Ticker:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def settle() -> None:
    """Let every runnable task take its next steps."""
    for _ in range(5):
        await asyncio.sleep(0)


class CountingView(DataPlaneView):
    """Counts store reads; `gate`, when set, holds a read until released.

    Reads reach the store one at a time (a second pooled connection would be
    opened mid-test, and the driver's first connect does blocking file I/O).
    """

    reads = 0
    gate: asyncio.Event | None = None

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.one_at_a_time = asyncio.Lock()

    async def _read(self, serial: str, now: float):  # type: ignore[no-untyped-def]
        self.reads += 1
        if self.gate is not None:
            await self.gate.wait()
        async with self.one_at_a_time:
            return await super()._read(serial, now)


async def test_share_epoch_and_presence(world: World) -> None:
    view = DataPlaneView(world.services.context, max_age=0)
    alice = await world.account("alice")
    await world.account("bob")
    await world.device("SN1")
    assert await view.share_epoch("SN1") is None  # registered but nobody owns it
    assert await view.share_epoch("NOPE") is None
    assert await view.share_epoch("bad/serial") is None
    await world.services.devices.bind(alice, serial="SN1", verification_code="ABCDEF", source="s")
    before = await view.share_epoch("SN1")
    assert before is not None
    await world.services.shares.create(
        alice, serial="SN1", recipient=RecipientRef(kind=RecipientKind.NAME, value="bob"),
        permissions={1: Permission.LIVE_VIEW},
    )  # fmt: skip
    assert await view.share_epoch("SN1") == before + 1
    assert (await world.services.tokens.issue(alice, "SN1")).share_epoch == before + 1
    assert await view.is_online("SN1")
    await world.services.devices.set_online("SN1", False, world.clock())
    assert not await view.is_online("SN1")
    assert not await view.is_online("NOPE")
    assert not await view.is_online("bad/serial")
    assert not await view.is_token_revoked(b"\x00" * 16)


async def test_one_read_answers_epoch_and_presence_until_max_age(world: World) -> None:
    ticker = Ticker()
    view = CountingView(world.services.context, clock=ticker)
    alice = await world.account("alice")
    await world.owned_device(alice, "SN1")
    epoch = await view.share_epoch("SN1")
    assert epoch is not None
    assert await view.is_online("SN1")
    assert await view.share_epoch("SN1") == epoch
    assert view.reads == 1
    # Presence has no event: a change shows once the answer is older than max_age.
    await world.services.devices.set_online("SN1", False, world.clock())
    ticker.now += DEFAULT_MAX_AGE / 2
    assert await view.is_online("SN1")
    ticker.now += DEFAULT_MAX_AGE / 2
    assert not await view.is_online("SN1")
    assert view.reads == 2
    # An offline answer is not kept: a device back online is served at once.
    await world.services.devices.set_online("SN1", True, world.clock())
    assert await view.is_online("SN1")
    assert view.reads == 3
    # Unknown devices are cached (only verified tokens' serials get this far).
    assert await view.share_epoch("NOPE") is None
    assert await view.share_epoch("NOPE") is None
    assert view.reads == 4


async def test_this_relays_share_change_is_seen_at_once(world: World) -> None:
    view = CountingView(world.services.context, clock=Ticker())
    alice = await world.account("alice")
    await world.account("bob")
    await world.owned_device(alice, "SN1")
    await world.owned_device(alice, "SN2")
    before = await view.share_epoch("SN1")
    assert before is not None
    assert await view.share_epoch("SN2") is not None
    share = await world.services.shares.create(
        alice, serial="SN1", recipient=RecipientRef(kind=RecipientKind.NAME, value="bob"),
        permissions={1: Permission.LIVE_VIEW},
    )  # fmt: skip
    assert share is not None
    assert await view.share_epoch("SN1") == before + 1  # no time passed: the event did it
    assert view.reads == 3
    await view.share_epoch("SN2")  # another device's entry was kept
    assert view.reads == 3


async def test_lost_events_drop_every_entry(world: World) -> None:
    view = CountingView(world.services.context, clock=Ticker())
    alice = await world.account("alice")
    await world.owned_device(alice, "SN1")
    await view.share_epoch("SN1")
    bus = world.services.context.events
    for _ in range(bus._max_queue + 1):
        bus.publish(DeviceRegistered(device_serial="OTHER", grant_version=1))
    await view.share_epoch("SN1")
    assert view.reads == 2


async def test_a_read_overlapping_a_change_is_used_once_not_kept(world: World) -> None:
    view = CountingView(world.services.context, clock=Ticker())
    alice = await world.account("alice")
    await world.owned_device(alice, "SN1")
    view.gate = asyncio.Event()
    reading = asyncio.create_task(view.share_epoch("SN1"))
    await asyncio.sleep(0)
    world.services.context.events.publish(DeviceRegistered(device_serial="SN1", grant_version=9))
    view.gate.set()
    assert await reading is not None
    await view.share_epoch("SN1")
    assert view.reads == 2


async def test_entries_are_bounded_and_close_stops_caching(world: World) -> None:
    view = CountingView(world.services.context, max_entries=1, clock=Ticker())
    alice = await world.account("alice")
    await world.owned_device(alice, "SN1")
    await world.owned_device(alice, "SN2")
    await view.share_epoch("SN1")
    await view.share_epoch("SN2")  # evicts SN1
    await view.share_epoch("SN1")
    assert view.reads == 3
    view.close()
    view.close()
    await view.share_epoch("SN1")
    assert view.reads == 4
    assert await view.share_epoch("SN1") is not None


def test_bad_settings_are_refused(world: World) -> None:
    with pytest.raises(ValueError, match="max_age"):
        DataPlaneView(world.services.context, max_age=-1)
    with pytest.raises(ValueError, match="max_entries"):
        DataPlaneView(world.services.context, max_entries=0)


async def test_concurrent_lookups_share_a_read_unless_a_change_came_between(world: World) -> None:
    view = CountingView(world.services.context, clock=Ticker())
    alice = await world.account("alice")
    await world.owned_device(alice, "SN1")
    await view.share_epoch("NOPE")  # drains the setup's events
    view.gate = asyncio.Event()
    first = [asyncio.create_task(view.share_epoch("SN1")) for _ in range(3)]
    await settle()
    assert view.reads == 2
    world.services.context.events.publish(DeviceRegistered(device_serial="SN9", grant_version=1))
    later = asyncio.create_task(view.is_online("SN1"))  # may not join a read begun before
    await settle()
    assert view.reads == 3
    view.gate.set()
    epochs = await asyncio.gather(*first)
    assert len(set(epochs)) == 1
    assert epochs[0] is not None
    assert await later
    assert view._reads == {}


async def test_a_failed_read_reaches_every_waiter_and_is_not_kept(world: World) -> None:
    class Failing(CountingView):
        async def _read(self, serial: str, now: float):  # type: ignore[no-untyped-def]
            self.reads += 1
            await settle()
            raise RuntimeError("store down")

    view = Failing(world.services.context, clock=Ticker())
    results = await asyncio.gather(
        view.share_epoch("SN1"), view.is_online("SN1"), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    assert view.reads == 1
    waiter = asyncio.create_task(view.share_epoch("SN1"))
    await settle()
    waiter.cancel()  # the caller gave up; the read's failure is still collected
    await asyncio.gather(waiter, return_exceptions=True)
    async with asyncio.timeout(10):  # the read lands (and fails) in its own time
        while view._reads:  # noqa: ASYNC110 (the view exposes no event for this)
            await asyncio.sleep(0.01)
    assert view._reads == {}
    assert view.reads == 2
