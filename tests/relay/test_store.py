"""The store: migrations, SQLite settings, and "network busy" without partial writes."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, OperationalError

from nvrshare.protocol.permissions import Permission
from nvrshare.relay.config import RelayConfig
from nvrshare.relay.errors import StoreUnavailable
from nvrshare.relay.services import RecipientKind, RecipientRef, Services
from nvrshare.relay.store import MIGRATIONS, SchemaTooNew, Store
from nvrshare.relay.store.migrations import current_version
from tests.relay.conftest import CHEAP_SCRYPT, FakeClock, World
from tests.support.net import held_port


async def test_migrations_run_once_and_are_recorded(relay_config: RelayConfig) -> None:
    async with Store(relay_config) as store, store.transaction() as conn:
        assert await conn.run_sync(current_version) == len(MIGRATIONS)
    async with Store(relay_config) as store, store.transaction() as conn:
        # Re-opening applies nothing and keeps one version row.
        rows = (await conn.execute(text("SELECT count(*) FROM schema_version"))).scalar()
        assert rows == 1


async def test_a_newer_schema_is_refused(relay_config: RelayConfig) -> None:
    async with Store(relay_config) as store, store.transaction() as conn:
        await conn.execute(text("UPDATE schema_version SET version = 99"))
    with pytest.raises(SchemaTooNew):
        async with Store(relay_config):
            pass


async def test_sqlite_is_wal_with_foreign_keys_and_private(tmp_path: Path) -> None:
    config = RelayConfig(data_dir=tmp_path / "d", scrypt=CHEAP_SCRYPT)
    async with Store(config) as store, store.transaction() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
    assert stat.S_IMODE((tmp_path / "d" / "relay.db").stat().st_mode) == 0o600


async def test_unreachable_postgres_is_network_busy(tmp_path: Path) -> None:
    with held_port() as closed:  # bound, not listening: connections are refused
        config = RelayConfig(
            data_dir=tmp_path,
            database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{closed}/test",
            store_retry_after=7,
        )
        with pytest.raises(StoreUnavailable) as busy:
            async with Store(config):
                pass
    assert (busy.value.status, busy.value.code, busy.value.retry_after) == (503, "network_busy", 7)


async def test_a_failure_mid_share_writes_nothing(world: World) -> None:
    """The store fails after the share row is written: no share, no epoch bump, no audit."""
    alice, bob = await world.account("alice"), await world.account("bob")
    serial = await world.owned_device(alice, "SN1")
    services = world.services
    before = await services.devices.grant_set_for(serial)
    engine = services.context.store.engine.sync_engine

    def fail_on_audit(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO AUDIT_LOG"):
            raise OperationalError(statement, None, ConnectionError("connection lost"))

    event.listen(engine, "before_cursor_execute", fail_on_audit)
    try:
        with services.events.subscribe() as events:
            with pytest.raises(StoreUnavailable):
                await services.shares.create(
                    alice, serial=serial, recipient=RecipientRef(kind=RecipientKind.NAME,
                                                                 value="bob"),
                    permissions={1: Permission.LIVE_VIEW},
                )  # fmt: skip
            assert events.get_nowait() is None
    finally:
        event.remove(engine, "before_cursor_execute", fail_on_audit)
    assert (await services.shares.device_shares(alice, serial)).shares == ()
    assert await services.shares.pending_count(bob) == 0
    assert (await services.shares.history(alice)).items == ()
    assert await services.devices.grant_set_for(serial) == before


async def test_services_over_a_dead_store_say_network_busy(
    relay_config: RelayConfig, clock: FakeClock
) -> None:
    async with Store(relay_config) as store:
        services = Services.build(relay_config, store, clock=clock)
        alice = await services.accounts.register(name="alice", password="p" * 10)
        await store.engine.dispose()
        # Point the engine at nothing: every new connection is refused.
        with held_port() as closed:
            dead = RelayConfig(
                data_dir=relay_config.data_dir,
                database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{closed}/test",
            )
            dead_store = Store(dead)
            try:
                dead_services = Services.build(dead, dead_store, clock=clock, keys=services.keys)
                with pytest.raises(StoreUnavailable):
                    await dead_services.shares.pending_count(alice)
            finally:
                await dead_store.engine.dispose()


async def test_readonly_transactions_cannot_write_on_postgres_and_do_not_block_on_sqlite(
    store: Store,
) -> None:
    if store.dialect == "postgresql":
        with pytest.raises(DBAPIError, match="read-only"):
            async with store.transaction(readonly=True) as conn:
                await conn.execute(text("UPDATE schema_version SET version = version"))
        return
    # SQLite: a reader runs while a writer holds the write lock.
    async with store.transaction() as writer:
        await writer.execute(text("UPDATE schema_version SET version = version"))
        async with store.transaction(readonly=True) as reader:
            assert (await reader.execute(text("SELECT count(*) FROM accounts"))).scalar() == 0
