"""The portal's pages over HTTP (no browser): each flow calls the real service layer."""

from __future__ import annotations

import re

from yarl import URL

from nvrshare.relay.services import Services
from nvrshare.relay.services.models import ShareState
from tests.relay.conftest import PASSWORD, World
from tests.relay.portal.conftest import Browser


def _share_id(text: str) -> str:
    match = re.search(r'data-share="([^"]+)"', text)
    assert match, "no pending share on the page"
    return match.group(1)


async def test_register_login_logout(browsers: list[Browser]) -> None:
    caller = browsers[0]
    status, text = await caller.get("/portal/")
    assert status == 200
    assert "<h1>Log in</h1>" in text
    status, text = await caller.post(
        "/portal/register",
        {"name": "carol", "email": "carol@example.com", "phone": "", "region": "EU",
         "password": PASSWORD, "password_again": PASSWORD},
        csrf_from="/portal/register",
    )  # fmt: skip
    assert status == 200
    assert "Account created: log in." in text
    await caller.login("carol@example.com")
    status, text = await caller.get("/portal/account")
    assert status == 200
    assert "carol@example.com" in text
    assert 'src="data:image/png;base64,' in text
    assert "nvrshare:account:v1:" in text
    status, text = await caller.post("/portal/logout", {}, csrf_from="/portal/devices")
    assert status == 200
    assert "<h1>Log in</h1>" in text
    status, text = await caller.get("/portal/devices")
    assert "<h1>Log in</h1>" in text


async def test_register_refusals_are_shown(browsers: list[Browser], world: World) -> None:
    await world.account("dave")
    caller = browsers[0]
    base = {"name": "dave", "email": "", "phone": "", "region": "EU"}
    status, text = await caller.post(
        "/portal/register", {**base, "password": PASSWORD, "password_again": PASSWORD},
        csrf_from="/portal/register",
    )  # fmt: skip
    assert status == 409
    assert 'data-code="account_exists"' in text
    status, text = await caller.post(
        "/portal/register", {**base, "name": "erin", "password": PASSWORD,
                             "password_again": PASSWORD + "x"},
        csrf_from="/portal/register",
    )  # fmt: skip
    assert status == 400
    assert "the two passwords differ" in text
    assert 'value="erin"' in text


async def test_wrong_password_is_one_message(browsers: list[Browser], world: World) -> None:
    await world.account("frank")
    status, text = await browsers[0].post(
        "/portal/login", {"login": "frank", "password": "not the password"},
        csrf_from="/portal/login",
    )  # fmt: skip
    assert status == 401
    assert "wrong account or password" in text


async def test_login_rate_limit_is_shown(
    browsers: list[Browser], world: World, services: Services
) -> None:
    await world.account("gina")
    caller = browsers[0]
    limit = services.context.config.login_failures_per_account
    for _ in range(limit):
        status, _text = await caller.post(
            "/portal/login", {"login": "gina", "password": "wrong password"},
            csrf_from="/portal/login",
        )  # fmt: skip
        assert status == 401
    token = await caller.csrf("/portal/login")
    async with caller.session.post(
        caller.base.join(URL("/portal/login")),
        data={"login": "gina", "password": PASSWORD, "csrf": token},
    ) as response:  # fmt: skip
        assert response.status == 429
        assert int(response.headers["Retry-After"]) > 0
        assert 'data-code="rate_limited"' in await response.text()


async def test_add_rename_remove_device(browsers: list[Browser], world: World) -> None:
    await world.account("alice")
    await world.device("NVR2SERIAL0002", code="SECRET1", domain="home-nvr")
    alice = browsers[0]
    await alice.login("alice")
    status, text = await alice.post(
        "/portal/devices", {"serial": "NVR2SERIAL0002", "verification_code": "WRONG"},
        csrf_from="/portal/devices",
    )  # fmt: skip
    assert status == 403
    assert "the serial number or the verification code is wrong" in text
    status, text = await alice.post(
        "/portal/devices", {"serial": "NVR2SERIAL0002", "verification_code": "SECRET1"},
        csrf_from="/portal/devices",
    )  # fmt: skip
    assert status == 200
    assert "Device added." in text
    for expected in ("home-nvr", "NVR2SERIAL0002", "192.0.2.10:8000", "Online", "Camera 04"):
        assert expected in text
    status, text = await alice.post(
        "/portal/devices/NVR2SERIAL0002/rename", {"alias": "Garage"}, csrf_from="/portal/devices"
    )
    assert status == 200
    assert '<td class="alias">Garage</td>' in text
    status, text = await alice.post(
        "/portal/devices/NVR2SERIAL0002/remove", {}, csrf_from="/portal/devices"
    )
    assert status == 200
    assert "Device removed." in text
    assert "NVR2SERIAL0002" not in text


