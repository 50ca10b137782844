"""The installer's cloud-service switch, the owner's per-device revoke, and organisation members.

Both stores: the portal holds no SQL, but these pages drive the site service's
switch and member rules end to end, so they run where those rules run.
"""

from __future__ import annotations

import re

import pytest

from nvrshare.relay.errors import DeviceNotFound
from nvrshare.relay.services import Services
from nvrshare.relay.services.models import Account
from nvrshare.relay.services.sites_model import InstallerRole, ServiceDisabled
from tests.relay.conftest import (
    PASSWORD,
    FakeClock,
    World,
    relay_config,  # noqa: F401  (both stores, not SQLite only)
)
from tests.relay.portal.conftest import Browser
from tests.relay.portal.test_sites import SERIAL, _day, _installer_with_site, _invite_form

BAD_CSRF = "0" * 64


async def _account(services: Services, name: str) -> Account:
    return (await services.accounts.login(login=name, password=PASSWORD, source="t")).account


def _code(text: str) -> str | None:
    found = re.search(r'class="notice error" role="alert" data-code="([^"]+)"', text)
    return found.group(1) if found else None


async def _handed_over(
    ivan: Browser, olga: Browser, world: World, clock: FakeClock, *, allow_switch: bool
) -> tuple[str, str]:
    """Ivan's site with SERIAL, handed over to Olga (live view for Ivan); → (site, owned) paths."""
    site_path = await _installer_with_site(ivan, world)
    await world.account("olga")
    fields = _invite_form(clock, "olga@example.com")
    if allow_switch:
        fields.append(("allow_disable_service", "1"))
    _status, text = await ivan.post(f"{site_path}/invite", fields, csrf_from=site_path)
    assert "Invitation sent." in text, text
    await olga.login("olga")
    _status, text = await olga.get("/portal/sites")
    invitation_id = re.search(r'data-invitation="([^"]+)"', text).group(1)  # type: ignore[union-attr]
    _status, text = await olga.post(
        f"/portal/invitations/{invitation_id}/accept", {}, csrf_from="/portal/sites"
    )
    assert "The site is now yours." in text, text
    owned = re.search(r'action="(/portal/owned-sites/[^/]+)/revoke"', text).group(1)  # type: ignore[union-attr]
    return site_path, owned


def _service_cell(text: str) -> str:
    row = re.search(rf'<tr data-serial="{SERIAL}">.*?<td class="service">(\w+)</td>', text, re.S)
    assert row, text
    return row.group(1)


# --- the service switch --------------------------------------------------------------------


async def test_installer_switches_the_cloud_service_off_and_on(
    browsers: list[Browser], world: World, clock: FakeClock, services: Services
) -> None:
    ivan, olga, _carol = browsers
    site_path, owned_path = await _handed_over(ivan, olga, world, clock, allow_switch=True)
    owner, installer = await _account(services, "olga"), await _account(services, "ivan")
    await services.tokens.issue(owner, SERIAL)
    await services.tokens.issue(installer, SERIAL)  # the live-view grant from the invitation
    _status, text = await olga.get(owned_path)
    assert "You allowed the installer to switch the cloud service off" in text
    _status, text = await ivan.get(site_path)
    assert _service_cell(text) == "On"
    assert 'id="service-switch"' in text

    status, text = await ivan.post(
        f"{site_path}/service", {"enabled": "off", "serial": SERIAL}, csrf_from=site_path
    )
    assert status == 200, text
    assert "Cloud service switched off" in text
    assert _service_cell(text) == "Off"
    # It takes effect where access is decided: no token for anyone, the owner included.
    for account in (owner, installer):
        with pytest.raises(ServiceDisabled):
            await services.tokens.issue(account, SERIAL)
    _status, text = await olga.get(owned_path)
    assert re.search(rf'data-serial="{SERIAL}">.*?cloud service <span class="service">off<', text)

    status, text = await ivan.post(f"{site_path}/service", {"enabled": "on"}, csrf_from=site_path)
    assert "Cloud service switched on." in text
    assert _service_cell(text) == "On"
    await services.tokens.issue(owner, SERIAL)
    await services.tokens.issue(installer, SERIAL)


async def test_service_switch_refusals(
    browsers: list[Browser], world: World, clock: FakeClock, services: Services
) -> None:
    ivan, olga, carol = browsers
    site_path, _owned = await _handed_over(ivan, olga, world, clock, allow_switch=True)
    owner = await _account(services, "olga")
    await world.account("carol")
    await carol.login("carol")
    # The owner and a stranger are not installers of the site: a clear 403, nothing switched.
    for caller in (olga, carol):
        status, text = await caller.post(
            f"{site_path}/service", {"enabled": "off"}, csrf_from="/portal/sites"
        )
        assert (status, _code(text)) == (403, "not_an_installer"), text
    # A forged form: refused before the service is asked.
    status, text = await ivan.post(
        f"{site_path}/service", {"enabled": "off", "csrf": BAD_CSRF}, csrf_from=None
    )
    assert (status, _code(text)) == (403, "csrf_failed")
    for fields, expected in (
        ({"enabled": "maybe"}, (400, "invalid_request")),
        ({"enabled": "off", "serial": "NOT-IN-SITE"}, (404, "device_not_found")),
    ):
        status, text = await ivan.post(f"{site_path}/service", fields, csrf_from=site_path)
        assert (status, _code(text)) == expected, text
        assert "<h1>Bakery" in text  # shown on the site page, not a bare error page
    await services.tokens.issue(owner, SERIAL)  # still on after every refusal


