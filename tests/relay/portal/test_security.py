"""Portal security over HTTP: CSRF, cookie flags, CSP, escaping, authorisation, hostile forms."""

from __future__ import annotations

import re

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from yarl import URL

from nvrshare.relay.errors import StoreUnavailable, Unauthorized
from nvrshare.relay.portal.security import CONTENT_SECURITY_POLICY
from nvrshare.relay.services import Services
from tests.relay.conftest import PASSWORD, World
from tests.relay.portal.conftest import Browser, mount

PAGES = ["/portal/devices", "/portal/shared", "/portal/received", "/portal/account"]


def _set_cookies(response: aiohttp.ClientResponse) -> dict[str, str]:
    return {h.split("=", 1)[0]: h for h in response.headers.getall("Set-Cookie", [])}


def _no_inline_code(text: str) -> None:
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), "inline script"
    assert "<style" not in text, "inline style element"
    assert not re.search(r"\sstyle=", text), "inline style attribute"
    assert not re.search(r"\son[a-z]+=", text), "inline event handler"


async def test_headers_on_every_page_and_static(
    cast: tuple[Browser, Browser, str], browsers: list[Browser]
) -> None:
    alice, _bob, serial = cast
    paths = [*PAGES, f"/portal/devices/{serial}/share"]
    for path in paths:
        async with alice.session.get(alice.base.join(URL(path))) as response:
            assert response.status == 200, path
            assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["X-Frame-Options"] == "DENY"
            assert response.headers["Cache-Control"] == "no-store"
            _no_inline_code(await response.text())
    for path in ["/portal/login", "/portal/register"]:
        _status, text = await browsers[2].get(path)
        _no_inline_code(text)
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    for name, kind in [("portal.css", "text/css"), ("portal.js", "javascript")]:
        async with alice.session.get(alice.base.join(URL(f"/portal/static/{name}"))) as response:
            assert response.status == 200
            assert kind in response.headers["Content-Type"]
            assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    async with alice.session.get(alice.base.join(URL("/portal/static/../app.py"))) as response:
        assert response.status in {403, 404}


async def _login_response(base: URL, name: str) -> tuple[dict[str, str], dict[str, str]]:
    """(Set-Cookie of the login form page, Set-Cookie of the login POST).

    Cookies are carried by hand: a client keeps no Secure cookie over plain http.
    """
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        async with session.get(base.join(URL("/portal/login"))) as page:
            pre = _set_cookies(page)
            match = re.search(r'name="csrf" value="([0-9a-f]{64})"', await page.text())
            assert match
        value = pre["nvrshare_pre"].split(";")[0]
        async with session.post(
            base.join(URL("/portal/login")), allow_redirects=False, headers={"Cookie": value},
            data={"login": name, "password": PASSWORD, "csrf": match.group(1)},
        ) as response:  # fmt: skip
            assert response.status == 303
            assert response.headers["Location"] == "/portal/devices"
            return pre, _set_cookies(response)


async def test_cookie_flags(server: TestServer, world: World, services: Services) -> None:
    await world.account("alice")
    pre, login = await _login_response(server.make_url("/"), "alice")
    for cookie in (pre["nvrshare_pre"], login["nvrshare_session"]):
        flags = [part.strip().lower() for part in cookie.split(";")]
        assert "httponly" in flags
        assert "samesite=strict" in flags
        assert "path=/portal/" in flags
        assert "secure" not in flags
    assert "max-age=43200" in login["nvrshare_session"].lower()  # the session's own lifetime


async def test_cookies_are_secure_over_tls(services: Services, world: World) -> None:
    await world.account("alice")
    secure = TestServer(mount(services, secure_cookies=True), host="127.0.0.1")
    await secure.start_server()
    try:
        pre, login = await _login_response(secure.make_url("/"), "alice")
    finally:
        await secure.close()
    for cookie in (pre["nvrshare_pre"], login["nvrshare_session"]):
        assert "secure" in [part.strip().lower() for part in cookie.split(";")]


