"""The relay's in-process event bus: what changed, for the registry and data plane.

Services publish only after their transaction committed, so a subscriber never
hears about a change that was rolled back.  Each subscriber has a bounded
queue; one that falls behind does not slow the services down: its queue is
cleared and it receives `EventsLost` next, meaning "resynchronise from the
store" (for a grant publisher: republish every device's grant set).

Events of concurrent transactions may arrive out of commit order; each carries
the device's `grant_version` (and `share_epoch`) after its change, so a
consumer keeps the highest it has seen, or simply rereads the store.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass

__all__ = [
    "DeviceBound",
    "DeviceRegistered",
    "DeviceRemoved",
    "EventBus",
    "EventsLost",
    "RelayEvent",
    "ShareChangeKind",
    "ShareChanged",
    "Subscription",
]


class ShareChangeKind(enum.StrEnum):
    CREATED = "created"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    UPDATED = "updated"
    REVOKED = "revoked"
    DELETED_BY_RECIPIENT = "deleted_by_recipient"


@dataclass(frozen=True, kw_only=True, slots=True)
class ShareChanged:
    """Shares of one device changed; `revoked` lists accounts that lost access."""

    device_serial: str
    share_epoch: int
    grant_version: int
    kind: ShareChangeKind
    account_ids: tuple[str, ...]
    revoked: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class DeviceRegistered:
    device_serial: str
    grant_version: int


@dataclass(frozen=True, kw_only=True, slots=True)
class DeviceBound:
    device_serial: str
    owner_id: str
    share_epoch: int
    grant_version: int


@dataclass(frozen=True, kw_only=True, slots=True)
class DeviceRemoved:
    """The owner removed the device: the owner and every recipient lost access."""

    device_serial: str
    share_epoch: int
    grant_version: int
    revoked: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class EventsLost:
    """The subscriber fell behind and events were dropped: resynchronise."""

    dropped: int


RelayEvent = ShareChanged | DeviceRegistered | DeviceBound | DeviceRemoved


class Subscription:
    """One subscriber's queue; iterate it with `async for`."""

    def __init__(self, bus: EventBus, max_queue: int) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[RelayEvent | EventsLost] = asyncio.Queue(max_queue)
        self._dropped = 0

    def _offer(self, event: RelayEvent) -> None:
        if self._dropped:
            self._dropped += 1
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._dropped = self._queue.qsize() + 1
            while not self._queue.empty():
                self._queue.get_nowait()

    async def get(self) -> RelayEvent | EventsLost:
        """The next event; `EventsLost` after an overflow."""
        if self._dropped and self._queue.empty():
            lost, self._dropped = EventsLost(dropped=self._dropped), 0
            return lost
        return await self._queue.get()

    def get_nowait(self) -> RelayEvent | EventsLost | None:
        if self._dropped and self._queue.empty():
            lost, self._dropped = EventsLost(dropped=self._dropped), 0
            return lost
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def close(self) -> None:
        self._bus._subscribers.discard(self)

    def __aiter__(self) -> AsyncIterator[RelayEvent | EventsLost]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[RelayEvent | EventsLost]:
        while True:
            yield await self.get()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class EventBus:
    """Fan-out of relay events to any number of subscribers (no I/O, never blocks)."""

    def __init__(self, *, max_queue: int = 1024) -> None:
        self._max_queue = max_queue
        self._subscribers: set[Subscription] = set()

    def subscribe(self) -> Subscription:
        subscription = Subscription(self, self._max_queue)
        self._subscribers.add(subscription)
        return subscription

    def publish(self, event: RelayEvent) -> None:
        for subscription in list(self._subscribers):
            subscription._offer(event)
