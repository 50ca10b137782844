"""Portal fixtures: the JSON API app with the portal mounted at /portal, as the relay will.

Only SQLite here: the portal holds no SQL of its own (the service layer's
tests cover PostgreSQL), and browser tests are the slow part of the suite.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from yarl import URL

from nvrshare.relay.api import create_app
from nvrshare.relay.config import RelayConfig
from nvrshare.relay.portal import create_portal
from nvrshare.relay.services import Services
from tests.relay.conftest import CHEAP_SCRYPT, PASSWORD, World

_CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


@pytest.fixture
def relay_config(tmp_path: Path) -> RelayConfig:
    return RelayConfig(data_dir=tmp_path / "relay", scrypt=CHEAP_SCRYPT)


def mount(services: Services, *, secure_cookies: bool = False) -> aiohttp.web.Application:
    app = create_app(services)
    app.add_subapp("/portal", create_portal(services, secure_cookies=secure_cookies))
    return app


@pytest.fixture
async def server(services: Services) -> AsyncIterator[TestServer]:
    test_server = TestServer(mount(services), host="127.0.0.1")
    await test_server.start_server()
    try:
        yield test_server
    finally:
        await test_server.close()


@dataclass
class Browser:
    """A cookie-keeping HTTP caller that reads CSRF tokens from pages, like a browser."""

    session: aiohttp.ClientSession
    base: URL

    async def get(self, path: str) -> tuple[int, str]:
        async with self.session.get(self.base.join(URL(path)), allow_redirects=True) as r:
            return r.status, await r.text()

    async def csrf(self, path: str) -> str:
        status, text = await self.get(path)
        assert status == 200, text
        match = _CSRF.search(text)
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    async def post(
        self, path: str, data: dict[str, str] | list[tuple[str, str]], *, csrf_from: str | None,
        follow: bool = True,
    ) -> tuple[int, str]:  # fmt: skip
        fields = list(data.items()) if isinstance(data, dict) else list(data)
        if csrf_from is not None:
            fields.append(("csrf", await self.csrf(csrf_from)))
        async with self.session.post(
            self.base.join(URL(path)), data=fields, allow_redirects=follow
        ) as r:
            return r.status, await r.text()

    async def login(self, name: str) -> None:
        status, text = await self.post(
            "/portal/login", {"login": name, "password": PASSWORD}, csrf_from="/portal/login"
        )
        assert status == 200, text
        assert "My devices" in text


@pytest.fixture
async def browsers(server: TestServer) -> AsyncIterator[list[Browser]]:
    """Up to three independent callers (own cookie jars) on the portal."""
    sessions = [
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) for _ in range(3)
    ]
    try:
        yield [Browser(session=s, base=server.make_url("/")) for s in sessions]
    finally:
        for session in sessions:
            await session.close()


@pytest.fixture
async def cast(world: World, browsers: list[Browser]) -> tuple[Browser, Browser, str]:
    """Alice owns NVR1 (4 channels); Bob exists; both logged in.  → (alice, bob, serial)."""
    alice_account = await world.account("alice")
    await world.account("bob")
    serial = await world.owned_device(alice_account, "NVR1SERIAL0001")
    alice, bob = browsers[0], browsers[1]
    await alice.login("alice")
    await bob.login("bob")
    return alice, bob, serial
