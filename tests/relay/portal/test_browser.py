"""End to end in a real browser: two accounts in two Chromium contexts share a device."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect

from nvrshare.protocol.permissions import ALL_PERMISSIONS
from nvrshare.relay.services import Services
from tests.relay.conftest import PASSWORD, World
from tests.relay.portal.browser import Tab, chromium, open_tab

pytestmark = pytest.mark.e2e

SERIAL = "DS-7608NI-K2-0820190101CCRR"
CODE = "ABCDEF"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    path = tmp_path / "screenshots"
    path.mkdir()
    return path


async def _log_in(tab: Tab, login: str) -> None:
    page = tab.page
    await page.goto("/portal/login")
    await page.fill("input[name=login]", login)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button:text('Log in')")
    await expect(page.locator("h1")).to_have_text("My devices")


async def test_share_flow_in_two_browsers(
    browser: Browser, server: TestServer, world: World, shots: Path
) -> None:
    await world.device(SERIAL, code=CODE, channels=4, domain="shop-nvr")
    await world.account("bob")
    base = str(server.make_url("/"))
    alice = await open_tab(browser, base, "alice", shots)
    bob = await open_tab(browser, base, "bob", shots)
    a, b = alice.page, bob.page

    # Alice registers, logs in and adds her recorder by serial + verification code.
    await a.goto("/portal/")
    await a.click("text=Register")
    await a.fill("input[name=name]", "alice")
    await a.fill("input[name=email]", "alice@example.com")
    await a.fill("input[name=password]", PASSWORD)
    await a.fill("input[name=password_again]", PASSWORD)
    await alice.shot("register")
    await a.click("button:text('Create account')")
    await expect(a.locator(".notice.ok")).to_have_text("Account created: log in.")
    await _log_in(alice, "alice@example.com")
    await a.fill("#add-device input[name=serial]", SERIAL)
    await a.fill("#add-device input[name=verification_code]", CODE)
    await a.click("#add-device button")
    row = a.locator(f"#devices tr[data-serial='{SERIAL}']")
    await expect(row).to_contain_text("shop-nvr")
    await expect(row).to_contain_text("192.0.2.10:8000")
    await expect(row).to_contain_text("Online")
    await alice.shot("devices")

    # Share: recipient by email, a per-channel matrix, a remark.
    await row.locator("a:text('Share')").click()
    await expect(a.locator("h1")).to_contain_text("Share device")
    await a.fill("input[name=recipient]", "bob@example.com")
    for box in ("1:live_view", "1:playback", "2:ptz"):
        await a.check(f"input[name=perm][value='{box}']")
    await a.fill("input[name=remark]", "the neighbour")
    await alice.shot("share-form")
    await a.click("#share-form button[type=submit]")
    await expect(a.locator("#share-result")).to_contain_text("Result: shared")
    await alice.shot("shared")

    # Bob sees the banner, accepts, and finds the device with its permissions.
    await _log_in(bob, "bob")
    await expect(b.locator("#nav-pending")).to_have_text("1")
    await b.click("text=Others' shared devices")
    banner = b.locator("#new-sharings")
    await expect(banner).to_contain_text("You have 1 new sharing")
    await expect(banner).to_contain_text("alice")
    await bob.shot("banner")
    await banner.locator("button:text('Accept')").click()
    await expect(b.locator(".notice.ok")).to_have_text("Sharing accepted.")
    await expect(b.locator("#new-sharings")).to_have_count(0)
    shared_row = b.locator(f"#received tr[data-serial='{SERIAL}']")
    await expect(shared_row).to_contain_text("Accepted")
    await expect(shared_row).to_contain_text("Ch 1 Live View, Playback")
    await expect(shared_row).to_contain_text("Ch 2 PTZ")
    await expect(shared_row).to_contain_text("shop-nvr")
    await expect(shared_row).to_contain_text("alice")
    await expect(b.locator("body")).not_to_contain_text("the neighbour")
    await bob.shot("accepted")

    # Alice sees bob as accepted, selects him and stops sharing.
    await a.click("text=My shared devices")
    card = a.locator(f"section.shared-device[data-serial='{SERIAL}']")
    await expect(card).to_contain_text("Accepted")
    await expect(card).to_contain_text("the neighbour")
    await alice.shot("my-shared")
    await card.locator("tr[data-account='bob'] input[type=checkbox]").check()
    await card.locator("button:text('Stop sharing with selected')").click()
    await expect(a.locator(".notice.ok")).to_have_text("Sharing stopped.")
    await expect(a.locator(f"section.shared-device[data-serial='{SERIAL}']")).to_have_count(0)
    await alice.shot("stopped")

    await b.reload()
    await expect(b.locator(f"#received tr[data-serial='{SERIAL}']")).to_have_count(0)
    await expect(b.locator("body")).to_contain_text("Nobody shares a device with you.")
    await bob.shot("gone")

    # Log out from the header form.
    await a.click("button:text('Log out')")
    await expect(a.locator("h1")).to_have_text("Log in")

    assert alice.problems == []
    assert bob.problems == []
    assert (alice.step, bob.step) == (6, 3)  # one screenshot per step, in the tmp dir


async def test_refused_share_for_unknown_account(
    browser: Browser, server: TestServer, world: World, shots: Path
) -> None:
    owner = await world.account("alice")
    await world.owned_device(owner, SERIAL, channels=3)
    alice = await open_tab(browser, str(server.make_url("/")), "alice", shots)
    a = alice.page
    await _log_in(alice, "alice")
    await a.goto(f"/portal/devices/{SERIAL}/share")
    # The "all permissions" box ticks every box through the static script (CSP allows 'self').
    await a.check("input[name=all_permissions]")
    boxes = a.locator("input[name=perm]")
    await expect(boxes).to_have_count(15)
    for index in range(15):
        await expect(boxes.nth(index)).to_be_checked()
    await a.uncheck("input[name=perm][value='3:ptz']")
    await expect(a.locator("input[name=all_permissions]")).not_to_be_checked()
    await a.fill("input[name=recipient]", "nobody@example.com")
    await a.click("#share-form button[type=submit]")
    result = a.locator("#share-result")
    await expect(result).to_have_text("Result: the account doesn't exist")
    await expect(result).to_have_attribute("data-code", "account_not_found")
    # The form keeps what was typed and ticked.
    await expect(a.locator("input[name=recipient]")).to_have_value("nobody@example.com")
    await expect(a.locator("input[name=perm][value='3:ptz']")).not_to_be_checked()
    await expect(a.locator("input[name=perm][value='3:alarm']")).to_be_checked()
    await alice.shot("refused")
    # The only console line allowed is Chromium's note about the 404 answer itself.
    assert all("status of 404" in problem for problem in alice.problems), alice.problems


async def test_works_without_javascript(
    browser: Browser, server: TestServer, world: World, shots: Path, services: Services
) -> None:
    """Every form posts on its own: "All permissions" is honoured by the server."""
    owner = await world.account("alice")
    await world.account("bob")
    await world.owned_device(owner, SERIAL, channels=2)
    tab = await open_tab(
        browser, str(server.make_url("/")), "nojs", shots, javascript=False
    )
    page = tab.page
    await _log_in(tab, "alice")
    await page.goto(f"/portal/devices/{SERIAL}/share")
    await page.fill("input[name=recipient]", "bob")
    await page.check("input[name=all_permissions]")
    await expect(page.locator("input[name=perm][value='1:ptz']")).not_to_be_checked()
    await page.click("#share-form button[type=submit]")
    await expect(page.locator("#share-result")).to_contain_text("Result: shared")
    shares = await services.shares.device_shares(owner, SERIAL)
    assert [dict(s.permissions) for s in shares.shares] == [
        {1: ALL_PERMISSIONS, 2: ALL_PERMISSIONS}
    ]
    await page.click("text=My account")
    await expect(page.locator("#account-qr")).to_be_visible()
    width = await page.locator("#account-qr").evaluate("(img) => img.naturalWidth")
    assert width > 100  # the data: image decoded under the CSP
    await tab.shot("account")
    assert tab.problems == []


async def test_csp_violations_are_caught(
    browser: Browser, server: TestServer, world: World, shots: Path
) -> None:
    """The watcher the other tests rely on does see a blocked inline script and style."""
    tab = await open_tab(browser, str(server.make_url("/")), "probe", shots)
    await tab.page.goto("/portal/login")
    assert tab.problems == []
    await tab.page.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.injected = true";
            document.body.appendChild(script);
            const style = document.createElement("style");
            style.textContent = "body { color: red }";
            document.head.appendChild(style);
        }"""
    )
    await expect(tab.page.locator("h1")).to_have_text("Log in")
    assert await tab.page.evaluate("() => window.injected === undefined")
    await tab.page.wait_for_function("() => true")  # let the violation events arrive
    deadline = time.monotonic() + 10.0  # console events arrive asynchronously
    while len([p for p in tab.problems if "CSP violation" in p]) < 2:
        if time.monotonic() > deadline:
            break
        await tab.page.wait_for_timeout(20)
    assert any("CSP violation: script-src" in p for p in tab.problems), tab.problems
    assert any("CSP violation: style-src" in p for p in tab.problems), tab.problems


