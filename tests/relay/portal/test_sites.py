"""The Sites pages over HTTP: installer → invite with permissions → owner accepts → grants."""

from __future__ import annotations

import datetime
import re

from yarl import URL

from nvrshare.relay.services import Services
from tests.relay.conftest import FakeClock, World
from tests.relay.portal.conftest import Browser

SERIAL = "DS-7608NI-K2-SITE0001"


def _day(clock: FakeClock, days: int = 0) -> str:
    moment = datetime.datetime.fromtimestamp(clock(), tz=datetime.UTC) + datetime.timedelta(days)
    return moment.date().isoformat()


async def _installer_with_site(ivan: Browser, world: World) -> str:
    """Ivan becomes an installer, creates a site and adds a device; → the site's path."""
    await world.account("ivan")
    await world.device(SERIAL, code="SITECODE", channels=2)
    await ivan.login("ivan")
    status, text = await ivan.get("/portal/sites")
    assert "Become an installer" in text
    status, text = await ivan.post(
        "/portal/sites/organisation", {"name": "Ivan Installs"}, csrf_from="/portal/sites"
    )
    assert "Installer organisation created." in text
    async with ivan.session.post(
        ivan.base.join(URL("/portal/sites")), allow_redirects=False,
        data={"name": "Bakery", "address": "1 Main St", "csrf": await ivan.csrf("/portal/sites")},
    ) as response:  # fmt: skip
        assert response.status == 303
        site_path = URL(response.headers["Location"]).path
    status, text = await ivan.get(site_path)
    assert 'id="site-status">Not Invited<' in text
    status, text = await ivan.post(
        f"{site_path}/devices", {"serial": SERIAL, "verification_code": "SITECODE"},
        csrf_from=site_path,
    )  # fmt: skip
    assert status == 200, text
    assert "Device added." in text
    return site_path


def _invite_form(clock: FakeClock, address: str) -> list[tuple[str, str]]:
    return [
        ("channel", "email"), ("address", address), ("remark", "your new recorder"),
        ("site_info", "1"), ("device_perm", f"{SERIAL}:live_view"),
        ("device_perm", f"{SERIAL}:playback"),
        ("valid_from", _day(clock)), ("valid_until", _day(clock, 30)),
    ]  # fmt: skip


async def test_invite_resend_limit_accept_and_grants(
    browsers: list[Browser], world: World, clock: FakeClock, services: Services
) -> None:
    ivan, olga = browsers[0], browsers[1]
    site_path = await _installer_with_site(ivan, world)
    # Inviting an address nobody registered: Not Registered.
    status, text = await ivan.post(
        f"{site_path}/invite", _invite_form(clock, "nobody@example.com"), csrf_from=site_path
    )
    assert status == 200, text
    assert 'id="site-status">Not Registered<' in text
    await world.account("olga")
    status, text = await ivan.post(
        f"{site_path}/invite", _invite_form(clock, "olga@example.com"), csrf_from=site_path
    )
    assert "Invitation sent." in text
    assert 'id="site-status">Not Accepted<' in text
    assert "your new recorder" in text
    for _ in range(3):  # five sends in all: two invitations and three resends
        status, text = await ivan.post(f"{site_path}/resend", {}, csrf_from=site_path)
        assert "Invitation sent again." in text
    token = await ivan.csrf(site_path)
    async with ivan.session.post(
        ivan.base.join(URL(f"{site_path}/resend")), data={"csrf": token}
    ) as response:
        assert response.status == 429
        assert int(response.headers["Retry-After"]) > 0
        assert "at most 5 invitations per site per day" in await response.text()
    _status, text = await ivan.get("/portal/sites")
    assert "Not Accepted" in text

    await olga.login("olga")
    status, text = await olga.get("/portal/sites")
    assert "You have 1 site invitation" in text
    assert "Ivan Installs" in text
    invitation_id = re.search(r'data-invitation="([^"]+)"', text).group(1)  # type: ignore[union-attr]
    status, text = await olga.post(
        f"/portal/invitations/{invitation_id}/accept", {}, csrf_from="/portal/sites"
    )
    assert status == 200, text
    assert "The site is now yours." in text
    assert "Site information" in text
    assert "Live View, Playback" in text
    owned_path = re.search(r'action="(/portal/owned-sites/[^/]+)/revoke"', text).group(1)  # type: ignore[union-attr]
    _status, text = await olga.get("/portal/devices")
    assert SERIAL in text
    _status, text = await ivan.get(site_path)
    assert 'id="site-status">Handed Over<' in text

    status, text = await olga.post(f"{owned_path}/revoke", {}, csrf_from=owned_path)
    assert "Installer permissions revoked." in text
    assert "No installer permissions." in text
    status, text = await olga.post(
        f"{owned_path}/grant",
        [("device_perm", f"{SERIAL}:playback"), ("valid_from", _day(clock)),
         ("valid_until", _day(clock, 7))],
        csrf_from=owned_path,
    )  # fmt: skip
    assert "Installer permissions saved." in text
    site = await services.sites.owned_site(
        (await services.accounts.login(login="olga", password="correct horse battery",
                                       source="t")).account,
        owned_path.rsplit("/", 1)[1],
    )  # fmt: skip
    (grant,) = site.grants
    assert grant.device_serial == SERIAL
    assert {p.value for p in grant.permissions} == {"playback"}
    assert grant.validity.valid_until - grant.validity.valid_from == 8 * 24 * 3600


