"""The HTTP API end to end (aiohttp test server on loopback), on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from nvrshare.protocol.tokens import Audience, TokenVerifier, token_from_text
from nvrshare.relay.services import Services
from tests.relay.conftest import User, World, signup

V1 = "/api/v1"


@pytest.fixture
async def trio(http: TestClient, world: World) -> tuple[User, User, str]:
    alice, bob = await signup(http, "alice"), await signup(http, "bob")
    await world.device("SN1", code="CODE42", channels=4, domain="alice-home")
    status, device = await alice.call(
        "POST", f"{V1}/devices", json={"serial": "SN1", "verification_code": "CODE42"}
    )
    assert status == 201, device
    return alice, bob, "SN1"


async def test_share_device_end_to_end(trio: tuple[User, User, str], services: Services) -> None:
    alice, bob, serial = trio
    status, devices = await alice.call("GET", f"{V1}/devices")
    assert status == 200
    [device] = devices["items"]
    assert (device["serial"], device["domain"], device["status"]) == (serial, "alice-home",
                                                                      "online")  # fmt: skip
    assert [c["number"] for c in device["channels"]] == [1, 2, 3, 4]
    # Share: result "shared".
    status, result = await alice.call(
        "POST", f"{V1}/devices/{serial}/shares",
        json={"recipient": {"email": bob.email},
              "permissions": {"1": ["live_view", "playback"], "3": ["ptz"]},
              "remark": "PRIVATE-REMARK"},
    )  # fmt: skip
    assert status == 201, result
    assert result["result"] == "shared"
    share = result["share"]
    assert share["state"] == "pending"
    assert share["remark"] == "PRIVATE-REMARK"
    # Recipient: "you have 1 new sharings", accept, see the device and the sharer.
    status, count = await bob.call("GET", f"{V1}/shared-with-me/pending-count")
    assert count == {"count": 1, "message": "you have 1 new sharings"}
    status, _ = await bob.call("POST", f"{V1}/shared-with-me/{share['id']}/accept")
    assert status == 204
    status, received = await bob.call("GET", f"{V1}/shared-with-me")
    [item] = received["items"]
    assert item["device"]["serial"] == serial
    assert item["device"]["ip"] == "192.0.2.10"
    assert item["sharer"]["id"] == alice.account_id
    assert item["permissions"] == {"1": ["live_view", "playback"], "3": ["ptz"]}
    assert "PRIVATE-REMARK" not in json.dumps(received)
    # A token for each, carrying exactly their matrix.
    status, token = await bob.call("POST", f"{V1}/devices/{serial}/token")
    assert status == 201
    claims = TokenVerifier(services.keys.key_ring, Audience.AGENT).verify(
        token_from_text(token["token"]), now=services.context.clock()
    )
    assert claims.account_id == bob.account_id
    assert set(claims.channels) == {1, 3}
    # Owner: my shared devices (remark included), edit, rename, history.
    status, mine = await alice.call("GET", f"{V1}/shares")
    [entry] = mine["items"]
    assert entry["shares"][0]["remark"] == "PRIVATE-REMARK"
    assert entry["shares"][0]["state"] == "accepted"
    status, edited = await alice.call(
        "PATCH", f"{V1}/shares/{share['id']}", json={"permissions": {"2": ["alarm"]}}
    )
    assert (status, edited["permissions"]) == (200, {"2": ["alarm"]})
    status, renamed = await alice.call("PATCH", f"{V1}/devices/{serial}", json={"alias": "Home"})
    assert renamed["alias"] == "Home"
    status, _ = await bob.call(
        "PATCH", f"{V1}/shared-with-me/{share['id']}", json={"alias": "Alice's place"}
    )
    assert status == 204
    status, history = await alice.call("GET", f"{V1}/share-history")
    assert [h["account"]["id"] for h in history["items"]] == [bob.account_id]
    # The recipient never sees a remark, in any response.
    for path in (f"{V1}/shared-with-me", f"{V1}/shared-with-me?state=accepted"):
        _, body = await bob.call("GET", path)
        assert "remark" not in json.dumps(body).lower()
    # Stop sharing; the recipient's list empties.
    status, revoked = await alice.call("DELETE", f"{V1}/devices/{serial}/shares")
    assert (status, revoked) == (200, {"revoked": 1})
    _, received = await bob.call("GET", f"{V1}/shared-with-me")
    assert received["items"] == []
    status, _ = await alice.call("DELETE", f"{V1}/devices/{serial}")
    assert status == 204
    _, devices = await alice.call("GET", f"{V1}/devices")
    assert devices["items"] == []


async def test_share_results(trio: tuple[User, User, str], http: TestClient) -> None:
    alice, _bob, serial = trio
    await signup(http, "yank", region="NA")
    cases = [
        ({"email": "nobody@example.com"}, 404, "account_not_found", "the account doesn't exist"),
        ({"name": "yank"}, 403, "cross_region_share", "cross-regional share is not allowed"),
        ({"name": "alice"}, 422, "self_share", "yourself"),
    ]
    for recipient, status, code, message in cases:
        got, body = await alice.call(
            "POST", f"{V1}/devices/{serial}/shares",
            json={"recipient": recipient, "permissions": {"1": ["live_view"]}},
        )  # fmt: skip
        assert got == status, body
        assert body["error"]["code"] == code
        assert message in body["error"]["message"]


async def test_network_busy_is_503_with_retry_after(
    trio: tuple[User, User, str], services: Services
) -> None:
    alice, bob, serial = trio
    engine = services.context.store.engine.sync_engine

    def fail(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO SHARES"):
            raise OperationalError(statement, None, ConnectionError("server closed"))

    event.listen(engine, "before_cursor_execute", fail)
    try:
        async with alice.http.post(
            f"{V1}/devices/{serial}/shares", headers=alice.headers,
            json={"recipient": {"name": "bob"}, "permissions": {"1": ["live_view"]}},
        ) as response:  # fmt: skip
            assert response.status == 503
            assert int(response.headers["Retry-After"]) > 0
            body = await response.json()
    finally:
        event.remove(engine, "before_cursor_execute", fail)
    assert body["error"]["code"] == "network_busy"
    _, count = await bob.call("GET", f"{V1}/shared-with-me/pending-count")
    assert count["count"] == 0


async def test_qr_code_share(trio: tuple[User, User, str]) -> None:
    alice, bob, serial = trio
    status, qr = await bob.call("GET", f"{V1}/account/qr")
    assert status == 200
    assert qr["payload"].startswith("nvrshare:account:v1:")
    async with bob.http.get(f"{V1}/account/qr.png", headers=bob.headers) as response:
        assert response.status == 200
        assert response.content_type == "image/png"
        assert (await response.read()).startswith(b"\x89PNG")
    status, result = await alice.call(
        "POST", f"{V1}/devices/{serial}/shares",
        json={"recipient": {"qr": qr["payload"]}, "permissions": {"2": ["live_view"]}},
    )  # fmt: skip
    assert status == 201
    assert result["share"]["recipient"]["id"] == bob.account_id


async def test_recipient_reject_and_delete(trio: tuple[User, User, str], http: TestClient) -> None:
    alice, bob, serial = trio
    carol = await signup(http, "carol")
    ids = {}
    for user in (bob, carol):
        _, result = await alice.call(
            "POST", f"{V1}/devices/{serial}/shares",
            json={"recipient": {"account_id": user.account_id},
                  "permissions": {"1": ["live_view"]}},
        )  # fmt: skip
        ids[user.account_id] = result["share"]["id"]
    assert (await bob.call("POST", f"{V1}/shared-with-me/{ids[bob.account_id]}/reject"))[0] == 204
    status, body = await bob.call("POST", f"{V1}/shared-with-me/{ids[bob.account_id]}/accept")
    assert (status, body["error"]["code"]) == (409, "conflict")
    await carol.call("POST", f"{V1}/shared-with-me/{ids[carol.account_id]}/accept")
    assert (await carol.call("DELETE", f"{V1}/shared-with-me/{ids[carol.account_id]}"))[0] == 204
    _, view = await alice.call("GET", f"{V1}/devices/{serial}/shares")
    assert [(s["recipient"]["id"], s["state"]) for s in view["shares"]] == [
        (bob.account_id, "rejected")
    ]
    status, result = await alice.call(
        "POST", f"{V1}/devices/{serial}/shares/revoke", json={"account_ids": [bob.account_id]}
    )
    assert (status, result) == (200, {"revoked": 1})
    status, result = await alice.call("DELETE", f"{V1}/recipients/{carol.account_id}")
    assert (status, result) == (200, {"revoked": 0})
    _, history = await alice.call("GET", f"{V1}/share-history")
    assert [h["account"]["id"] for h in history["items"]] == [bob.account_id]


async def test_pagination_over_http(http: TestClient, world: World) -> None:
    alice = await signup(http, "alice")
    for i in range(3):
        await world.device(f"SN{i}", code="C0DE")
        await alice.call("POST", f"{V1}/devices", json={"serial": f"SN{i}",
                                                       "verification_code": "C0DE"})  # fmt: skip
    serials, cursor = [], None
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, page = await alice.call("GET", f"{V1}/devices{query}")
        assert status == 200
        serials += [d["serial"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert serials == ["SN0", "SN1", "SN2"]
    for bad in ("?limit=0", "?limit=201", "?limit=abc", "?cursor=%%%", "?cursor=W10"):
        status, body = await alice.call("GET", f"{V1}/devices{bad}")
        assert status == 400, bad
        assert body["error"]["code"] == "invalid_request"


async def test_login_errors_over_http(http: TestClient, world: World) -> None:
    await signup(http, "alice")
    async with http.post(
        f"{V1}/sessions", json={"login": "alice", "password": "wrong password"}
    ) as response:
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "unauthorized"
    for _ in range(world.services.context.config.login_failures_per_account):
        async with http.post(f"{V1}/sessions", json={"login": "alice", "password": "nope"}):
            pass
    async with http.post(
        f"{V1}/sessions", json={"login": "alice", "password": "correct horse battery"}
    ) as response:
        assert response.status == 429
        assert "Retry-After" in response.headers
    async with http.post(f"{V1}/accounts", json={"name": "alice", "password": "x" * 12}) as r:
        assert r.status == 409
        assert (await r.json())["error"]["code"] == "account_exists"


async def test_device_audit_trail_for_the_owner_only(
    trio: tuple[User, User, str], world: World
) -> None:
    alice, bob, serial = trio
    _, result = await alice.call(
        "POST", f"{V1}/devices/{serial}/shares",
        json={"recipient": {"name": "bob"}, "permissions": {"1": ["live_view"]}},
    )  # fmt: skip
    await bob.call("POST", f"{V1}/shared-with-me/{result['share']['id']}/accept")
    status, page = await alice.call("GET", f"{V1}/devices/{serial}/audit?limit=2")
    assert status == 200
    assert [e["action"] for e in page["items"]] == ["share.accepted", "share.created"]
    _, rest = await alice.call("GET", f"{V1}/devices/{serial}/audit?cursor={page['next_cursor']}")
    # (the registration happened at the same fake instant as the bind)
    assert [e["action"] for e in rest["items"]] == ["device.bound", "device.registered"]
    assert rest["next_cursor"] is None
    status, _ = await bob.call("GET", f"{V1}/devices/{serial}/audit")
    assert status == 404
    # A later owner does not see the previous owner's trail.
    await alice.call("DELETE", f"{V1}/devices/{serial}")
    world.clock.advance(1)
    status, _ = await bob.call(
        "POST", f"{V1}/devices", json={"serial": serial, "verification_code": "CODE42"}
    )
    assert status == 201
    _, trail = await bob.call("GET", f"{V1}/devices/{serial}/audit")
    assert [e["action"] for e in trail["items"]] == ["device.bound"]
