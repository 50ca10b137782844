"""The async SDK against a real relay on loopback."""

from __future__ import annotations

import pytest

from nvrshare.client import (
    AccountNotFound,
    NotFound,
    RelayClient,
    RelayRefused,
    RelayUnreachable,
    Unauthorized,
)
from nvrshare.relay.app import Relay
from tests.client.conftest import PASSWORD, register_device
from tests.support.net import free_port


async def test_sdk_share_flow(relay: Relay) -> None:
    await register_device(relay.services, "SN1")
    async with RelayClient(relay.url) as alice, RelayClient(relay.url) as bob:
        await alice.register(email="alice@example.com", password=PASSWORD)
        me_bob = await bob.register(name="bob", password=PASSWORD)
        await alice.login("alice@example.com", PASSWORD)
        await bob.login("bob", PASSWORD)
        assert (await alice.me())["email"] == "alice@example.com"
        await alice.add_device("SN1", "CODE42")
        assert [d["serial"] async for d in alice.iter_devices()] == ["SN1"]
        with pytest.raises(AccountNotFound):
            await alice.share("SN1", name="nobody", permissions={1: ["live_view"]})
        result = await alice.share(
            "SN1", name="bob", permissions={1: ["live_view"], 2: ["playback"]}, remark="r"
        )
        assert result["result"] == "shared"
        share_id = result["share"]["id"]
        assert await bob.pending_count() == 1
        await bob.accept(share_id)
        await bob.rename_received(share_id, "Front door")
        [received] = (await bob.shared_with_me())["items"]
        assert received["alias"] == "Front door"
        token = await bob.issue_token("SN1")
        assert token["permissions"] == {"1": ["live_view"], "2": ["playback"]}
        updated = await alice.update_share(share_id, permissions={2: ["ptz"]}, clear_remark=True)
        assert (updated["permissions"], updated["remark"]) == ({"2": ["ptz"]}, None)
        assert [e["account"]["id"] for e in (await alice.share_history())["items"]] == [
            me_bob["id"]
        ]
        assert await alice.revoke_accounts("SN1", [me_bob["id"]]) == 1
        assert (await bob.shared_with_me())["items"] == []
        qr = await bob.account_qr()
        await alice.share("SN1", qr=qr["payload"], permissions={1: ["alarm"]})
        assert (await alice.account_qr_png()).startswith(b"\x89PNG")
        assert await alice.delete_recipient(me_bob["id"]) == 1
        trail = await alice.device_audit("SN1", limit=200)
        assert "share.created" in [e["action"] for e in trail["items"]]
        await alice.rename_device("SN1", "Home")
        assert (await alice.get_device("SN1"))["alias"] == "Home"
        await alice.remove_device("SN1")
        with pytest.raises(NotFound):
            await alice.get_device("SN1")
        await alice.logout()
        with pytest.raises(Unauthorized):
            await alice.me()
        document = await alice.openapi()
        assert "/api/v1/devices" in document["paths"]


async def test_sdk_errors_are_typed(relay: Relay) -> None:
    async with RelayClient(relay.url) as client:
        with pytest.raises(Unauthorized) as refused:
            await client.me()
        assert refused.value.status == 401
        with pytest.raises(RelayRefused) as bad:
            await client.register(password="short", name="zed")
        assert bad.value.code == "invalid_request"
    async with RelayClient(f"http://127.0.0.1:{free_port()}", timeout=2) as client:
        with pytest.raises(RelayUnreachable):
            await client.me()


async def test_relay_lifecycle_frees_the_port(relay: Relay) -> None:
    assert relay.http_port > 0
    assert relay.url.startswith("http://127.0.0.1:")