async def test_service_switch_needs_the_owners_consent(
    browsers: list[Browser], world: World, clock: FakeClock, services: Services
) -> None:
    ivan, olga, _carol = browsers
    site_path, owned_path = await _handed_over(ivan, olga, world, clock, allow_switch=False)
    _status, text = await ivan.get(site_path)
    assert 'id="service-switch-not-allowed"' in text
    assert 'id="service-switch"' not in text
    status, text = await ivan.post(f"{site_path}/service", {"enabled": "off"}, csrf_from=site_path)
    assert (status, _code(text)) == (403, "service_switch_not_allowed"), text
    assert _service_cell(text) == "On"
    await services.tokens.issue(await _account(services, "olga"), SERIAL)
    _status, text = await olga.get(owned_path)
    assert "The installer may not switch the cloud service off." in text


async def test_owner_revokes_the_installer_on_one_device(
    browsers: list[Browser], world: World, clock: FakeClock, services: Services
) -> None:
    ivan, olga, carol = browsers
    _site_path, owned_path = await _handed_over(ivan, olga, world, clock, allow_switch=False)
    installer = await _account(services, "ivan")
    await services.tokens.issue(installer, SERIAL)
    await world.account("carol")
    await carol.login("carol")
    status, _text = await carol.post(
        f"{owned_path}/revoke", {"serial": SERIAL}, csrf_from="/portal/sites"
    )
    assert status == 404  # not carol's site
    status, _text = await olga.post(
        f"{owned_path}/revoke", {"serial": SERIAL, "csrf": BAD_CSRF}, csrf_from=None
    )
    assert status == 403
    await services.tokens.issue(installer, SERIAL)

    _status, text = await olga.get(owned_path)
    assert f"Revoke on {SERIAL}" in text
    status, text = await olga.post(f"{owned_path}/revoke", {"serial": SERIAL}, csrf_from=owned_path)
    assert "Installer permissions revoked." in text
    assert "Site information" in text  # only the device's permissions ended
    assert f"Revoke on {SERIAL}" not in text
    with pytest.raises(DeviceNotFound):
        await services.tokens.issue(installer, SERIAL)
    # Turning it back on is authorising again.
    status, text = await olga.post(
        f"{owned_path}/grant",
        [("device_perm", f"{SERIAL}:live_view"), ("valid_from", _day(clock)),
         ("valid_until", _day(clock, 7))],
        csrf_from=owned_path,
    )  # fmt: skip
    assert "Installer permissions saved." in text, text
    await services.tokens.issue(installer, SERIAL)


# --- organisation members ---------------------------------------------------------------------


async def _org_with_admin(ivan: Browser, world: World) -> None:
    await world.account("ivan")
    await ivan.login("ivan")
    _status, text = await ivan.post(
        "/portal/sites/organisation", {"name": "Ivan Installs"}, csrf_from="/portal/sites"
    )
    assert "Installer organisation created." in text
    assert 'id="org-members-link"' in text


def _row(text: str, account_id: str) -> str:
    found = re.search(rf'<tr data-member="{account_id}">(.*?)</tr>', text, re.S)
    assert found, text
    return found.group(1)


async def test_admin_lists_adds_and_removes_members(
    browsers: list[Browser], world: World, services: Services
) -> None:
    ivan = browsers[0]
    await _org_with_admin(ivan, world)
    mia, nick = await world.account("mia"), await world.account("nick")
    admin = await _account(services, "ivan")
    status, text = await ivan.get("/portal/organisation")
    assert status == 200
    assert "<h1>Ivan Installs" in text
    assert "Manages all sites" in _row(text, admin.id)
    assert 'id="add-member"' in text

    status, text = await ivan.post(
        "/portal/organisation/members", {"login": "mia@example.com", "role": "manage_assigned"},
        csrf_from="/portal/organisation",
    )  # fmt: skip
    assert status == 200, text
    assert "Member added." in text
    row = _row(text, mia.id)
    assert "Manages assigned sites" in row
    assert "<td>No</td>" in row  # device management left unticked
    status, text = await ivan.post(
        "/portal/organisation/members",
        {"login": "nick", "role": "manage_all", "device_management": "1"},
        csrf_from="/portal/organisation",
    )  # fmt: skip
    assert "Member added." in text
    assert "Manages all sites" in _row(text, nick.id)
    _org, members = await services.sites.org(admin)
    assert {(m.account_id, m.role, m.device_management) for m in members} == {
        (admin.id, InstallerRole.MANAGE_ALL, True),
        (mia.id, InstallerRole.MANAGE_ASSIGNED, False),
        (nick.id, InstallerRole.MANAGE_ALL, True),
    }

    status, text = await ivan.post(
        f"/portal/organisation/members/{mia.id}/remove", {}, csrf_from="/portal/organisation"
    )
    assert "Member removed." in text
    assert f'data-member="{mia.id}"' not in text
    _org, members = await services.sites.org(admin)
    assert mia.id not in {m.account_id for m in members}


