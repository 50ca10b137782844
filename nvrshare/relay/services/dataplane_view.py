"""What the data plane asks the control plane while admitting a session.

`DataPlaneView` implements the data plane's `GrantState` and `DevicePresence`
interfaces (`relay/dataplane/admission.py`) over the store, so wiring is one
line: `DataPlaneView(services.context)`.

Revocation is by share epoch, not by token id: every share change bumps the
device's epoch, and a token carrying an older epoch is refused; tokens live
`token_ttl` seconds (5 minutes by default).  So there is no per-token
revocation list, and `is_token_revoked` answers False for every id.

Caching, and why it cannot widen access.  Admission asks for a device's
epoch and presence on every hello; one store transaction is a thread hop
(milliseconds under load), so one query reads both (epoch, owner, online)
and the answer is kept for at most `max_age` seconds (1 s by default):

- this relay's own changes invalidate at once: every service publishes its
  event on the context's `EventBus` after the commit, and every lookup first
  drains this view's subscription, dropping the entry of each device named
  there (`EventsLost`: every entry), so a share stopped through this relay
  refuses the very next hello;
- another relay process sharing the database (scale-out) changes the epoch
  without our hearing of it: then a token of the old epoch may still be
  admitted here for at most `max_age` seconds.  That cannot widen access on
  the device: the agent re-checks every offered token against its own signed
  grant set (revoked accounts and permissions are gone there as soon as the
  new set arrives), and the relay's `RevocationFollower` closes live sessions
  only on this process's events anyway;
- presence has no event (the registry writes it): a device that went offline
  less than `max_age` ago may still get an offer, which then times out
  instead of being refused at once.  That costs a slower refusal, never
  access.  An offline answer is never kept, so a device that comes back
  online is served at once.

Concurrent lookups of one device share one read (a burst of hellos after
the entry expired costs one round trip), unless a change was heard after
that read began: then the later lookup reads again.  Entries are bounded
(`max_entries`, oldest dropped first) and only serials of tokens whose
signature verified are ever looked up.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from nvrshare.protocol.validation import is_valid_serial
from nvrshare.relay.services.context import ServiceContext
from nvrshare.relay.services.events import EventsLost
from nvrshare.relay.store import schema

__all__ = ["DEFAULT_MAX_AGE", "DataPlaneView"]

# The staleness bound a cached answer may have (see the module docstring).
DEFAULT_MAX_AGE = 1.0
DEFAULT_MAX_ENTRIES = 4096


@dataclass(frozen=True, slots=True)
class _DeviceFacts:
    epoch: int | None  # None: unknown or unbound
    online: bool
    read_at: float


class DataPlaneView:
    """Share epochs and presence from the store, cached for at most `max_age` seconds.

    `max_age=0` disables the cache (every call reads the store).  `clock` is
    monotonic seconds (injectable for tests).  Call `close()` when the view
    is no longer used, to stop following the relay's events.
    """

    def __init__(
        self,
        context: ServiceContext,
        *,
        max_age: float = DEFAULT_MAX_AGE,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_age < 0 or max_entries < 1:
            raise ValueError("max_age must be >= 0 and max_entries >= 1")
        self._ctx = context
        self._max_age = max_age
        self._max_entries = max_entries
        self._clock = clock
        self._facts: OrderedDict[str, _DeviceFacts] = OrderedDict()
        self._changes = 0  # events seen so far: a read that overlapped one is not kept
        # Reads in progress, by serial, with `_changes` when each began.
        self._reads: dict[str, tuple[asyncio.Task[_DeviceFacts], int]] = {}
        # Subscribed before the first read, so no change can fall between.
        self._events = context.events.subscribe() if max_age > 0 else None

    def close(self) -> None:
        """Stop following events; later calls read the store every time."""
        if self._events is not None:
            self._events.close()
            self._events = None
        self._max_age = 0.0
        self._facts.clear()

    async def share_epoch(self, device_serial: str) -> int | None:
        """The device's current share epoch; None if the device is unknown or unbound."""
        if not is_valid_serial(device_serial):
            return None
        return (await self._lookup(device_serial)).epoch

    async def is_token_revoked(self, token_id: bytes) -> bool:
        """Always False: revocation works through the share epoch (see the module doc)."""
        del token_id
        return False

    async def is_online(self, device_serial: str) -> bool:
        """Whether the registry last saw the device online (at most `max_age` ago)."""
        if not is_valid_serial(device_serial):
            return False
        return (await self._lookup(device_serial)).online

    # -- internals ---------------------------------------------------------------------

    def _invalidate(self) -> None:
        events = self._events
        if events is None:
            return
        while (event := events.get_nowait()) is not None:
            self._changes += 1
            if isinstance(event, EventsLost):
                self._facts.clear()
            else:
                self._facts.pop(event.device_serial, None)

    async def _lookup(self, serial: str) -> _DeviceFacts:
        self._invalidate()
        now = self._clock()
        if self._events is None:
            return await self._read(serial, now)
        cached = self._facts.get(serial)
        if cached is not None and now - cached.read_at < self._max_age:
            return cached
        read = self._reads.get(serial)
        if read is None or read[1] != self._changes:  # none, or begun before a change
            read = (asyncio.ensure_future(self._fetch(serial, now)), self._changes)
            self._reads[serial] = read
            read[0].add_done_callback(functools.partial(self._landed, serial, read))
        # Shielded: a caller that gives up (its hello timed out) leaves the read to the others.
        return await asyncio.shield(read[0])

    async def _fetch(self, serial: str, now: float) -> _DeviceFacts:
        changes = self._changes
        facts = await self._read(serial, now)
        # A change committed while we read (seen here or by a concurrent lookup) may or
        # may not be in what we read: use the answer once, but do not keep it.
        self._invalidate()
        # A known device's offline answer is not kept: presence has no event, and a
        # device that comes back must be served at once, not refused for `max_age`.
        keep = facts.online or facts.epoch is None
        if keep and self._changes == changes and self._events is not None:
            self._remember(serial, facts)
        return facts

    def _landed(
        self,
        serial: str,
        read: tuple[asyncio.Task[_DeviceFacts], int],
        _task: asyncio.Task[_DeviceFacts],
    ) -> None:
        if self._reads.get(serial) is read:
            del self._reads[serial]
        if not read[0].cancelled():
            read[0].exception()  # retrieved: a store error nobody waited for is not logged

    async def _read(self, serial: str, now: float) -> _DeviceFacts:
        devices = schema.devices
        async with self._ctx.store.transaction(readonly=True) as conn:
            row = (
                await conn.execute(
                    select(devices.c.share_epoch, devices.c.owner_id, devices.c.online).where(
                        devices.c.serial == serial
                    )
                )
            ).first()
        if row is None:
            return _DeviceFacts(epoch=None, online=False, read_at=now)
        epoch = int(row.share_epoch) if row.owner_id is not None else None
        return _DeviceFacts(epoch=epoch, online=bool(row.online), read_at=now)

    def _remember(self, serial: str, facts: _DeviceFacts) -> None:
        self._facts[serial] = facts
        self._facts.move_to_end(serial)
        while len(self._facts) > self._max_entries:
            self._facts.popitem(last=False)