async def test_sites_pages_are_deny_by_default(
    browsers: list[Browser], world: World, clock: FakeClock
) -> None:
    ivan, olga, carol = browsers
    site_path = await _installer_with_site(ivan, world)
    await world.account("olga")
    await ivan.post(f"{site_path}/invite", _invite_form(clock, "olga@example.com"),
                    csrf_from=site_path)  # fmt: skip
    await world.account("carol")
    await olga.login("olga")
    await carol.login("carol")
    site_id = site_path.rsplit("/", 1)[1]
    for caller in (olga, carol):
        status, text = await caller.get(site_path)
        assert status == 403
        assert 'data-code="not_an_installer"' in text
        status, _text = await caller.post(
            f"{site_path}/resend", {}, csrf_from="/portal/sites"
        )
        assert status == 403
        status, _text = await caller.get(f"/portal/owned-sites/{site_id}")
        assert status == 404
    # The invitation is olga's alone to answer.
    _status, text = await olga.get("/portal/sites")
    invitation_id = re.search(r'data-invitation="([^"]+)"', text).group(1)  # type: ignore[union-attr]
    _status, text = await carol.get("/portal/sites")
    assert "site invitation" not in text
    status, _text = await carol.post(
        f"/portal/invitations/{invitation_id}/accept", {}, csrf_from="/portal/sites"
    )
    assert status == 404
    status, _text = await ivan.get(f"/portal/owned-sites/{site_id}")
    assert status == 404
    status, text = await olga.post(
        f"/portal/invitations/{invitation_id}/decline", {}, csrf_from="/portal/sites"
    )
    assert "Invitation declined." in text
    _status, text = await ivan.get(site_path)
    assert 'id="site-status">Not Invited<' in text


async def test_hostile_site_forms(browsers: list[Browser], world: World, clock: FakeClock) -> None:
    ivan = browsers[0]
    site_path = await _installer_with_site(ivan, world)
    base = _invite_form(clock, "olga@example.com")
    cases = [
        [*base[:-1], ("valid_until", "next tuesday")],
        [*base[:-1], ("valid_until", _day(clock, -3))],  # ends in the past
        [*base, ("device_perm", f"{SERIAL}:root")],
        [*base, ("device_perm", "NOT-IN-SITE:playback")],
        [("channel", "fax"), *base[1:]],
        [("channel", "email"), ("address", "not an address")],
    ]
    for fields in cases:
        status, text = await ivan.post(f"{site_path}/invite", fields, csrf_from=site_path)
        assert status == 400, fields
        assert 'class="notice error"' in text
    status, text = await ivan.post(
        "/portal/sites", {"name": "<script>alert(1)</script>"}, csrf_from="/portal/sites"
    )
    assert status == 200
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;" in text
