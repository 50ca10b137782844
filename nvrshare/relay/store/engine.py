"""The store: an async SQLAlchemy engine, transactions, and the error boundary.

Every database call goes through `Store.transaction()`, which is also the one
place foreign exceptions are converted: a store that cannot be reached (refused
connection, timeout, locked SQLite file, dropped PostgreSQL connection) becomes
`StoreUnavailable` ("network busy", HTTP 503 with Retry-After), and because the
whole unit of work is one transaction, nothing of it is written.

SQLite (the embedded default) runs in WAL mode with foreign keys on, and every
writing transaction starts with `BEGIN IMMEDIATE`: writers queue on the busy
timeout instead of failing when a read transaction tries to upgrade.  Reading
transactions (`readonly=True`) start with a plain `BEGIN` and never wait.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from nvrshare.relay.config import RelayConfig
from nvrshare.relay.errors import StoreUnavailable
from nvrshare.relay.store.migrations import apply_migrations

__all__ = ["Store"]

_log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT = 5.0
CONNECT_TIMEOUT = 5.0
READONLY_OPTION = "nvrshare_readonly"


def _sqlite_engine(url: str) -> AsyncEngine:
    engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (the pysqlite recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Readers take no lock (WAL lets them run beside the one writer).
        readonly = conn.get_execution_options().get(READONLY_OPTION, False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


def _postgres_engine(url: str, schema: str | None) -> AsyncEngine:
    connect_args: dict[str, Any] = {"timeout": CONNECT_TIMEOUT, "command_timeout": 30}
    if schema is not None:
        connect_args["server_settings"] = {"search_path": schema}
    return create_async_engine(
        url,
        connect_args=connect_args,
        pool_size=10,
        max_overflow=10,
        pool_timeout=CONNECT_TIMEOUT,
        pool_pre_ping=True,
    )


def _is_unavailable(exc: BaseException) -> bool:
    # PoolTimeout: every pooled connection is busy for `pool_timeout` seconds.
    unavailable = (
        OperationalError, InterfaceError, DisconnectionError, PoolTimeout, OSError, TimeoutError
    )  # fmt: skip
    if isinstance(exc, unavailable):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


class Store:
    """The relay's database: `async with Store(config) as store:` migrates on entry.

    Raises `StoreUnavailable` from `transaction()` (and on entry) when the
    database cannot be reached.
    """

    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        url = config.database_url
        if url.startswith("sqlite"):
            config.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.engine = _sqlite_engine(url)
        else:
            self.engine = _postgres_engine(url, config.database_schema)
        self.dialect = self.engine.dialect.name
        self._retry_after = config.store_retry_after

    async def __aenter__(self) -> Store:
        try:
            async with self.transaction() as conn:
                before, after = await conn.run_sync(apply_migrations)
        except BaseException:
            await self.engine.dispose()
            raise
        if before != after:
            _log.info("store schema migrated from version %d to %d", before, after)
        if self.dialect == "sqlite":
            db_path = self.engine.url.database
            if db_path:
                os.chmod(db_path, 0o600)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def transaction(self, *, readonly: bool = False) -> AsyncIterator[AsyncConnection]:
        """One unit of work: committed if the block succeeds, rolled back otherwise.

        `readonly` transactions cannot write (PostgreSQL refuses it) and, on
        SQLite, do not queue behind writers.
        """
        try:
            async with self.engine.connect() as conn:
                if readonly:
                    options: dict[str, Any] = {READONLY_OPTION: True}
                    if self.dialect == "postgresql":
                        options["postgresql_readonly"] = True
                    conn = await conn.execution_options(**options)  # noqa: PLW2901
                async with conn.begin():
                    yield conn
        except StoreUnavailable:
            raise
        except Exception as exc:
            if not _is_unavailable(exc):
                raise
            _log.warning("store unavailable: %s", exc.__class__.__name__)
            raise StoreUnavailable(retry_after=self._retry_after) from exc
