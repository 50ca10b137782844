"""Failed-attempt limits shared by every relay process, kept in the store.

Each counted attempt is one row of `failed_attempts` (key, expiry).  Keys are
strings like `login:acct:<id>`, `login:src:<ip>` or `bind:dev:<serial>`: the
limiter's scope, then the caller's key.  Because the rows live in the store,
every relay process on one database sees the same counters (N processes allow
the same attempts as one).

An attempt is counted *before* its secret is verified (`begin_attempt`):
under a per-key lock (PostgreSQL advisory locks; SQLite's `BEGIN IMMEDIATE`
serialises writers anyway) it checks every key and, if none is over its
limit, inserts one row per key.  So attempts racing each other, on one relay
or several, can never pass the limit together.  A success then forgives the
attempt (`forgive_attempt` deletes its rows); a failure leaves them counted.
Storage is bounded: a key never holds more than `limit` live rows (an insert
happens only below the limit) and its expired rows are dropped when it is next
checked; the relay's maintenance round purges the rest (`purge_expired_failures`).

Every call takes the caller's connection; a store outage is `StoreUnavailable`
(the store's boundary), never a pass.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from nvrshare.relay.errors import RateLimited
from nvrshare.relay.store import schema

__all__ = [
    "Attempt",
    "LimitCheck",
    "SharedLimiter",
    "begin_attempt",
    "forgive_attempt",
    "purge_expired_failures",
]

_MAX_KEY = schema.FAILED_ATTEMPT_KEY


def _stored_key(scope: str, key: str) -> str:
    full = f"{scope}:{key}"
    if len(full) <= _MAX_KEY:
        return full
    # Too long for the column: a digest keeps distinct keys distinct.
    return f"{scope}:#{hashlib.sha256(key.encode('utf-8')).hexdigest()}"


class SharedLimiter:
    """At most `limit` counted failures per key within any `window` seconds.

    `scope` (e.g. `login`, `bind`) prefixes every key so limiters sharing the
    table never share counters.
    """

    def __init__(self, *, scope: str, limit: int, window: float) -> None:
        self.scope = scope
        self.limit = limit
        self.window = window

    def stored_keys(self, keys: Iterable[str]) -> list[str]:
        return [_stored_key(self.scope, key) for key in keys]

    def wait(self, expiries: Sequence[float], now: float) -> int:
        """Seconds until a key whose live failures expire at `expiries` (newest first) may try."""
        if len(expiries) < self.limit:
            return 0
        # The limit-th newest failure is the one that must leave the window.
        return max(1, math.ceil(expiries[self.limit - 1] - now))

    async def retry_after(self, conn: AsyncConnection, *keys: str, now: float) -> int:
        """Seconds until every one of `keys` may try again (0: they may try now)."""
        found = await _expiries(conn, self.stored_keys(keys))
        live = ([at for at in times if at > now] for times in found.values())
        return max((self.wait(times, now) for times in live), default=0)

    async def check(
        self, conn: AsyncConnection, *keys: str, now: float, what: str = "attempts"
    ) -> None:
        """Raise `RateLimited` (with `retry_after` ≥ 1) if any of `keys` is over its limit."""
        wait = await self.retry_after(conn, *keys, now=now)
        if wait:
            raise RateLimited(f"too many failed {what}; try again in {wait} s", retry_after=wait)

    async def reset(self, conn: AsyncConnection, *keys: str) -> None:
        """Forget every failure of `keys` (after a success)."""
        table = schema.failed_attempts
        await conn.execute(delete(table).where(table.c.key.in_(self.stored_keys(keys))))


@dataclass(frozen=True, kw_only=True, slots=True)
class LimitCheck:
    """One key to check and count: `what` names the attempts in the refusal."""

    limiter: SharedLimiter
    key: str
    what: str = "attempts"


@dataclass(frozen=True, slots=True)
class Attempt:
    """An attempt counted in advance: its row in `failed_attempts` for each key."""

    ids: tuple[int, ...]


async def begin_attempt(
    conn: AsyncConnection, checks: Sequence[LimitCheck], *, now: float
) -> Attempt:
    """Count one attempt against every key, or raise `RateLimited` and count nothing.

    Call it in a writing transaction before verifying the secret; the checks
    run in order (the first key over its limit names the refusal).
    """
    table = schema.failed_attempts
    stored = [check.limiter.stored_keys([check.key])[0] for check in checks]
    if conn.dialect.name == "postgresql":
        # Sorted, so two attempts sharing keys take their locks in one order.
        for key in sorted(set(stored)):
            await conn.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(key, 0))))
    expiries = await _expiries(conn, stored)
    if any(at <= now for times in expiries.values() for at in times):
        # Rare (a key's first attempt after a window): drop them so a key stays small.
        await conn.execute(
            delete(table).where(and_(table.c.key.in_(stored), table.c.expires_at <= now))
        )
    live = {key: [at for at in times if at > now] for key, times in expiries.items()}
    for check, key in zip(checks, stored, strict=True):
        wait = check.limiter.wait(live.get(key, ()), now)
        if wait:
            message = f"too many failed {check.what}; try again in {wait} s"
            raise RateLimited(message, retry_after=wait)
    if not checks:
        return Attempt(())
    rows = [
        {"key": key, "expires_at": now + check.limiter.window}
        for check, key in zip(checks, stored, strict=True)
    ]
    inserted = await conn.execute(table.insert().values(rows).returning(table.c.id))
    return Attempt(tuple(int(row_id) for row_id in inserted.scalars()))


async def forgive_attempt(
    conn: AsyncConnection, attempt: Attempt, *, reset: Iterable[LimitCheck] = ()
) -> None:
    """The attempt succeeded: it no longer counts, and the `reset` keys lose every failure."""
    table = schema.failed_attempts
    cleared = [check.limiter.stored_keys([check.key])[0] for check in reset]
    await conn.execute(
        delete(table).where(or_(table.c.id.in_(attempt.ids), table.c.key.in_(cleared)))
    )


async def _expiries(conn: AsyncConnection, keys: list[str]) -> dict[str, list[float]]:
    """The failures of `keys`, expired or not: their expiry times, newest first."""
    table = schema.failed_attempts
    rows = await conn.execute(
        select(table.c.key, table.c.expires_at)
        .where(table.c.key.in_(keys))
        .order_by(table.c.key, table.c.expires_at.desc())
    )
    found: dict[str, list[float]] = {}
    for key, expires_at in rows:
        found.setdefault(key, []).append(expires_at)
    return found


async def purge_expired_failures(conn: AsyncConnection, *, now: float) -> int:
    """Delete every expired failure row (the maintenance round); returns how many."""
    table = schema.failed_attempts
    result = await conn.execute(delete(table).where(table.c.expires_at <= now))
    return int(result.rowcount or 0)
