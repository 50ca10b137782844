"""Hostile requests: bad bodies, missing auth, oversized bodies → 4xx, clear message, no change.

Also: the OpenAPI document matches the routes, and HTTP-level authorization is
deny-by-default.
"""

from __future__ import annotations

import json
import random
import re

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from nvrshare.relay.api import ROUTES
from nvrshare.relay.services import Services
from nvrshare.relay.services.paging import encode_cursor
from nvrshare.relay.store import schema
from tests.relay.conftest import User, World, signup

V1 = "/api/v1"


@pytest.fixture
async def owner(http: TestClient, world: World) -> tuple[User, User, str]:
    alice, bob = await signup(http, "alice"), await signup(http, "bob")
    await world.device("SN1", code="CODE42")
    status, _ = await alice.call(
        "POST", f"{V1}/devices", json={"serial": "SN1", "verification_code": "CODE42"}
    )
    assert status == 201
    return alice, bob, "SN1"


async def _audit_count(services: Services) -> int:
    async with services.context.store.transaction() as conn:
        return int((await conn.execute(select(func.count()).select_from(schema.audit_log)))
                   .scalar_one())  # fmt: skip


GOOD = {"recipient": {"name": "bob"}, "permissions": {"1": ["live_view"]}}
BAD_SHARE_BODIES = [
    ("not json", "not valid JSON"),
    ("[]", "JSON object"),
    ("NaN", "not valid JSON"),
    (json.dumps({**GOOD, "admin": True}), "unknown field(s): admin"),
    (json.dumps({"recipient": {"name": "bob"}}), "missing field: permissions"),
    (json.dumps({**GOOD, "recipient": "bob"}), "recipient must be of type object"),
    (json.dumps({**GOOD, "remark": 5}), "remark must be of type string"),
    (json.dumps({**GOOD, "permissions": {}}), "permissions"),
    (json.dumps({**GOOD, "permissions": {"1": []}}), "empty"),
    (json.dumps({**GOOD, "permissions": {"1": ["root"]}}), "unknown permission"),
    (json.dumps({**GOOD, "permissions": {"1": "live_view"}}), "list"),
    (json.dumps({**GOOD, "permissions": {"x": ["live_view"]}}), "channel"),
    (json.dumps({**GOOD, "permissions": {"9": ["live_view"]}}), "no channel 9"),
    (json.dumps({**GOOD, "recipient": {"name": "bob", "email": "b@example.com"}}), "exactly one"),
    (json.dumps({**GOOD, "recipient": {"uid": "x"}}), "unknown field"),
    (json.dumps({**GOOD, "recipient": {"email": 5}}), "must be a string"),
    (json.dumps({**GOOD, "remark": "r" * 65}), "too long"),
]


async def test_bad_share_bodies_change_nothing(
    owner: tuple[User, User, str], services: Services
) -> None:
    alice, bob, serial = owner
    before = await _audit_count(services)
    for raw, message in BAD_SHARE_BODIES:
        async with alice.http.post(
            f"{V1}/devices/{serial}/shares", data=raw,
            headers={**alice.headers, "Content-Type": "application/json"},
        ) as response:  # fmt: skip
            assert 400 <= response.status < 500, raw
            body = await response.json()
        assert set(body) == {"error"}
        assert message in body["error"]["message"], (raw, body)
    assert await _audit_count(services) == before
    _, count = await bob.call("GET", f"{V1}/shared-with-me/pending-count")
    assert count["count"] == 0


async def test_wrong_types_on_other_endpoints(owner: tuple[User, User, str]) -> None:
    alice, _bob, serial = owner
    cases = [
        ("POST", f"{V1}/devices", {"serial": 5, "verification_code": "x"}),
        ("POST", f"{V1}/devices", {"serial": "SN1"}),
        ("PATCH", f"{V1}/devices/{serial}", {"alias": 7}),
        ("PATCH", f"{V1}/devices/{serial}", {"name": "x"}),
        ("POST", f"{V1}/devices/{serial}/shares/revoke", {"account_ids": "all"}),
        ("POST", f"{V1}/devices/{serial}/shares/revoke", {"account_ids": []}),
        ("POST", f"{V1}/accounts", {"name": "zed", "password": 12345678}),
        ("POST", f"{V1}/accounts", {"name": "zed", "password": "x" * 12, "is_admin": True}),
        ("POST", f"{V1}/sessions", {"login": "alice"}),
    ]
    for method, path, body in cases:
        status, answer = await alice.call(method, path, json=body)
        assert 400 <= status < 500, (path, body, answer)
        assert answer["error"]["code"] == "invalid_request", answer
    _, device = await alice.call("GET", f"{V1}/devices/{serial}")
    assert device["alias"] is None


