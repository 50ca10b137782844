"""The share model, service level, against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from nvrshare.protocol.permissions import ALL_PERMISSIONS, Permission
from nvrshare.relay.errors import (
    AccountNotFound,
    Conflict,
    CrossRegionShare,
    DeviceNotFound,
    Forbidden,
    InvalidRequest,
    NotFound,
    SelfShare,
    ShareExists,
)
from nvrshare.relay.services import RecipientKind, RecipientRef, ShareChanged, ShareChangeKind
from nvrshare.relay.services.audit import AuditAction, entries_for_device
from nvrshare.relay.services.models import ShareState
from tests.relay.conftest import World

LV, PB, PTZ = Permission.LIVE_VIEW, Permission.PLAYBACK, Permission.PTZ


def to(kind: str, value: str) -> RecipientRef:
    return RecipientRef(kind=RecipientKind(kind), value=value)


@pytest.fixture
async def cast(world: World) -> tuple:
    alice = await world.services.accounts.register(
        email="alice@example.com", name="alice", phone="+15550000001", password="p" * 10
    )
    bob = await world.services.accounts.register(
        email="bob@example.com", name="bob", phone="+15550000002", password="p" * 10
    )
    serial = await world.owned_device(alice, "SN1")
    return alice, bob, serial


async def _epoch(world: World, serial: str) -> int:
    grant_set = await world.services.devices.grant_set_for(serial)
    assert grant_set is not None
    return grant_set.share_epoch


@pytest.mark.parametrize(
    ("kind", "value"), [("email", "BOB@example.com"), ("phone", "+1 555 000 0002"), ("name", "Bob")]
)
async def test_share_by_email_phone_or_name(
    world: World, cast: tuple, kind: str, value: str
) -> None:
    alice, bob, serial = cast
    share = await world.services.shares.create(
        alice, serial=serial, recipient=to(kind, value), permissions={1: LV | PB}
    )
    assert share.recipient.id == bob.id
    assert share.state is ShareState.PENDING
    assert share.permissions == {1: LV | PB}


async def test_share_results_account_missing(world: World, cast: tuple) -> None:
    alice, _bob, serial = cast
    with pytest.raises(AccountNotFound, match="doesn't exist"):
        await world.services.shares.create(
            alice, serial=serial, recipient=to("email", "nobody@example.com"), permissions={1: LV}
        )
    assert (await world.services.shares.device_shares(alice, serial)).shares == ()


async def test_cross_region_and_self_share_are_refused(world: World, cast: tuple) -> None:
    alice, _bob, serial = cast
    await world.services.accounts.register(name="yank", password="p" * 10, region="NA")
    with pytest.raises(CrossRegionShare, match="cross-regional share is not allowed"):
        await world.services.shares.create(
            alice, serial=serial, recipient=to("name", "yank"), permissions={1: LV}
        )
    with pytest.raises(SelfShare):
        await world.services.shares.create(
            alice, serial=serial, recipient=to("name", "alice"), permissions={1: LV}
        )


@pytest.mark.parametrize("matrix", [{}, {1: Permission.NONE}, {9: LV}, {0: LV}])
async def test_bad_matrices_are_refused(world: World, cast: tuple, matrix: dict) -> None:
    alice, _bob, serial = cast
    with pytest.raises(InvalidRequest):
        await world.services.shares.create(
            alice, serial=serial, recipient=to("name", "bob"), permissions=matrix
        )


async def test_full_recipient_flow(world: World, cast: tuple) -> None:
    alice, bob, serial = cast
    shares = world.services.shares
    share = await shares.create(
        alice, serial=serial, recipient=to("name", "bob"),
        permissions={1: LV, 2: LV | PB | PTZ}, remark="the neighbour",
    )  # fmt: skip
    assert await shares.pending_count(bob) == 1
    pending = (await shares.list_received(bob, state=ShareState.PENDING)).items
    assert [p.id for p in pending] == [share.id]
    assert not hasattr(pending[0], "remark")
    assert pending[0].sharer.id == alice.id
    assert (pending[0].ip, pending[0].port, pending[0].online) == ("192.0.2.10", 8000, True)
    await shares.accept(bob, share.id)
    assert await shares.pending_count(bob) == 0
    with pytest.raises(Conflict):
        await shares.accept(bob, share.id)
    await shares.rename_received(bob, share.id, "Alice's gate")
    received = (await shares.list_received(bob)).items
    assert received[0].alias == "Alice's gate"
    assert received[0].state is ShareState.ACCEPTED
    # The owner's alias and the recipient's alias are independent.
    assert (await world.services.devices.get_owned(alice, serial)).alias is None
    grant_set = await world.services.devices.grant_set_for(serial)
    assert grant_set is not None
    assert grant_set.accounts[bob.id] == {1: LV, 2: LV | PB | PTZ}
    await shares.delete_received(bob, share.id)
    assert (await shares.list_received(bob)).items == ()
    assert (await shares.device_shares(alice, serial)).shares == ()


async def test_reject_then_reshare(world: World, cast: tuple) -> None:
    alice, bob, serial = cast
    shares = world.services.shares
    share = await shares.create(alice, serial=serial, recipient=to("name", "bob"),
                                permissions={1: LV})  # fmt: skip
    await shares.reject(bob, share.id)
    owner_view = (await shares.device_shares(alice, serial)).shares
    assert [s.state for s in owner_view] == [ShareState.REJECTED]
    assert (await shares.list_received(bob)).items == ()
    again = await shares.create(alice, serial=serial, recipient=to("name", "bob"),
                                permissions={2: PB})  # fmt: skip
    assert again.id == share.id
    assert again.state is ShareState.PENDING
    assert again.permissions == {2: PB}
    with pytest.raises(ShareExists):
        await shares.create(alice, serial=serial, recipient=to("name", "bob"),
                            permissions={1: LV})  # fmt: skip


async def test_owner_listing_edit_and_remark(world: World, cast: tuple) -> None:
    alice, bob, serial = cast
    carol = await world.account("carol")
    shares = world.services.shares
    s_bob = await shares.create(alice, serial=serial, recipient=to("name", "bob"),
                                permissions={1: LV}, remark="bob from next door")  # fmt: skip
    await shares.create(alice, serial=serial, recipient=to("name", "carol"), permissions={2: LV})
    await shares.accept(bob, s_bob.id)
    page = await shares.list_for_owner(alice)
    assert [d.device.serial for d in page.items] == [serial]
    states = {s.recipient.id: (s.state, s.remark) for s in page.items[0].shares}
    assert states == {
        bob.id: (ShareState.ACCEPTED, "bob from next door"),
        carol.id: (ShareState.PENDING, None),
    }
    epoch = await _epoch(world, serial)
    edited = await shares.update(alice, s_bob.id, permissions={1: LV | PB, 3: Permission.ALARM})
    assert edited.permissions == {1: LV | PB, 3: Permission.ALARM}
    assert await _epoch(world, serial) == epoch + 1
    edited = await shares.update(alice, s_bob.id, remark=None)
    assert edited.remark is None
    assert await _epoch(world, serial) == epoch + 1  # remarks change no access
    with pytest.raises(InvalidRequest):
        await shares.update(alice, s_bob.id)


async def test_stop_sharing_one_several_all(world: World, cast: tuple) -> None:
    alice, bob, serial = cast
    others = [await world.account(f"user{i}") for i in range(3)]
    shares = world.services.shares
    created = {}
    for account in (bob, *others):
        share = await shares.create(alice, serial=serial, recipient=to("account_id", account.id),
                                    permissions={1: LV})  # fmt: skip
        created[account.id] = share
    await shares.accept(bob, created[bob.id].id)
    with world.services.events.subscribe() as events:
        await shares.revoke(alice, created[bob.id].id)
        event = events.get_nowait()
    assert isinstance(event, ShareChanged)
    assert event.kind is ShareChangeKind.REVOKED
    assert event.revoked == (bob.id,)
    grant_set = await world.services.devices.grant_set_for(serial)
    assert grant_set is not None
    assert bob.id not in grant_set.accounts
    assert bob.id in {a for a, _ in grant_set.revoked}
    # Several, all or nothing.
    with pytest.raises(NotFound):
        await shares.revoke_accounts(alice, serial, [others[0].id, bob.id])
    assert len((await shares.device_shares(alice, serial)).shares) == 3
    assert await shares.revoke_accounts(alice, serial, [others[0].id, others[1].id]) == 2
    assert await shares.revoke_accounts(alice, serial, None) == 1
    assert (await shares.device_shares(alice, serial)).shares == ()
    assert await shares.revoke_accounts(alice, serial, None) == 0


async def test_history_and_delete_recipient(world: World, cast: tuple) -> None:
    alice, bob, serial = cast
    second = await world.owned_device(alice, "SN2")
    carol = await world.account("carol")
    shares = world.services.shares
    await shares.create(alice, serial=serial, recipient=to("name", "carol"), permissions={1: LV})
    world.clock.advance(10)
    s1 = await shares.create(alice, serial=serial, recipient=to("name", "bob"),
                             permissions={1: LV})  # fmt: skip
    s2 = await shares.create(alice, serial=second, recipient=to("name", "bob"),
                             permissions={1: LV})  # fmt: skip
    await shares.accept(bob, s1.id)
    await shares.revoke(alice, s2.id)
    first = await shares.history(alice, limit=1)
    assert [e.account.id for e in first.items] == [bob.id]
    rest = await shares.history(alice, limit=1, cursor=first.next_cursor)
    assert [e.account.id for e in rest.items] == [carol.id]
    assert rest.next_cursor is None
    # Quick re-share from the history, by account id.
    await shares.create(alice, serial=second, recipient=to("account_id", bob.id),
                        permissions={2: LV})  # fmt: skip
    assert await shares.delete_recipient(alice, bob.id) == 2
    assert [e.account.id for e in (await shares.history(alice)).items] == [carol.id]
    assert (await shares.list_received(bob)).items == ()
    with pytest.raises(NotFound):
        await shares.delete_recipient(alice, bob.id)


async def test_every_share_change_bumps_the_epoch_and_is_audited(
    world: World, cast: tuple
) -> None:
    alice, bob, serial = cast
    shares = world.services.shares
    epochs = [await _epoch(world, serial)]
    share = await shares.create(alice, serial=serial, recipient=to("name", "bob"),
                                permissions={1: LV})  # fmt: skip
    epochs.append(await _epoch(world, serial))
    await shares.accept(bob, share.id)
    epochs.append(await _epoch(world, serial))
    await shares.update(alice, share.id, permissions={1: LV | PB})
    epochs.append(await _epoch(world, serial))
    await shares.revoke(alice, share.id)
    epochs.append(await _epoch(world, serial))
    assert epochs == sorted(set(epochs))
    async with world.services.context.store.transaction() as conn:
        entries = await entries_for_device(conn, serial)
    actions = [e.action for e in entries]
    for action in (AuditAction.SHARE_CREATED, AuditAction.SHARE_ACCEPTED,
                   AuditAction.SHARE_UPDATED, AuditAction.SHARE_REVOKED):  # fmt: skip
        assert action in actions
    revoked = next(e for e in entries if e.action is AuditAction.SHARE_REVOKED)
    assert (revoked.actor_id, revoked.subject_id) == (alice.id, bob.id)
    assert revoked.at == world.clock()


async def test_recipient_cannot_act_as_owner(world: World, cast: tuple) -> None:
    alice, bob, serial = cast
    await world.account("carol")
    shares = world.services.shares
    share = await shares.create(alice, serial=serial, recipient=to("name", "bob"),
                                permissions={1: LV}, remark="secret note")  # fmt: skip
    await shares.accept(bob, share.id)
    with pytest.raises(Forbidden):
        await shares.create(bob, serial=serial, recipient=to("name", "carol"), permissions={1: LV})
    with pytest.raises(Forbidden):
        await shares.update(bob, share.id, permissions={1: ALL_PERMISSIONS})
    with pytest.raises(Forbidden):
        await shares.revoke(bob, share.id)
    with pytest.raises(Forbidden):
        await shares.device_shares(bob, serial)
    with pytest.raises(Forbidden):
        await shares.revoke_accounts(bob, serial, None)
    # ...and the owner cannot act as the recipient.
    with pytest.raises(NotFound):
        await shares.accept(alice, share.id)
    assert (await shares.device_shares(alice, serial)).shares[0].permissions == {1: LV}


async def test_strangers_see_nothing(world: World, cast: tuple) -> None:
    alice, _bob, serial = cast
    mallory = await world.account("mallory")
    shares = world.services.shares
    share = await shares.create(alice, serial=serial, recipient=to("name", "bob"),
                                permissions={1: LV})  # fmt: skip
    for call in (
        shares.device_shares(mallory, serial),
        shares.create(mallory, serial=serial, recipient=to("name", "bob"), permissions={1: LV}),
    ):
        with pytest.raises(DeviceNotFound):
            await call
    for call in (
        shares.revoke(mallory, share.id),
        shares.accept(mallory, share.id),
        shares.reject(mallory, share.id),
        shares.delete_received(mallory, share.id),
        shares.rename_received(mallory, share.id, "x"),
    ):
        with pytest.raises(NotFound):
            await call
    assert (await shares.list_for_owner(mallory)).items == ()
    assert (await shares.list_received(mallory)).items == ()
    with pytest.raises(DeviceNotFound):
        await world.services.tokens.issue(mallory, serial)


async def test_share_by_scanned_qr(world: World, cast: tuple) -> None:
    alice, bob, serial = cast
    payload, _ = world.services.accounts.qr_payload(bob)
    share = await world.services.shares.create(
        alice, serial=serial, recipient=to("qr", payload), permissions={1: LV}
    )
    assert share.recipient.id == bob.id


async def test_concurrent_shares_to_one_account(world: World, cast: tuple) -> None:
    alice, _bob, serial = cast
    shares = world.services.shares
    results = await asyncio.gather(
        *(shares.create(alice, serial=serial, recipient=to("name", "bob"), permissions={1: LV})
          for _ in range(3)),
        return_exceptions=True,
    )  # fmt: skip
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, ShareExists) for r in results if isinstance(r, BaseException))
    assert len((await shares.device_shares(alice, serial)).shares) == 1


async def test_received_shares_page_newest_first(world: World, cast: tuple) -> None:
    alice, bob, _serial = cast
    shares = world.services.shares
    serials = [await world.owned_device(alice, f"SNP{i}") for i in range(5)]
    for i, serial in enumerate(serials):
        world.clock.advance(1 if i != 3 else 0)  # two shares at the same instant
        await shares.create(alice, serial=serial, recipient=to("name", "bob"),
                            permissions={1: LV})  # fmt: skip
    seen, cursor = [], None
    while True:
        page = await shares.list_received(bob, limit=2, cursor=cursor)
        seen += [item.device_serial for item in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5
    assert seen[0] == "SNP4"
    assert seen[-1] == "SNP0"


async def test_hostile_ids_never_reach_sql(world: World, cast: tuple) -> None:
    """NUL bytes and odd text in ids are refused before the store (PostgreSQL rejects NUL)."""
    alice, bob, serial = cast
    shares, devices = world.services.shares, world.services.devices
    for bad in ("\x00", "a\x00b", "é" * 10, "x" * 33, ""):
        with pytest.raises(NotFound):
            await shares.revoke(alice, bad)
        with pytest.raises(NotFound):
            await shares.accept(bob, bad)
        with pytest.raises(InvalidRequest):
            await shares.delete_recipient(alice, bad)
        with pytest.raises(InvalidRequest):
            await shares.revoke_accounts(alice, serial, [bad])
        with pytest.raises(InvalidRequest):
            await shares.create(alice, serial=serial, recipient=to("account_id", bad),
                                permissions={1: LV})  # fmt: skip
        with pytest.raises(DeviceNotFound):
            await shares.create(alice, serial=bad, recipient=to("name", "bob"),
                                permissions={1: LV})  # fmt: skip
        with pytest.raises(DeviceNotFound):
            await devices.rename(alice, bad, "x")
        with pytest.raises(DeviceNotFound):
            await devices.remove(alice, bad)
        with pytest.raises(DeviceNotFound):
            await world.services.tokens.issue(alice, bad)
        assert await devices.grant_set_for(bad) is None
        assert not await devices.set_online(bad, True, world.clock())


async def test_concurrent_share_changes_each_get_their_own_epoch(
    world: World, cast: tuple
) -> None:
    alice, _bob, serial = cast
    recipients = [await world.account(f"peer{i:02d}") for i in range(12)]
    shares = world.services.shares
    before = await _epoch(world, serial)
    with world.services.events.subscribe() as events:
        results = await asyncio.gather(
            *(shares.create(alice, serial=serial, recipient=to("account_id", r.id),
                            permissions={1: LV}) for r in recipients),
            *(shares.list_for_owner(alice) for _ in range(6)),
        )  # fmt: skip
        published = []
        while (event := events.get_nowait()) is not None:
            published.append(event)
    assert len([r for r in results if hasattr(r, "recipient")]) == 12
    assert await _epoch(world, serial) == before + 12
    assert sorted(e.share_epoch for e in published) == list(range(before + 1, before + 13))
