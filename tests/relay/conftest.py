"""Relay fixtures: every store test runs against SQLite and PostgreSQL.

PostgreSQL is the server at 127.0.0.1:5432 (database `test`, trust auth).
Each test gets its own schema (`CREATE SCHEMA t_<random>`, dropped after),
so tests never see each other's rows.  When the server is unreachable the
postgres cases are skipped, except under `CI=true`, where that fails the run.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from nvrshare.relay.api import create_app
from nvrshare.relay.config import RelayConfig, ScryptParams
from nvrshare.relay.services import Services
from nvrshare.relay.services.models import Account
from nvrshare.relay.services.secrets_hash import hash_secret
from nvrshare.relay.store import Store

# NVRSHARE_TEST_PG_PORT lets a run point elsewhere (e.g. at a closed port, to
# check that CI=true turns "unreachable" into a failure).
PG_HOST, PG_PORT = "127.0.0.1", int(os.environ.get("NVRSHARE_TEST_PG_PORT", "5432"))
PG_URL = f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/test"
CHEAP_SCRYPT = ScryptParams(n=16, r=1, p=1)
START = 1_800_000_000.0


def _postgres_reachable() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


@dataclass
class FakeClock:
    now: float = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# Tests that only use the store through these fixtures never look at the schema
# itself, so on PostgreSQL they share one migrated schema, emptied (TRUNCATE)
# before each test: migrating a fresh schema per test costs ~0.5 s each.
# Tests that ask for `relay_config` alone get a fresh, empty schema.
_SHARED_SCHEMA_USERS = frozenset({"store", "services", "world", "http"})


async def _pg_connect() -> asyncpg.Connection:
    return await asyncpg.connect(host=PG_HOST, port=PG_PORT, user="postgres", database="test")


@pytest.fixture(scope="session")
def _shared_pg_schema() -> Iterator[str]:
    """The name of the session's shared, migrated schema (created on first use)."""
    name = f"t_{secrets.token_hex(6)}"
    yield name

    async def drop() -> None:
        conn = await _pg_connect()
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        finally:
            await conn.close()

    if _postgres_reachable():
        asyncio.run(drop())


async def _empty_shared_schema(conn: asyncpg.Connection, schema: str) -> None:
    await conn.execute("SET lock_timeout = '10s'")
    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    tables = await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = $1 AND tablename <> 'schema_version'",
        schema,
    )
    if tables:
        # DELETE is much cheaper than TRUNCATE on a handful of rows; the
        # replication role skips foreign-key triggers, so order does not matter.
        deletes = "; ".join(f'DELETE FROM {schema}."{row["tablename"]}"' for row in tables)
        await conn.execute(
            f"BEGIN; SET LOCAL session_replication_role = replica; {deletes}; COMMIT"
        )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def relay_config(
    request: pytest.FixtureRequest, tmp_path: Path, _shared_pg_schema: str
) -> AsyncIterator[RelayConfig]:
    """A RelayConfig on an empty database of each kind (cheap scrypt)."""
    if request.param == "sqlite":
        yield RelayConfig(data_dir=tmp_path / "relay", scrypt=CHEAP_SCRYPT)
        return
    if not _postgres_reachable():
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {PG_HOST}:{PG_PORT} is unreachable and CI=true")
        pytest.skip(f"PostgreSQL at {PG_HOST}:{PG_PORT} is unreachable")
    shared = bool(_SHARED_SCHEMA_USERS & set(request.fixturenames))
    schema = _shared_pg_schema if shared else f"t_{secrets.token_hex(6)}"
    conn = await _pg_connect()
    try:
        if shared:
            await _empty_shared_schema(conn, schema)
        else:
            await conn.execute(f"CREATE SCHEMA {schema}")
        yield RelayConfig(
            data_dir=tmp_path / "relay",
            database_url=PG_URL,
            database_schema=schema,
            scrypt=CHEAP_SCRYPT,
        )
    finally:
        if not shared:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(relay_config: RelayConfig) -> AsyncIterator[Store]:
    async with Store(relay_config) as opened:
        yield opened


@pytest.fixture
def services(relay_config: RelayConfig, store: Store, clock: FakeClock) -> Services:
    return Services.build(relay_config, store, clock=clock)


PASSWORD = "correct horse battery"


@dataclass
class World:
    """Builders for the usual cast: accounts and registered devices."""

    services: Services
    clock: FakeClock

    async def account(self, name: str, *, region: str | None = None) -> Account:
        return await self.services.accounts.register(
            name=name, email=f"{name}@example.com", password=PASSWORD, region=region
        )

    async def device(
        self, serial: str, *, code: str = "ABCDEF", channels: int = 4, domain: str | None = None
    ) -> str:
        config = self.services.context.config
        outcome = await self.services.devices.apply_registration(
            serial=serial,
            domain=domain,
            model="DS-7608NI-K2",
            firmware_version="V4.30",
            channels=[(n, f"Camera {n:02d}") for n in range(1, channels + 1)],
            ip="192.0.2.10",
            port=8000,
            public_key=secrets.token_bytes(32),
            verification_code_hash=hash_secret(code, config.scrypt),
            now=self.clock(),
        )
        assert outcome.accepted, outcome
        return serial

    async def owned_device(self, owner: Account, serial: str, **kwargs: object) -> str:
        await self.device(serial, code="ABCDEF", **kwargs)  # type: ignore[arg-type]
        await self.services.devices.bind(
            owner, serial=serial, verification_code="ABCDEF", source="127.0.0.1"
        )
        return serial


@pytest.fixture
def world(services: Services, clock: FakeClock) -> World:
    return World(services=services, clock=clock)


MakeWorld = Callable[[], World]


@pytest.fixture
async def http(services: Services) -> AsyncIterator[TestClient]:
    """An aiohttp test client on the control-plane app over `services` (loopback)."""
    async with TestClient(TestServer(create_app(services), host="127.0.0.1")) as client:
        yield client


@dataclass
class User:
    """A registered, logged-in account, as an HTTP caller."""

    http: TestClient
    account_id: str
    token: str
    email: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def call(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, **kwargs: object
    ) -> tuple[int, Any]:
        merged = {**self.headers, **(headers or {})}
        async with self.http.request(method, path, headers=merged, **kwargs) as response:
            if response.status == 204:
                return 204, None
            return response.status, await response.json()


async def signup(http: TestClient, name: str, region: str | None = None) -> User:
    body = {"name": name, "email": f"{name}@example.com", "password": PASSWORD}
    if region is not None:
        body["region"] = region
    async with http.post("/api/v1/accounts", json=body) as response:
        assert response.status == 201, await response.text()
        account = await response.json()
    async with http.post(
        "/api/v1/sessions", json={"login": name, "password": PASSWORD}
    ) as response:
        assert response.status == 201, await response.text()
        session = await response.json()
    return User(
        http=http, account_id=account["id"], token=session["token"], email=f"{name}@example.com"
    )