async def test_oversized_body_is_413(owner: tuple[User, User, str], services: Services) -> None:
    alice, _bob, serial = owner
    before = await _audit_count(services)
    limit = services.context.config.max_body_bytes
    huge = json.dumps({**GOOD, "remark": "x" * (limit + 10)})
    async with alice.http.post(
        f"{V1}/devices/{serial}/shares", data=huge,
        headers={**alice.headers, "Content-Type": "application/json"},
    ) as response:  # fmt: skip
        assert response.status == 413
        assert (await response.json())["error"]["code"] == "payload_too_large"
    assert await _audit_count(services) == before


async def test_body_on_a_bodiless_route_and_wrong_content_type(
    owner: tuple[User, User, str],
) -> None:
    alice, _bob, serial = owner
    status, body = await alice.call("POST", f"{V1}/devices/{serial}/token", json={"x": 1})
    assert (status, body["error"]["code"]) == (400, "invalid_request")
    status, body = await alice.call(
        "POST", f"{V1}/devices", data="serial=SN1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    assert status == 400
    assert "application/json" in body["error"]["message"]


def _concrete(path: str) -> str:
    return re.sub(r"{(\w+)}", lambda m: "SN1" if m.group(1) == "serial" else "someid", path)


async def test_every_authenticated_route_refuses_missing_or_bad_auth(
    owner: tuple[User, User, str], services: Services
) -> None:
    alice, _bob, _serial = owner
    before = await _audit_count(services)
    for route in ROUTES:
        if not route.auth:
            continue
        for headers in ({}, {"Authorization": "Bearer not-a-real-session-token"},
                        {"Authorization": "Basic YWxpY2U6eA=="}):  # fmt: skip
            async with alice.http.request(
                route.method, _concrete(route.path), headers=headers, json={"alias": "x"}
            ) as response:
                assert response.status == 401, (route.method, route.path)
                assert response.headers["WWW-Authenticate"] == "Bearer"
                assert (await response.json())["error"]["code"] == "unauthorized"
    assert await _audit_count(services) == before
    _, device = await alice.call("GET", f"{V1}/devices/SN1")
    assert device["alias"] is None


async def test_unknown_paths_and_methods_are_json(http: TestClient) -> None:
    async with http.get("/api/v1/nothing-here") as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"
    async with http.put("/api/v1/devices") as response:
        assert response.status == 405
        assert (await response.json())["error"]["code"] == "method_not_allowed"


async def test_openapi_matches_the_routes(http: TestClient) -> None:
    async with http.get("/api/openapi.json") as response:
        assert response.status == 200
        document = await response.json()
    assert document["openapi"].startswith("3.")
    documented = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    # Only /api/ is the JSON API; other sub-apps (the portal) are not in this document.
    served = {
        (route.method, route.resource.canonical)
        for route in http.app.router.routes()
        if route.method != "HEAD"
        and route.resource is not None
        and route.resource.canonical.startswith("/api/")
    }
    assert documented == served
    operation_ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(operation_ids) == len(set(operation_ids))
    share = document["paths"]["/api/v1/devices/{serial}/shares"]["post"]
    schema = share["requestBody"]["content"]["application/json"]["schema"]
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"recipient", "permissions"}


