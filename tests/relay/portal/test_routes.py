"""Deny by default, checked over the route table itself, and the package's public names."""

from __future__ import annotations

import re

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

import nvrshare.relay.portal
from nvrshare.relay.portal import create_portal
from nvrshare.relay.services import Services
from tests.relay.conftest import FakeClock, World
from tests.relay.portal.conftest import Browser

# Reachable without an account: the login and registration forms, the entry
# redirect, logging out (which only ends a session), and the static files.
PUBLIC = {("GET", "/"), ("GET", "/login"), ("POST", "/login"), ("GET", "/register"),
          ("POST", "/register"), ("POST", "/logout")}  # fmt: skip


def test_public_names_are_pinned() -> None:
    assert nvrshare.relay.portal.__all__ == ["create_portal"]


def _portal_routes(services: Services) -> list[tuple[str, str, str]]:
    """(method, path as declared, a concrete path under /portal) for every route."""
    portal = create_portal(services, secure_cookies=False)
    app = web.Application()
    app.add_subapp("/portal", portal)
    found = []
    for route in portal.router.routes():
        resource = route.resource
        if route.method == "HEAD" or resource is None or resource.name == "static":
            continue
        info = resource.get_info()
        path = info.get("path") or re.sub(r"\{(\w+)(:[^}]*)?\}", "X1", info["formatter"])
        found.append((route.method, path.removeprefix("/portal") or "/", path))
    return found


async def test_every_route_denies_anonymous_callers(
    services: Services, server: TestServer, browsers: list[Browser]
) -> None:
    routes = _portal_routes(services)
    assert len(routes) >= 20
    anonymous = browsers[2]
    token = await anonymous.csrf("/portal/login")
    checked = 0
    for method, declared, path in routes:
        url = anonymous.base.join(URL(path))
        data = {"csrf": token} if method == "POST" else None
        async with anonymous.session.request(
            method, url, data=data, allow_redirects=False
        ) as response:  # fmt: skip
            if (method, declared) in PUBLIC:
                assert response.status in {200, 303, 400}, (method, path)
                continue
            assert response.status == 303, (method, path, response.status)
            assert response.headers["Location"] == "/portal/login"
            checked += 1
    assert checked >= 15


async def test_an_expired_session_is_logged_out(
    cast: tuple[Browser, Browser, str], services: Services, clock: FakeClock, world: World
) -> None:
    alice, _bob, _serial = cast
    status, text = await alice.get("/portal/devices")
    assert "<h1>My devices</h1>" in text
    clock.advance(services.context.config.session_ttl + 1)
    async with alice.session.get(
        alice.base.join(URL("/portal/devices")), allow_redirects=False
    ) as response:
        assert response.status == 303
        assert response.headers["Location"] == "/portal/login"
        cookie = next(h for h in response.headers.getall("Set-Cookie") if "nvrshare_session" in h)
        assert "max-age=0" in cookie.lower()
    status, text = await alice.get("/portal/devices")
    assert status == 200
    assert "<h1>Log in</h1>" in text


async def test_a_forged_session_cookie_is_anonymous(server: TestServer) -> None:
    jar = aiohttp.CookieJar(unsafe=True)
    jar.update_cookies({"nvrshare_session": "A" * 43}, server.make_url("/portal/"))
    async with aiohttp.ClientSession(cookie_jar=jar) as session, session.get(
        server.make_url("/portal/devices"), allow_redirects=False
    ) as response:  # fmt: skip
        assert response.status == 303
        assert response.headers["Location"] == "/portal/login"
