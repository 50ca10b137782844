"""Failed-attempt limits live in the store: every relay process on one database shares them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event, func, inspect, select
from sqlalchemy.exc import OperationalError

from nvrshare.relay.config import RelayConfig
from nvrshare.relay.errors import Forbidden, RateLimited, StoreUnavailable, Unauthorized
from nvrshare.relay.services import Services
from nvrshare.relay.services.ratelimit import (
    LimitCheck,
    SharedLimiter,
    begin_attempt,
    forgive_attempt,
    purge_expired_failures,
)
from nvrshare.relay.store import MIGRATIONS, Store, schema
from nvrshare.relay.store.migrations import apply_migrations, current_version
from tests.relay.conftest import PASSWORD, FakeClock, World

failed = schema.failed_attempts


@pytest.fixture
async def other(relay_config: RelayConfig, services: Services) -> AsyncIterator[Services]:
    """A second relay process: its own engine and services over the same database."""
    async with Store(relay_config) as second:
        yield Services.build(relay_config, second, clock=services.context.clock, keys=services.keys)


async def _rows(store: Store, key: str | None = None) -> list[tuple[str, float]]:
    query = select(failed.c.key, failed.c.expires_at).order_by(failed.c.id)
    if key is not None:
        query = query.where(failed.c.key == key)
    async with store.transaction(readonly=True) as conn:
        return [(r.key, r.expires_at) for r in await conn.execute(query)]


async def _attempt(store: Store, *checks: LimitCheck, now: float) -> None:
    async with store.transaction() as conn:
        await begin_attempt(conn, checks, now=now)


async def test_limit_retry_after_expiry_and_reset(store: Store) -> None:
    limiter = SharedLimiter(scope="t", limit=3, window=10)
    k = LimitCheck(limiter=limiter, key="k", what="guesses")
    for t in (0.0, 1.0, 2.0):
        await _attempt(store, k, now=t)
    with pytest.raises(RateLimited) as limited:
        await _attempt(store, k, now=5)
    assert limited.value.retry_after == 5  # the oldest of the 3 leaves at t=10
    assert "too many failed guesses" in limited.value.message
    async with store.transaction() as conn:
        # Never 0 while limited, even a fraction of a second before it expires.
        assert await limiter.retry_after(conn, "k", now=9.9) == 1
        await limiter.check(conn, "other", now=5)
    await _attempt(store, k, now=10.5)  # the first attempt left the window
    async with store.transaction() as conn:
        assert await limiter.retry_after(conn, "k", now=10.5) == 1  # t=1 leaves at 11
        await limiter.reset(conn, "k")
        assert await limiter.retry_after(conn, "k", now=10.5) == 0
    assert await _rows(store) == []


async def test_a_refused_attempt_counts_nothing_and_a_forgiven_one_is_gone(store: Store) -> None:
    strict = SharedLimiter(scope="t", limit=1, window=60)
    loose = SharedLimiter(scope="u", limit=5, window=60)
    await _attempt(store, LimitCheck(limiter=strict, key="a"), now=0)
    with pytest.raises(RateLimited):  # "a" is full: "b" is not counted either
        await _attempt(store, LimitCheck(limiter=loose, key="b"),
                       LimitCheck(limiter=strict, key="a"), now=1)  # fmt: skip
    assert [k for k, _ in await _rows(store)] == ["t:a"]
    async with store.transaction() as conn:
        attempt = await begin_attempt(conn, [LimitCheck(limiter=loose, key="b")], now=2)
        await forgive_attempt(conn, attempt)
    assert [k for k, _ in await _rows(store)] == ["t:a"]


async def test_scopes_do_not_share_counters_and_long_keys_fit(store: Store) -> None:
    login = SharedLimiter(scope="login", limit=1, window=60)
    bind = SharedLimiter(scope="bind", limit=1, window=60)
    long_key = "login:" + "x" * 400
    await _attempt(store, LimitCheck(limiter=login, key="acct:a"),
                   LimitCheck(limiter=login, key=long_key), now=0)  # fmt: skip
    async with store.transaction() as conn:
        await bind.check(conn, "acct:a", now=1)
        with pytest.raises(RateLimited):
            await login.check(conn, "acct:a", now=1)
        with pytest.raises(RateLimited):
            await login.check(conn, long_key, now=1)
        await login.check(conn, "login:" + "x" * 399, now=1)
    keys = [key for key, _ in await _rows(store)]
    assert keys[0] == "login:acct:a"
    assert len(keys[1]) <= schema.FAILED_ATTEMPT_KEY


async def test_a_key_stores_at_most_limit_rows(store: Store) -> None:
    limiter = SharedLimiter(scope="t", limit=3, window=100)
    for t in range(20):
        with contextlib.suppress(RateLimited):
            await _attempt(store, LimitCheck(limiter=limiter, key="k"), now=float(t))
    assert [e for _, e in await _rows(store, "t:k")] == [100.0, 101.0, 102.0]
    # Expired rows of the key go on its next attempt.
    await _attempt(store, LimitCheck(limiter=limiter, key="k"), now=218.5)
    assert [e for _, e in await _rows(store, "t:k")] == [318.5]


async def test_purge_removes_only_expired_rows(world: World) -> None:
    config = world.services.context.config
    accounts = world.services.accounts
    alice = await world.account("alice")
    await world.device("SN1", code="RIGHT1")
    with pytest.raises(Unauthorized):
        await accounts.login(login="alice", password="wrong", source="10.0.0.1")
    with pytest.raises(Forbidden):
        await world.services.devices.bind(alice, serial="SN1", verification_code="no", source="s")
    assert len(await _rows(world.services.context.store)) == 5  # 2 login + 3 bind keys
    assert await accounts.purge_expired_failures() == 0
    world.clock.advance(config.login_window)
    assert await accounts.purge_expired_failures() == 2
    world.clock.advance(config.bind_window - config.login_window)
    assert await accounts.purge_expired_failures() == 3
    assert await _rows(world.services.context.store) == []
    async with world.services.context.store.transaction() as conn:
        assert await purge_expired_failures(conn, now=world.clock()) == 0


async def test_two_relays_share_the_login_limit(world: World, other: Services) -> None:
    await world.account("alice")
    limit = world.services.context.config.login_failures_per_account
    relays = [world.services.accounts, other.accounts]
    for i in range(limit):
        with pytest.raises(Unauthorized):
            await relays[i % 2].login(login="alice", password="wrong", source=f"10.0.0.{i}")
    for relay in relays:  # each relay saw only half the failures, and both refuse
        with pytest.raises(RateLimited) as limited:
            await relay.login(login="alice", password=PASSWORD, source="10.9.9.9")
        assert limited.value.retry_after == world.services.context.config.login_window
    world.clock.advance(world.services.context.config.login_window)
    await other.accounts.login(login="alice", password=PASSWORD, source="10.9.9.9")
    # A success on one relay clears the account's counter for all of them.
    with pytest.raises(Unauthorized):
        await world.services.accounts.login(login="alice", password="wrong", source="10.0.0.1")
    await world.services.accounts.login(login="alice", password=PASSWORD, source="10.0.0.1")
    assert await _rows(other.context.store, "login:acct:" + (await _account_id(world))) == []


async def _account_id(world: World) -> str:
    accounts = schema.accounts
    async with world.services.context.store.transaction(readonly=True) as conn:
        query = select(accounts.c.id).where(accounts.c.name == "alice")
        return str((await conn.execute(query)).scalar_one())


async def test_two_relays_share_the_verification_code_limit(world: World, other: Services) -> None:
    config = world.services.context.config
    alice = await world.account("alice")
    await world.device("SN1", code="XYZ123")
    relays = [world.services.devices, other.devices]
    for i in range(config.bind_failures_per_device):
        with pytest.raises(Forbidden):
            await relays[i % 2].bind(alice, serial="SN1", verification_code="guess", source="s")
    for relay in relays:
        with pytest.raises(RateLimited):
            await relay.bind(alice, serial="SN1", verification_code="XYZ123", source="s")
    world.clock.advance(config.bind_window)
    await other.devices.bind(alice, serial="SN1", verification_code="XYZ123", source="s")
    assert await _rows(world.services.context.store, "bind:dev:SN1") == []


async def test_racing_guesses_on_two_relays_never_pass_the_limit_together(
    world: World, other: Services
) -> None:
    await world.account("alice")
    limit = world.services.context.config.login_failures_per_account
    relays = [world.services.accounts, other.accounts]
    results = await asyncio.gather(
        *(
            relays[i % 2].login(login="alice", password="wrong", source=f"10.0.1.{i}")
            for i in range(3 * limit)
        ),
        return_exceptions=True,
    )
    guesses = [r for r in results if isinstance(r, Unauthorized)]
    refused = [r for r in results if isinstance(r, RateLimited)]
    assert (len(guesses), len(refused)) == (limit, 2 * limit), results
    async with world.services.context.store.transaction(readonly=True) as conn:
        count = (
            await conn.execute(
                select(func.count()).select_from(failed).where(failed.c.key.like("login:acct:%"))
            )
        ).scalar_one()
    assert count == limit
    with pytest.raises(RateLimited):
        await world.services.accounts.login(login="alice", password=PASSWORD, source="10.9.9.9")


@contextmanager
def _failing(store: Store, verb: str) -> Iterator[None]:
    """Statements `verb`-ing failed_attempts fail as if the database went away."""
    engine = store.engine.sync_engine

    def fail(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        text = " ".join(statement.split()).upper()
        if text.startswith(verb) and "FAILED_ATTEMPTS" in text:
            raise OperationalError(statement, None, ConnectionError("connection lost"))

    event.listen(engine, "before_cursor_execute", fail)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", fail)


@pytest.mark.parametrize("verb", ["SELECT", "INSERT", "DELETE"])
async def test_a_store_outage_is_network_busy_never_a_pass(world: World, verb: str) -> None:
    """SELECT/INSERT: the check and count fail; DELETE: a success cannot be forgiven."""
    alice = await world.account("alice")
    await world.device("SN1", code="RIGHT1")
    services = world.services
    with _failing(services.context.store, verb):
        if verb == "DELETE":  # wrong secrets are counted as usual (nothing to delete)
            with pytest.raises(Unauthorized):
                await services.accounts.login(login="alice", password="wrong", source="s")
            with pytest.raises(Forbidden):
                await services.devices.bind(alice, serial="SN1", verification_code="no", source="s")
        refused = [(PASSWORD, "RIGHT1")] + ([] if verb == "DELETE" else [("wrong", "no")])
        for password, code in refused:
            with pytest.raises(StoreUnavailable):
                await services.accounts.login(login="alice", password=password, source="s")
            with pytest.raises(StoreUnavailable):
                await services.devices.bind(alice, serial="SN1", verification_code=code, source="s")
    counted = 2 + 3 + 2 + 3 if verb == "DELETE" else 0  # the failures and the unforgiven
    assert len(await _rows(services.context.store)) == counted
    async with services.context.store.transaction(readonly=True) as conn:
        assert (await conn.execute(select(func.count()).select_from(schema.sessions))).scalar() == 0
        owner = select(schema.devices.c.owner_id).where(schema.devices.c.serial == "SN1")
        assert (await conn.execute(owner)).scalar() is None


async def test_a_version_2_database_gains_the_failed_attempts_table(
    relay_config: RelayConfig, clock: FakeClock
) -> None:
    store = Store(relay_config)
    try:  # an existing relay's database, migrated by a relay with per-process limits
        async with store.transaction() as conn:
            await conn.run_sync(lambda sync: apply_migrations(sync, MIGRATIONS[:2]))
            names = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        assert "failed_attempts" not in names
    finally:
        await store.engine.dispose()
    async with Store(relay_config) as upgraded:
        async with upgraded.transaction() as conn:
            assert await conn.run_sync(current_version) == len(MIGRATIONS) == 3
        services = Services.build(relay_config, upgraded, clock=clock)
        with pytest.raises(Unauthorized):
            await services.accounts.login(login="nobody", password="wrong", source="s")
        assert [k for k, _ in await _rows(upgraded)] == ["login:src:s", "login:login:nobody"]