async def test_authorization_is_deny_by_default_over_http(
    owner: tuple[User, User, str], http: TestClient
) -> None:
    alice, bob, serial = owner
    mallory = await signup(http, "mallory")
    await signup(http, "carol")
    _, result = await alice.call(
        "POST", f"{V1}/devices/{serial}/shares",
        json={**GOOD, "remark": "TOP-SECRET-REMARK"},
    )  # fmt: skip
    share_id = result["share"]["id"]
    await bob.call("POST", f"{V1}/shared-with-me/{share_id}/accept")
    # The recipient cannot share, edit, revoke, see remarks or list the device's shares.
    attempts = [
        ("POST", f"{V1}/devices/{serial}/shares",
         {"recipient": {"name": "carol"}, "permissions": {"1": ["live_view"]}}),
        ("PATCH", f"{V1}/shares/{share_id}", {"permissions": {"1": ["ptz"]}}),
        ("DELETE", f"{V1}/shares/{share_id}", None),
        ("GET", f"{V1}/devices/{serial}/shares", None),
        ("DELETE", f"{V1}/devices/{serial}/shares", None),
        ("PATCH", f"{V1}/devices/{serial}", {"alias": "mine now"}),
        ("DELETE", f"{V1}/devices/{serial}", None),
        ("GET", f"{V1}/devices/{serial}", None),
    ]  # fmt: skip
    for user in (bob, mallory):
        for method, path, body in attempts:
            kwargs = {"json": body} if body is not None else {}
            status, answer = await user.call(method, path, **kwargs)
            assert status in (403, 404), (user.email, method, path, answer)
            assert "TOP-SECRET-REMARK" not in json.dumps(answer)
    # Strangers see nothing at all.
    for path in (f"{V1}/devices", f"{V1}/shares", f"{V1}/shared-with-me", f"{V1}/share-history"):
        _, page = await mallory.call("GET", path)
        assert page["items"] == []
    status, _ = await mallory.call("POST", f"{V1}/devices/{serial}/token")
    assert status == 404
    status, _ = await mallory.call("POST", f"{V1}/shared-with-me/{share_id}/reject")
    assert status == 404
    # Nothing changed.
    _, view = await alice.call("GET", f"{V1}/devices/{serial}/shares")
    assert [(s["state"], s["permissions"]) for s in view["shares"]] == [
        ("accepted", {"1": ["live_view"]})
    ]
    _, device = await alice.call("GET", f"{V1}/devices/{serial}")
    assert device["alias"] is None


def _random_json(rng: random.Random, depth: int = 0) -> object:
    choice = rng.randrange(9 if depth < 3 else 6)
    scalars = [None, True, 0, -1, 2**70, 1.5, "", "bob", "²", "\x00", "1", "live_view"]
    if choice < 6:
        return rng.choice(scalars)
    if choice < 7:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["recipient", "permissions", "remark", "email", "name", "1", "2", "qr", "x"]
    return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randrange(4))}


async def test_random_bodies_never_crash_the_api(owner: tuple[User, User, str]) -> None:
    alice, _bob, serial = owner
    rng = random.Random(1234)
    for _ in range(80):
        body = _random_json(rng)
        if rng.random() < 0.5:  # make many of them almost valid
            body = {"recipient": _random_json(rng), "permissions": _random_json(rng)}
        for path in (f"{V1}/devices/{serial}/shares", f"{V1}/devices", f"{V1}/accounts"):
            status, answer = await alice.call("POST", path, json=body)
            assert status < 500, (path, body, answer)
            if status >= 400:
                assert set(answer["error"]) == {"code", "message"}


async def test_forged_cursors_are_400(owner: tuple[User, User, str]) -> None:
    alice, _bob, serial = owner
    forged = [encode_cursor(k) for k in (["x"], ["x", "y"], [2**70], [1.5], [None], [])]
    forged += ["%%%", "A" * 600]
    paths = [
        f"{V1}/devices", f"{V1}/shares", f"{V1}/share-history", f"{V1}/shared-with-me",
        f"{V1}/devices/{serial}/audit",
    ]  # fmt: skip
    for path in paths:
        for cursor in forged:
            status, body = await alice.call("GET", path, params={"cursor": cursor})
            assert status in (200, 400), (path, cursor, body)
            if status == 400:
                assert body["error"]["code"] == "invalid_request"
    for path, cursor in [
        (f"{V1}/share-history", encode_cursor(["x", "y"])),
        (f"{V1}/shared-with-me", encode_cursor(["x", "y"])),
        (f"{V1}/devices/{serial}/audit", encode_cursor(["x"])),
        (f"{V1}/devices/{serial}/audit", encode_cursor([2**70])),
    ]:
        status, _ = await alice.call("GET", path, params={"cursor": cursor})
        assert status == 400, (path, cursor)