async def test_logout_ends_the_session_server_side(
    cast: tuple[Browser, Browser, str], services: Services
) -> None:
    alice, _bob, _serial = cast
    token = next(c.value for c in alice.session.cookie_jar if c.key == "nvrshare_session")
    assert (await services.accounts.authenticate(token)).name == "alice"
    async with alice.session.post(
        alice.base.join(URL("/portal/logout")),
        data={"csrf": await alice.csrf("/portal/devices")}, allow_redirects=False,
    ) as response:  # fmt: skip
        assert response.status == 303
        assert "max-age=0" in _set_cookies(response)["nvrshare_session"].lower()
    with pytest.raises(Unauthorized):
        await services.accounts.authenticate(token)


async def test_csrf_rejections(
    cast: tuple[Browser, Browser, str], browsers: list[Browser], services: Services
) -> None:
    alice, bob, serial = cast
    remove = f"/portal/devices/{serial}/remove"
    bob_token = await bob.csrf("/portal/devices")
    anonymous_token = await browsers[2].csrf("/portal/login")
    for fields in ({}, {"csrf": bob_token}, {"csrf": anonymous_token}, {"csrf": "0" * 64},
                   {"csrf": "x"}):  # fmt: skip
        status, text = await alice.post(remove, fields, csrf_from=None)
        assert status == 403, fields
        assert 'data-code="csrf_failed"' in text
    # Twice the right token is still one field too many.
    good = await alice.csrf("/portal/devices")
    status, _text = await alice.post(remove, [("csrf", good), ("csrf", good)], csrf_from=None)
    assert status == 403
    _status, text = await alice.get("/portal/devices")
    assert serial in text  # nothing was removed
    # A login form posted without the pre-session cookie (a cross-site login) fails too.
    async with aiohttp.ClientSession() as fresh, fresh.post(
        alice.base.join(URL("/portal/login")),
        data={"login": "alice", "password": PASSWORD, "csrf": anonymous_token},
    ) as response:  # fmt: skip
        assert response.status == 403
        assert "nvrshare_session" not in _set_cookies(response)


async def test_output_is_escaped(
    cast: tuple[Browser, Browser, str], services: Services, browsers: list[Browser]
) -> None:
    alice, bob, serial = cast
    hostile = "<script>alert(1)</script>"
    status, text = await alice.post(
        f"/portal/devices/{serial}/rename", {"alias": hostile}, csrf_from="/portal/devices"
    )
    assert status == 200
    assert hostile not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    share_page = f"/portal/devices/{serial}/share"
    await alice.post(
        share_page, {"recipient": "bob", "perm": "1:live_view", "remark": '"><b>x</b>'},
        csrf_from=share_page,
    )  # fmt: skip
    _status, text = await alice.get("/portal/shared")
    assert "<b>x</b>" not in text
    assert "&#34;&gt;&lt;b&gt;x&lt;/b&gt;" in text
    _status, text = await bob.get("/portal/received")
    share_id = re.search(r'data-share="([^"]+)"', text).group(1)  # type: ignore[union-attr]
    _status, text = await bob.post(
        f"/portal/received/{share_id}/rename", {"alias": '"><img src=x onerror=alert(1)>'},
        csrf_from="/portal/received",
    )  # fmt: skip
    assert "<img src=x" not in text
    assert 'value="&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"' in text
    _status, text = await browsers[2].post(
        "/portal/login", {"login": hostile, "password": "whatever1"}, csrf_from="/portal/login"
    )
    assert hostile not in text