async def test_share_accept_edit_stop(
    cast: tuple[Browser, Browser, str], services: Services
) -> None:
    alice, bob, serial = cast
    form = [("recipient", "bob@example.com"), ("recipient_kind", "auto"),
            ("perm", "1:live_view"), ("perm", "1:playback"), ("perm", "3:ptz"),
            ("remark", "the neighbour")]  # fmt: skip
    status, text = await alice.post(
        f"/portal/devices/{serial}/share", form, csrf_from=f"/portal/devices/{serial}/share"
    )
    assert status == 200
    assert 'data-code="shared"' in text
    status, text = await bob.get("/portal/received")
    assert "You have 1 new sharing<" in text
    share_id = _share_id(text)
    status, text = await bob.post(
        f"/portal/received/{share_id}/accept", {}, csrf_from="/portal/received"
    )
    assert status == 200
    assert "Sharing accepted." in text
    assert "new sharing" not in text
    assert "Live View, Playback" in text
    assert "the neighbour" not in text  # the remark is the owner's alone

    status, text = await alice.get("/portal/shared")
    assert "the neighbour" in text
    assert "Accepted" in text
    status, text = await alice.post(
        f"/portal/shared/{serial}/{share_id}",
        [("perm", "2:alarm"), ("perm", "2:two_way_audio"), ("remark", "")],
        csrf_from=f"/portal/shared/{serial}/{share_id}",
    )
    assert status == 200
    assert "Permissions saved." in text
    assert "Alarm, Two-way Audio" in text
    assert "the neighbour" not in text
    bob_id = (await services.accounts.login(login="bob", password=PASSWORD, source="t")).account.id
    status, text = await alice.post(
        f"/portal/shared/{serial}/stop", {"account": bob_id}, csrf_from="/portal/shared"
    )
    assert status == 200
    assert "Sharing stopped." in text
    status, text = await bob.get("/portal/received")
    assert serial not in text


async def test_all_permissions_stop_several_and_disable_all(
    cast: tuple[Browser, Browser, str], world: World, services: Services
) -> None:
    alice, _bob, serial = cast
    carol = await world.account("carol")
    await world.account("dave")
    bob = (await services.accounts.login(login="bob", password=PASSWORD, source="t")).account
    for who in ("bob", "carol", "dave"):
        status, text = await alice.post(
            f"/portal/devices/{serial}/share",
            {"recipient": who, "recipient_kind": "name", "all_permissions": "1"},
            csrf_from=f"/portal/devices/{serial}/share",
        )
        assert status == 200, text
    owner = (await services.accounts.login(login="alice", password=PASSWORD, source="t")).account
    shares = await services.shares.device_shares(owner, serial)
    assert len(shares.shares) == 3
    assert all(len(s.permissions) == 4 for s in shares.shares)
    assert all(s.state is ShareState.PENDING for s in shares.shares)
    status, text = await alice.post(
        f"/portal/shared/{serial}/stop",
        [("account", bob.id), ("account", carol.id)],
        csrf_from="/portal/shared",
    )
    assert "Sharing stopped." in text
    remaining = (await services.shares.device_shares(owner, serial)).shares
    assert [s.recipient.name for s in remaining] == ["dave"]
    status, text = await alice.post(
        f"/portal/shared/{serial}/stop", {}, csrf_from="/portal/shared"
    )
    assert status == 400
    assert "select at least one account" in text
    status, text = await alice.post(
        f"/portal/shared/{serial}/disable", {}, csrf_from="/portal/shared"
    )
    assert "All sharing of the device is disabled." in text
    assert not (await services.shares.device_shares(owner, serial)).shares


async def test_refused_shares_show_the_api_result(
    cast: tuple[Browser, Browser, str], world: World
) -> None:
    alice, _bob, serial = cast
    await world.account("olaf", region="NA")
    cases = [
        ({"recipient": "nobody@example.com"}, 404, "the account doesn&#39;t exist"),
        ({"recipient": "olaf"}, 403, "cross-regional share is not allowed"),
        ({"recipient": "alice"}, 422, "you cannot share a device with yourself"),
    ]
    for fields, status_expected, message in cases:
        status, text = await alice.post(
            f"/portal/devices/{serial}/share", {**fields, "perm": "1:live_view"},
            csrf_from=f"/portal/devices/{serial}/share",
        )  # fmt: skip
        assert status == status_expected
        assert f"Result: {message}" in text
        assert 'value="1:live_view" aria-label="Live View on channel 1" checked' in text
    status, text = await alice.post(
        f"/portal/devices/{serial}/share", {"recipient": "bob"},
        csrf_from=f"/portal/devices/{serial}/share",
    )  # fmt: skip
    assert status == 400
    assert "the permission matrix is empty" in text


async def test_recipient_rename_reject_delete(cast: tuple[Browser, Browser, str]) -> None:
    alice, bob, serial = cast
    share_page = f"/portal/devices/{serial}/share"
    await alice.post(share_page, {"recipient": "bob", "perm": "1:live_view"}, csrf_from=share_page)
    _status, text = await bob.get("/portal/received")
    share_id = _share_id(text)
    status, text = await bob.post(
        f"/portal/received/{share_id}/rename", {"alias": "Mum's house"},
        csrf_from="/portal/received",
    )  # fmt: skip
    assert status == 200
    assert "Mum&#39;s house" in text
    status, text = await bob.post(
        f"/portal/received/{share_id}/reject", {}, csrf_from="/portal/received"
    )
    assert "Sharing rejected." in text
    assert serial not in text
    # A re-share after a rejection is pending again; the recipient then deletes it.
    await alice.post(share_page, {"recipient": "bob", "perm": "2:ptz"}, csrf_from=share_page)
    _status, text = await bob.get("/portal/received")
    share_id = _share_id(text)
    status, text = await bob.post(
        f"/portal/received/{share_id}/delete", {}, csrf_from="/portal/received"
    )
    assert "Deleted." in text
    assert serial not in text
    _status, text = await alice.get("/portal/shared")
    assert serial not in text


async def test_share_history_is_suggested(cast: tuple[Browser, Browser, str]) -> None:
    alice, _bob, serial = cast
    share_page = f"/portal/devices/{serial}/share"
    await alice.post(share_page, {"recipient": "bob", "perm": "1:live_view"}, csrf_from=share_page)
    _status, text = await alice.get(share_page)
    assert '<option value="bob@example.com">bob</option>' in text
    assert '<span class="chip">bob</span>' in text
