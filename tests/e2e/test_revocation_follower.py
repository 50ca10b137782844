"""`RevocationFollower`: control-plane events → data-plane closes (in-process, fakes for both)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from nvrshare.protocol.messages import SessionKind, SessionRequest
from nvrshare.protocol.permissions import Permission
from nvrshare.relay.assembly import RevocationFollower
from nvrshare.relay.dataplane import CloseReason
from nvrshare.relay.errors import StoreUnavailable
from nvrshare.relay.services.events import (
    DeviceRemoved,
    EventsLost,
    ShareChanged,
    ShareChangeKind,
)

LIVE = Permission.LIVE_VIEW


@dataclass
class FakeSession:
    serial: str
    account_id: str
    channel: int
    kind: SessionKind = SessionKind.LIVE_MAIN
    closed: list[CloseReason] = field(default_factory=list)

    @property
    def admission(self) -> Any:
        request = SessionRequest(device_serial=self.serial, channel=self.channel, kind=self.kind)
        claims = SimpleNamespace(device_serial=self.serial, account_id=self.account_id)
        return SimpleNamespace(claims=claims, request=request)

    @property
    def relay(self) -> Any:
        return SimpleNamespace(close=self.closed.append)


class FakePlane:
    def __init__(self, sessions: list[FakeSession]) -> None:
        self.live_sessions = sessions
        self.revoked: list[tuple[str, str | None]] = []

    def revoke(self, serial: str, account_id: str | None = None) -> int:
        self.revoked.append((serial, account_id))
        return 0


class FakeDevices:
    def __init__(self, grants: dict[str, dict[str, dict[int, Permission]]]) -> None:
        self.grants = grants
        self.reads: list[str] = []
        self.fail = False

    async def grant_set_for(self, serial: str) -> Any:
        self.reads.append(serial)
        if self.fail:
            raise StoreUnavailable
        if serial not in self.grants:
            return None
        return SimpleNamespace(accounts=self.grants[serial])


def _follower(
    sessions: list[FakeSession], grants: dict[str, dict[str, dict[int, Permission]]]
) -> tuple[RevocationFollower, FakePlane, FakeDevices]:
    plane, devices = FakePlane(sessions), FakeDevices(grants)
    services = SimpleNamespace(devices=devices)
    follower = RevocationFollower(plane, services, logging.getLogger("test"))  # type: ignore[arg-type]
    return follower, plane, devices


def _changed(serial: str, revoked: tuple[str, ...] = ()) -> ShareChanged:
    return ShareChanged(
        device_serial=serial, share_epoch=2, grant_version=2, kind=ShareChangeKind.UPDATED,
        account_ids=("bob",), revoked=revoked,
    )  # fmt: skip


async def test_revoked_accounts_are_cut_before_the_store_is_read() -> None:
    follower, plane, devices = _follower([], {"SN1": {}})
    await follower.apply(_changed("SN1", revoked=("bob", "carol")))
    assert plane.revoked == [("SN1", "bob"), ("SN1", "carol")]
    assert devices.reads == []  # no live session on SN1: nothing to re-check


async def test_a_permission_edit_closes_only_the_sessions_it_took_away() -> None:
    live = FakeSession("SN1", "bob", 1)
    ptz_only = FakeSession("SN1", "bob", 2)
    other_device = FakeSession("SN2", "bob", 1)
    follower, _, devices = _follower(
        [live, ptz_only, other_device],
        {"SN1": {"bob": {1: LIVE, 2: Permission.PTZ}}, "SN2": {}},
    )
    await follower.apply(_changed("SN1"))
    assert (live.closed, ptz_only.closed, other_device.closed) == ([], [CloseReason.REVOKED], [])
    assert devices.reads == ["SN1"]


async def test_a_removed_device_closes_everything_on_it() -> None:
    session = FakeSession("SN1", "bob", 1)
    follower, plane, _ = _follower([session], {})
    await follower.apply(
        DeviceRemoved(device_serial="SN1", share_epoch=3, grant_version=3, revoked=("bob",))
    )
    assert ("SN1", None) in plane.revoked
    assert session.closed == [CloseReason.REVOKED]  # the re-check finds no device: nothing left


async def test_lost_events_recheck_every_device_with_live_sessions() -> None:
    kept, cut = FakeSession("SN1", "bob", 1), FakeSession("SN2", "eve", 1)
    follower, _, devices = _follower([kept, cut], {"SN1": {"bob": {1: LIVE}}, "SN2": {}})
    await follower.apply(EventsLost(dropped=7))
    assert sorted(devices.reads) == ["SN1", "SN2"]
    assert (kept.closed, cut.closed) == ([], [CloseReason.REVOKED])


async def test_a_busy_store_does_not_stop_the_follower() -> None:
    session = FakeSession("SN1", "bob", 1)
    follower, _, devices = _follower([session], {"SN1": {}})
    devices.fail = True
    with pytest.raises(StoreUnavailable):
        await follower.apply(_changed("SN1"))  # `run` logs this and goes on with the next
    devices.fail = False
    await follower.apply(_changed("SN1"))
    assert session.closed == [CloseReason.REVOKED]
