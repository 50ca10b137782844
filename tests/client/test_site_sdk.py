"""The site SDK against a real relay on loopback (in-process, SQLite)."""

from __future__ import annotations

import time

import pytest

from nvrshare.client import RateLimited, RelayRefused
from nvrshare.client.sites import SiteClient, installer_permissions
from nvrshare.relay.app import Relay
from tests.client.conftest import PASSWORD, register_device


async def _user(relay: Relay, name: str) -> SiteClient:
    client = SiteClient(relay.url)
    await client.__aenter__()
    await client.register(name=name, email=f"{name}@example.com", password=PASSWORD)
    await client.login(name, PASSWORD)
    return client


async def test_sdk_installer_handover_flow(relay: Relay) -> None:
    await register_device(relay.services, "SITE1", code="CODE42")
    installer, owner = await _user(relay, "installer"), await _user(relay, "owner")
    try:
        org = await installer.create_installer_org("Acme")
        assert org["name"] == "Acme"
        await owner.register(name="helper", email="helper@example.com", password=PASSWORD)
        member = await installer.add_installer_member("helper", role="manage_assigned",
                                                      device_management=False)  # fmt: skip
        assert member["role"] == "manage_assigned"
        site = await installer.create_site("Bakery", address="1 Main St")
        await installer.add_site_device(site["id"], "SITE1", "CODE42")
        assert [s["id"] async for s in installer.iter_sites()] == [site["id"]]
        now = int(time.time())
        invitation = await installer.invite_site_owner(
            site["id"], email="owner@example.com", remark="from Acme",
            installer_permissions=installer_permissions(
                site_info=(now, now + 3600),
                devices={"SITE1": (["live_view", "playback"], now, now + 3600)},
            ),
            allow_disable_service=True,
        )  # fmt: skip
        assert (await installer.get_site(site["id"]))["status"] == "not_accepted"
        resent = await installer.resend_site_invitation(site["id"])
        assert resent["id"] == invitation["id"]
        [waiting] = await owner.site_invitations()
        assert waiting["remark"] == "from Acme"
        accepted = await owner.accept_site_invitation(waiting["id"])
        assert accepted["status"] == "handed_over"
        assert [d["serial"] async for d in owner.iter_devices()] == ["SITE1"]
        token = await installer.issue_token("SITE1")
        assert token["expires_at"] <= now + 3600
        assert [s["id"] async for s in owner.iter_my_sites()] == [site["id"]]
        renamed = await installer.update_site(site["id"], name="Bakery 2")
        assert renamed["name"] == "Bakery 2"
        switched = await installer.set_site_service(site["id"], enabled=False, serial="SITE1")
        assert switched["devices"][0]["service_enabled"] is False
        with pytest.raises(RelayRefused) as refused:
            await owner.issue_token("SITE1")
        assert (refused.value.status, refused.value.code) == (403, "service_disabled")
        await installer.set_site_service(site["id"], enabled=True)
        await owner.issue_token("SITE1")
        assert await owner.revoke_installer_permissions(site["id"], site_info=True,
                                                        serials=[]) == 1  # fmt: skip
        assert await owner.revoke_installer_permissions(site["id"]) == 1
        with pytest.raises(RelayRefused):
            await installer.issue_token("SITE1")
        again = await owner.grant_installer_permissions(
            site["id"], installer_permissions(devices={"SITE1": (["playback"], now, now + 60)})
        )
        assert [g["permissions"] for g in again["installer_permissions"]] == [["playback"]]
        removed = await installer.remove_site_device(site["id"], "SITE1")
        assert removed["removed_from_owner"] is True
    finally:
        await installer.__aexit__(None, None, None)
        await owner.__aexit__(None, None, None)


async def test_sdk_refusals_keep_codes(relay: Relay) -> None:
    installer = await _user(relay, "installer")
    try:
        with pytest.raises(RelayRefused) as refused:
            await installer.create_site("No org yet")
        assert refused.value.code == "not_an_installer"
        await installer.create_installer_org("Acme")
        site = await installer.create_site("Shop")
        for n in range(5):
            await installer.invite_site_owner(site["id"], email=f"o{n}@example.com")
        with pytest.raises(RateLimited) as limited:
            await installer.invite_site_owner(site["id"], phone="+4915112345678")
        assert limited.value.code == "invitation_limit"
        assert limited.value.retry_after is not None
        assert limited.value.retry_after > 0
    finally:
        await installer.__aexit__(None, None, None)