async def test_recipient_cannot_reach_owner_pages(
    cast: tuple[Browser, Browser, str], world: World, browsers: list[Browser]
) -> None:
    alice, bob, serial = cast
    share_page = f"/portal/devices/{serial}/share"
    await alice.post(
        share_page, {"recipient": "bob", "perm": "1:live_view", "remark": "secret remark"},
        csrf_from=share_page,
    )  # fmt: skip
    _status, text = await bob.get("/portal/received")
    share_id = re.search(r'data-share="([^"]+)"', text).group(1)  # type: ignore[union-attr]
    await bob.post(f"/portal/received/{share_id}/accept", {}, csrf_from="/portal/received")
    carol = browsers[2]
    await world.account("carol")
    await carol.login("carol")
    # The recipient is told "owner only"; a stranger cannot even learn the device exists.
    for caller, status_expected in ((bob, 403), (carol, 404)):
        status, text = await caller.get(f"/portal/shared/{serial}/{share_id}")
        assert status == status_expected
        assert "secret remark" not in text
        status, _text = await caller.get(share_page)
        assert status == 404
        for path, fields in [
            (f"/portal/shared/{serial}/{share_id}", {"perm": "1:ptz"}),
            (f"/portal/shared/{serial}/stop", {"account": "whoever"}),
            (f"/portal/shared/{serial}/disable", {}),
            (f"/portal/devices/{serial}/remove", {}),
            (share_page, {"recipient": "carol", "perm": "1:ptz"}),
        ]:
            status, text = await caller.post(path, fields, csrf_from="/portal/devices")
            assert status in {403, 404}, path
        _status, text = await caller.get("/portal/shared")
        assert serial not in text
        assert "secret remark" not in text
    _status, text = await bob.get("/portal/received")
    assert serial in text
    assert "secret remark" not in text
    # Nobody but the recipient answers a share.
    status, _text = await carol.post(
        f"/portal/received/{share_id}/delete", {}, csrf_from="/portal/received"
    )
    assert status == 404
    _status, text = await alice.get("/portal/shared")
    assert "secret remark" in text


async def test_anonymous_is_sent_to_login(server: TestServer) -> None:
    async with aiohttp.ClientSession() as session:
        for path in [*PAGES, "/portal/devices/NVR1SERIAL0001/share", "/portal/"]:
            async with session.get(server.make_url(path), allow_redirects=False) as response:
                assert response.status == 303, path
                assert response.headers["Location"] == "/portal/login"


async def test_hostile_forms(cast: tuple[Browser, Browser, str]) -> None:
    alice, _bob, serial = cast
    share_page = f"/portal/devices/{serial}/share"
    token = await alice.csrf(share_page)
    url = alice.base.join(URL(share_page))
    multipart = aiohttp.FormData({"csrf": token, "recipient": "bob", "perm": "1:ptz"})
    multipart.add_field("file", b"x", filename="x.bin")
    async with alice.session.post(url, data=multipart) as response:
        assert response.status == 400
    async with alice.session.post(url, data={"csrf": token, "x": "y" * 100_000}) as response:
        assert response.status == 413
    many = [("csrf", token), *(("perm", f"1:ptz{i}") for i in range(1400))]
    async with alice.session.post(url, data=many) as response:
        assert response.status == 413  # aiohttp's own cap on form fields
    for fields in (
        [("recipient", "bob"), ("perm", "1:root")],
        [("recipient", "bob"), ("perm", "999:ptz")],
        [("recipient", "bob"), ("perm", "9:ptz")],  # the device has 4 channels
        [("recipient", "bob"), ("recipient", "carol"), ("perm", "1:ptz")],
        [("recipient", "b" * 300), ("perm", "1:ptz")],
        [("recipient", "bob"), ("recipient_kind", "uid"), ("perm", "1:ptz")],
    ):
        status, _text = await alice.post(share_page, fields, csrf_from=share_page)
        assert status == 400, fields
    status, _text = await alice.post(
        f"/portal/devices/{serial}/rename", {"alias": "x" * 200}, csrf_from="/portal/devices"
    )
    assert status == 400
    status, _text = await alice.get("/portal/devices?cursor=!!!not-a-cursor")
    assert status == 400
    status, _text = await alice.get("/portal/shared/" + "x" * 300 + "/y")
    assert status == 404


async def test_network_busy_is_shown_as_the_api_says(
    cast: tuple[Browser, Browser, str], services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, _bob, serial = cast
    share_page = f"/portal/devices/{serial}/share"
    token = await alice.csrf(share_page)

    async def busy(*_args: object, **_kwargs: object) -> None:
        raise StoreUnavailable

    monkeypatch.setattr(services.shares, "create", busy)
    async with alice.session.post(
        alice.base.join(URL(share_page)),
        data={"csrf": token, "recipient": "bob", "perm": "1:ptz"},
    ) as response:  # fmt: skip
        assert response.status == 503
        assert response.headers["Retry-After"] == "5"
        assert "Result: network busy, try again later" in await response.text()
