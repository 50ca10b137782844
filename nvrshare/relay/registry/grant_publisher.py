"""Building, signing and publishing each device's grant set.

`GrantPublisher.request(serial)` marks a device dirty; workers (`run()`
tasks) take dirty devices, read their current grant data, sign a `GrantSet`
with the relay's newest key and publish it *retained* on `down/grants`, so a
device that connects later gets it at once.  Requests for one device
coalesce, and no device is handled by two workers at once, so its sets go
out in version order (a retained older set after a newer one would look like
a rollback to the device).  `watch(events)` turns the relay's share events
(revocations included) into requests: a share change reaches the device
within one database read, one signature and one publish, well under a second.

A device that registers again usually already has its current set: the
broker retained it and delivered it when the device subscribed.  `ensure`
republishes only when the broker may not hold it: the publisher mirrors what
the broker retains (`note_retained`, fed from the registry's subscription to
every device's `down/grants`, which the broker answers with all retained
sets; plus every set published here).  A new broker connection empties the
mirror (`broker_connected`): a restarted broker may have lost them.  A set
republished because the broker lost it goes out byte for byte as before
(a device refuses the same version with other bytes, e.g. a new issued_at).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from nvrshare.protocol.codec import decode_signed, encode_signed
from nvrshare.protocol.errors import ProtocolError
from nvrshare.protocol.messages import AccountGrant, GrantSet
from nvrshare.protocol.signing import CONTEXT_GRANT_SET
from nvrshare.protocol.topics import TopicKind
from nvrshare.relay.registry.interfaces import DeviceDirectory, EventSource, GrantData, RelayKeys

__all__ = ["GrantPublisher", "build_grant_set", "raise_if_cancelling"]

Publish = Callable[[str, TopicKind, bytes, bool], Awaitable[None]]
Clock = Callable[[], float]
MAX_DIRTY = 100_000
MAX_MIRRORED = 1_000_000
MAX_SENT = 100_000
BATCH = 64
# What identifies a retained set for `ensure`: version, signing key id, key ring.
Fingerprint = tuple[int, str, tuple[bytes, ...]]


def raise_if_cancelling() -> None:
    """Re-raise a cancellation that a callee swallowed.

    SQLAlchemy's asyncio bridge can absorb a `CancelledError` delivered while
    a query runs; without this check a cancelled loop would go back to
    waiting and its owner's shutdown would hang.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def build_grant_set(data: GrantData, keys: RelayKeys, now: float) -> GrantSet:
    """The protocol message for `data`, listing every key of the relay's ring."""
    # Optional extras of the relay's GrantSetData: validity periods (installer
    # grants) and the owner's service switch.
    validity: Mapping[str, tuple[int, int]] = getattr(data, "validity", None) or {}
    grants = tuple(
        AccountGrant(
            account_id=account,
            channels=dict(matrix),
            valid_from=validity[account][0] if account in validity else None,
            valid_until=validity[account][1] if account in validity else None,
        )
        for account, matrix in sorted(data.accounts.items())
        if matrix
    )
    return GrantSet(
        device_serial=data.device_serial,
        version=data.version,
        share_epoch=data.share_epoch,
        issued_at=int(now),
        service_enabled=bool(getattr(data, "service_enabled", True)),
        grants=grants,
        revoked_token_ids=tuple(getattr(data, "revoked_token_ids", ())),
        revoked_accounts=tuple(sorted({account for account, _epoch in data.revoked})),
        relay_public_keys=tuple(keys.key_ring.raw_keys()),
    )


