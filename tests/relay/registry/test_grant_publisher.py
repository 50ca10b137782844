"""GrantPublisher: coalescing, per-device ordering across workers, retry after failure."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from nvrshare.protocol.codec import decode_signed
from nvrshare.protocol.messages import GrantSet
from nvrshare.protocol.permissions import Permission
from nvrshare.protocol.signing import CONTEXT_GRANT_SET, KeyRing, SigningKey
from nvrshare.relay.registry import GrantPublisher
from tests.relay.registry.harness import eventually


@dataclass
class Data:
    device_serial: str
    version: int
    share_epoch: int = 1
    accounts: dict = field(default_factory=lambda: {"alice": {1: Permission.LIVE_VIEW}})
    revoked: tuple = ()
    validity: dict = field(default_factory=lambda: {"alice": (10, 20)})


class Directory:
    """A store whose reads answer as of when they began, and wait for `gate`.

    A test closes the gate to keep a read in flight while it sends more requests.
    """

    def __init__(self) -> None:
        self.versions: dict[str, int] = {}
        self.reads = 0
        self.fail_once: set[str] = set()
        self.gate = asyncio.Event()
        self.gate.set()

    async def grant_set_for(self, serial: str, *, now: float | None = None) -> Data | None:
        self.reads += 1
        version = self.versions.get(serial)
        await self.gate.wait()
        if serial in self.fail_once:
            self.fail_once.discard(serial)
            raise ConnectionError("store unavailable")
        return None if version is None else Data(device_serial=serial, version=version)

    async def grant_sets_for(self, serials: list[str], *, now: float | None = None) -> dict:
        found = {serial: await self.grant_set_for(serial) for serial in serials}
        return {serial: data for serial, data in found.items() if data is not None}


class Keys:
    signing_key = SigningKey.generate()
    key_ring = KeyRing([signing_key.public_key])


async def test_many_requests_coalesce_and_each_device_publishes_in_order() -> None:
    directory = Directory()
    published: list[tuple[str, int]] = []

    async def publish(serial: str, kind: object, payload: bytes, retain: bool) -> None:
        assert retain
        message, _kid = decode_signed(payload, Keys.key_ring, context=CONTEXT_GRANT_SET)
        assert isinstance(message, GrantSet)
        assert message.grants[0].valid_until == 20
        published.append((serial, message.version))

    publisher = GrantPublisher(directory, Keys(), publish, clock=lambda: 1000.0)
    workers = [asyncio.create_task(publisher.run()) for _ in range(4)]
    try:
        # A worker takes A, B and C and stays in A's read of version 1 ...
        directory.gate.clear()
        for serial in ("A", "B", "C"):
            directory.versions[serial] = 1
            publisher.request(serial)
        await eventually(lambda: directory.reads == 1, 10)
        # ... while the devices change four more times: the requests coalesce,
        # and the idle workers leave the devices in flight alone.
        for version in range(2, 6):
            for serial in ("A", "B", "C"):
                directory.versions[serial] = version
                publisher.request(serial)
            for _ in range(5):
                await asyncio.sleep(0)  # let the idle workers look
        assert directory.reads == 1
        directory.gate.set()
        directory.fail_once.add("D")
        directory.versions["D"] = 1
        publisher.request("D")
        publisher.request("UNKNOWN")

        def done() -> bool:
            latest = {s for s, v in published if v == 5}
            return latest == {"A", "B", "C"} and ("D", 1) in published

        await eventually(done, 15)
    finally:
        for worker in workers:
            worker.cancel()
        for worker in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
    for serial in "ABC":
        versions = [v for s, v in published if s == serial]
        assert versions == sorted(versions), versions
        assert len(versions) < 5  # coalesced
    assert directory.reads < 5 * 3 + 3


async def test_one_devices_bad_data_holds_back_only_that_device() -> None:
    class Poisoned(Directory):
        async def grant_set_for(self, serial: str, *, now: float | None = None) -> Data | None:
            if serial == "BAD":
                raise ValueError("a malformed share row")
            return await super().grant_set_for(serial, now=now)

    directory = Poisoned()
    published: list[str] = []

    async def publish(serial: str, kind: object, payload: bytes, retain: bool) -> None:
        published.append(serial)

    publisher = GrantPublisher(directory, Keys(), publish, clock=lambda: 1000.0)
    for serial in ("A", "BAD", "C"):
        directory.versions[serial] = 1
        publisher.request(serial)
    worker = asyncio.create_task(publisher.run())
    try:
        await eventually(lambda: sorted(published) == ["A", "C"], 15)
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
    assert "BAD" not in published