async def test_member_form_refusals(
    browsers: list[Browser], world: World, services: Services
) -> None:
    ivan = browsers[0]
    await _org_with_admin(ivan, world)
    mia = await world.account("mia")
    admin = await _account(services, "ivan")
    await services.sites.add_member(admin, login="mia", role=InstallerRole.MANAGE_ASSIGNED)
    cases = [
        ({"login": "ghost@example.com", "role": "manage_all"}, (404, "account_not_found")),
        ({"login": "mia@example.com", "role": "manage_all"}, (409, "conflict")),  # already in
        ({"login": "nick", "role": "root"}, (400, "invalid_request")),
        ({"login": " ", "role": "manage_all"}, (400, "invalid_request")),
    ]
    for fields, expected in cases:
        status, text = await ivan.post(
            "/portal/organisation/members", fields, csrf_from="/portal/organisation"
        )
        assert (status, _code(text)) == expected, (fields, text)
        assert 'id="members"' in text  # the members page again, with the message
    # The typed login is kept for correcting it.
    status, text = await ivan.post(
        "/portal/organisation/members", {"login": "ghost@example.com", "role": "manage_all"},
        csrf_from="/portal/organisation",
    )  # fmt: skip
    assert 'value="ghost@example.com"' in text
    for path, expected in (
        (f"/portal/organisation/members/{admin.id}/remove", (409, "conflict")),  # yourself
        ("/portal/organisation/members/nobody/remove", (404, "not_found")),
    ):
        status, text = await ivan.post(path, {}, csrf_from="/portal/organisation")
        assert (status, _code(text)) == expected, (path, text)
    status, text = await ivan.post(
        f"/portal/organisation/members/{mia.id}/remove", {"csrf": BAD_CSRF}, csrf_from=None
    )
    assert (status, _code(text)) == (403, "csrf_failed")
    status, text = await ivan.post(
        "/portal/organisation/members", {"login": "ivan", "role": "manage_all", "csrf": BAD_CSRF},
        csrf_from=None,
    )  # fmt: skip
    assert (status, _code(text)) == (403, "csrf_failed")
    _org, members = await services.sites.org(admin)
    assert {m.account_id for m in members} == {admin.id, mia.id}


async def test_non_admins_and_outsiders_are_refused(
    browsers: list[Browser], world: World, services: Services
) -> None:
    ivan, mia_browser, carol = browsers
    await _org_with_admin(ivan, world)
    mia = await world.account("mia")
    await world.account("nick")
    await world.account("carol")
    admin = await _account(services, "ivan")
    await services.sites.add_member(admin, login="mia", role=InstallerRole.MANAGE_ASSIGNED)
    await mia_browser.login("mia")
    await carol.login("carol")
    # A member who manages assigned sites sees the list, without the forms.
    status, text = await mia_browser.get("/portal/organisation")
    assert status == 200
    assert "Manages all sites" in _row(text, admin.id)
    assert 'id="add-member"' not in text
    assert 'id="members-read-only"' in text
    assert "/remove" not in text
    for path, fields in (
        ("/portal/organisation/members", {"login": "nick", "role": "manage_all"}),
        (f"/portal/organisation/members/{admin.id}/remove", {}),
    ):
        status, text = await mia_browser.post(path, fields, csrf_from="/portal/organisation")
        assert (status, _code(text)) == (403, "forbidden"), text
        assert "only an installer who manages all sites can do this" in text
    # Someone outside any organisation.
    status, text = await carol.get("/portal/organisation")
    assert 'data-code="not_an_installer"' in text
    assert status == 403
    status, text = await carol.post(
        "/portal/organisation/members", {"login": "nick", "role": "manage_all"},
        csrf_from="/portal/sites",
    )  # fmt: skip
    assert status == 403
    assert 'data-code="not_an_installer"' in text
    _org, members = await services.sites.org(admin)
    assert {m.account_id for m in members} == {admin.id, mia.id}
    # Once removed, mia is an outsider too.
    await ivan.post(f"/portal/organisation/members/{mia.id}/remove", {},
                    csrf_from="/portal/organisation")  # fmt: skip
    status, text = await mia_browser.get("/portal/organisation")
    assert (status, 'data-code="not_an_installer"' in text) == (403, True)