class GrantPublisher:
    """Publishes grant sets for devices marked dirty; see the module docstring."""

    def __init__(
        self,
        directory: DeviceDirectory,
        keys: RelayKeys,
        publish: Publish,
        *,
        clock: Clock,
        logger: logging.Logger | None = None,
    ) -> None:
        self._directory = directory
        self._keys = keys
        self._publish = publish
        self._clock = clock
        self._log = logger or logging.getLogger("nvrshare.relay.registry.grants")
        self._dirty: dict[str, None] = {}  # insertion-ordered set
        self._wakeup = asyncio.Event()
        self._in_flight: set[str] = set()
        self._known: set[str] = set()
        self._retained: dict[str, Fingerprint] = {}
        # The last set published per device (bounded), to republish it byte for byte.
        self._sent: dict[str, tuple[Fingerprint, GrantSet, bytes]] = {}
        self._connection = 0
        self.published = 0
        self.skipped = 0

    def request(self, serial: str) -> None:
        """Publish `serial`'s grant set soon (coalesced with pending requests)."""
        if len(self._dirty) >= MAX_DIRTY:
            self._log.error("grant publisher backlog full; dropping request for %s", serial)
            return
        self._dirty[serial] = None
        self._known.add(serial)
        self._wakeup.set()

    def ensure(self, serial: str, version: int) -> None:
        """Have the broker retain `serial`'s set of `version`: request it unless it does."""
        if self._retains(serial, version):
            self.skipped += 1
            return
        self.request(serial)

    def _retains(self, serial: str, version: int) -> bool:
        """Whether the broker holds `serial`'s set of `version`, as this relay would sign it."""
        return self._retained.get(serial) == self._fingerprint(version)

    def _fingerprint(self, version: int) -> Fingerprint:
        keys = self._keys
        return (version, keys.signing_key.key_id, tuple(keys.key_ring.raw_keys()))

    def broker_connected(self) -> None:
        """A new broker connection: what the broker retains is unknown until it says."""
        self._connection += 1
        self._retained.clear()

    def note_retained(self, serial: str, payload: bytes) -> None:
        """The broker retains `payload` as `serial`'s grant set (empty: none).

        Only a set that verifies against the relay's key ring and names
        `serial` counts; anything else leaves the device unmirrored, so its
        next `ensure` publishes.
        """
        self._retained.pop(serial, None)
        if not payload:
            return
        try:
            message, key_id = decode_signed(
                payload, self._keys.key_ring, context=CONTEXT_GRANT_SET, accept=(GrantSet,)
            )
        except ProtocolError as exc:
            self._log.warning("retained grant set for %s not understood: %s", serial, exc)
            return
        assert isinstance(message, GrantSet)
        if message.device_serial == serial:
            self._mirror(serial, message, key_id)

    def _mirror(self, serial: str, grant_set: GrantSet, key_id: str) -> None:
        if len(self._retained) >= MAX_MIRRORED:
            self._retained.clear()  # forgetting only costs republishing
        self._retained[serial] = (grant_set.version, key_id, grant_set.relay_public_keys)

    async def run(self) -> None:
        """Drain requests forever; a failed publish is retried after a short pause.

        Several `run()` tasks may share one publisher: a device is never
        handled by two of them at once, so its sets go out in version order.
        A task takes up to `BATCH` waiting devices at once and, when the
        reads their data in one go (one by one if that read fails, so that one
        device's bad data holds back only that device).
        """
        while True:
            raise_if_cancelling()
            serials = self._next_batch()
            if not serials:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            self._in_flight.update(serials)
            try:  # the devices stay in flight until their retry pause is over
                try:
                    failed = await self._publish_batch(serials)
                except Exception:  # a bug (store errors are handled per device): keep going
                    self._log.exception("grant sets for %s not published", serials)
                    failed = serials
                for serial in failed:
                    self._dirty.setdefault(serial, None)
                if failed:
                    await asyncio.sleep(0.5)
            finally:
                self._in_flight.difference_update(serials)
                if self._dirty:
                    self._wakeup.set()

    def _next_batch(self) -> list[str]:
        serials = [serial for serial in self._dirty if serial not in self._in_flight][:BATCH]
        for serial in serials:
            del self._dirty[serial]
        return serials

    async def _publish_batch(self, serials: list[str]) -> list[str]:
        """Publish the devices' sets; the serials whose publish failed (to retry)."""
        connection = self._connection
        found: Mapping[str, GrantData] | None
        try:
            found = await self._directory.grant_sets_for(serials)
        except Exception as exc:
            # One device's data may be what fails the shared read: go one by one,
            # so that only that device waits for a retry, not the whole batch.
            self._log.warning("grant sets read together failed (%s): one by one", exc)
            found = None
        if found is None:
            sends = [self.publish_now(serial) for serial in serials]
        else:
            sends = [self._send(s, found[s], connection) for s in serials if s in found]
            serials = [s for s in serials if s in found]
        # One device each: their publishes may be in flight together (all
        # finished before the devices are released to another task).
        failed = []
        for serial, outcome in zip(
            serials, await asyncio.gather(*sends, return_exceptions=True), strict=True
        ):
            if isinstance(outcome, asyncio.CancelledError):
                raise outcome
            if isinstance(outcome, BaseException):
                self._log.warning("grant set for %s not published: %s", serial, outcome)
                failed.append(serial)
        return failed

    async def publish_now(self, serial: str) -> GrantSet | None:
        """Build, sign and publish `serial`'s grant set; None for an unknown device.

        Also None, publishing nothing, for version 0 (which no device takes)
        and when the broker already retains the set of that version: a device
        holding it would refuse a copy with other bytes (a new `issued_at`),
        and one without it gets the retained copy.
        """
        connection = self._connection
        data = await self._directory.grant_set_for(serial)
        if data is None:
            return None
        return await self._send(serial, data, connection)

    async def _send(self, serial: str, data: GrantData, connection: int) -> GrantSet | None:
        if data.version <= 0:
            # A device only takes a set newer than what it holds (0 at first):
            # a set of version 0 (no channels, no owner yet) would be refused.
            return None
        if self._retains(serial, data.version):
            self.skipped += 1
            return None
        signing_key = self._keys.signing_key
        last = self._sent.get(serial)
        if last is not None and last[0] == self._fingerprint(data.version):
            # The broker lost it: the very same bytes again, which a device
            # holding that version takes as a no-op instead of refusing.
            grant_set, payload = last[1], last[2]
        else:
            grant_set = build_grant_set(data, self._keys, self._clock())
            payload = encode_signed(grant_set, signing_key, CONTEXT_GRANT_SET)
            if len(self._sent) >= MAX_SENT:
                self._sent.pop(next(iter(self._sent)))
            self._sent[serial] = (self._fingerprint(data.version), grant_set, payload)
        self._retained.pop(serial, None)
        await self._publish(serial, TopicKind.DOWN_GRANTS, payload, True)
        if connection == self._connection:  # else it may have gone to the old broker
            self._mirror(serial, grant_set, signing_key.key_id)
        self.published += 1
        self._log.debug("published grant set v%d for %s", grant_set.version, serial)
        return grant_set

    async def watch(self, events: EventSource) -> None:
        """Turn relay events into requests, forever; lost events resync every known device."""
        subscription = events.subscribe()
        try:
            async for event in subscription:
                serial = getattr(event, "device_serial", None)
                if isinstance(serial, str):
                    self.request(serial)
                elif hasattr(event, "dropped"):
                    self._log.warning("missed %s relay events: republishing all", event.dropped)
                    for known in list(self._known):
                        self.request(known)
        finally:
            subscription.close()