async def test_site_handover_in_two_browsers(
    browser: Browser, server: TestServer, world: World, shots: Path, services: Services
) -> None:
    ivan_account = await world.account("ivan")
    await world.account("olga")
    await world.device(SERIAL, code=CODE, channels=2)
    await services.sites.create_org(ivan_account, "Ivan Installs")
    site = await services.sites.create_site(ivan_account, name="Bakery", address="1 Main St")
    await services.sites.add_device(
        ivan_account, site.id, serial=SERIAL, verification_code=CODE, source="127.0.0.1"
    )
    base = str(server.make_url("/"))
    ivan = await open_tab(browser, base, "ivan", shots)
    olga = await open_tab(browser, base, "olga", shots)
    i, o = ivan.page, olga.page

    await _log_in(ivan, "ivan")
    await i.click("nav >> text=Sites")
    await expect(i.locator("#sites tr[data-site='Bakery']")).to_contain_text("Not Invited")
    await i.click("text=Bakery")
    await i.fill("#invite-form input[name=address]", "olga@example.com")
    await i.fill("#invite-form input[name=remark]", "your new recorder")
    await i.check("input[name=site_info]")
    await i.check(f"input[name=device_perm][value='{SERIAL}:playback']")
    await i.fill("input[name=valid_until]", "2027-02-28")  # the test clock is at 2027-01-15
    await i.check("input[name=allow_disable_service]")
    await ivan.shot("invite-form")
    await i.click("#invite-form button[type=submit]")
    await expect(i.locator(".notice.ok")).to_have_text("Invitation sent.")
    await expect(i.locator("#site-status")).to_have_text("Not Accepted")
    await i.click("text=Resend invitation")
    await expect(i.locator(".notice.ok")).to_have_text("Invitation sent again.")
    await ivan.shot("invited")

    await _log_in(olga, "olga")
    await o.click("nav >> text=Sites")
    banner = o.locator("#site-invitations")
    await expect(banner).to_contain_text("You have 1 site invitation")
    await expect(banner).to_contain_text("Ivan Installs")
    await olga.shot("invitation")
    await banner.locator("button:text('Accept')").click()
    await expect(o.locator(".notice.ok")).to_have_text("The site is now yours.")
    grants = o.locator("#installer-grants")
    await expect(grants).to_contain_text("Site information")
    await expect(grants).to_contain_text("Playback")
    await expect(grants).to_contain_text("2027-03-01 00:00 UTC")  # the last day is inclusive
    await olga.shot("handed-over")
    await o.click("text=Revoke all installer permissions")
    await expect(o.locator(".notice.ok")).to_have_text("Installer permissions revoked.")

    await i.reload()
    await expect(i.locator("#site-status")).to_have_text("Handed Over")
    await ivan.shot("handed-over")
    # Olga allowed the cloud-service switch when accepting.
    await i.click("#service-switch button:text('Switch all off')")
    await expect(i.locator(".notice.ok")).to_contain_text("Cloud service switched off")
    service = i.locator(f"#site-devices tr[data-serial='{SERIAL}'] td.service")
    await expect(service).to_have_text("Off")
    assert ivan.problems == []
    assert olga.problems == []
