"""Installer sites over HTTP (aiohttp test server on loopback), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st

from nvrshare.relay.api.sites import parse_installer_permissions
from nvrshare.relay.errors import InvalidRequest
from nvrshare.relay.services.sites_model import InstallerPermissionRequest
from tests.relay.conftest import PASSWORD, User, World, signup

V1 = "/api/v1"
HOUR = 3600


@pytest.fixture
async def setup(http: TestClient, world: World) -> tuple[User, User, str, str]:
    """(installer, owner-to-be, site id, serial) with one device in the site."""
    installer, owner = await signup(http, "installer"), await signup(http, "owner")
    status, org = await installer.call("POST", f"{V1}/installer/org", json={"name": "Acme"})
    assert status == 201, org
    status, site = await installer.call(
        "POST", f"{V1}/sites", json={"name": "Bakery", "address": "1 Main St"}
    )
    assert (status, site["status"]) == (201, "not_invited"), site
    await world.device("SITE-SN1", code="CODE42", channels=2)
    status, added = await installer.call(
        "POST", f"{V1}/sites/{site['id']}/devices",
        json={"serial": "SITE-SN1", "verification_code": "CODE42"},
    )  # fmt: skip
    assert status == 201, added
    assert [d["serial"] for d in added["devices"]] == ["SITE-SN1"]
    return installer, owner, site["id"], "SITE-SN1"


async def test_handover_end_to_end(
    setup: tuple[User, User, str, str], world: World
) -> None:
    installer, owner, site_id, serial = setup
    now = int(world.clock.now)
    status, invitation = await installer.call(
        "POST", f"{V1}/sites/{site_id}/invitation",
        json={
            "email": owner.email, "remark": "Hello from Acme", "allow_disable_service": True,
            "installer_permissions": {
                "site_info": {"valid_from": now, "valid_until": now + 24 * HOUR},
                "devices": {serial: {"permissions": ["live_view", "playback"],
                                     "valid_from": now, "valid_until": now + HOUR}},
            },
        },
    )  # fmt: skip
    assert status == 201, invitation
    _, site = await installer.call("GET", f"{V1}/sites/{site_id}")
    assert site["status"] == "not_accepted"
    # The invitee sees the invitation and its remark.
    _, waiting = await owner.call("GET", f"{V1}/site-invitations")
    [seen] = waiting["items"]
    assert seen["remark"] == "Hello from Acme"
    assert seen["installer"] == "Acme"
    assert seen["installer_permissions"]["devices"][serial]["permissions"] == [
        "live_view", "playback"
    ]
    status, accepted = await owner.call("POST", f"{V1}/site-invitations/{seen['id']}/accept")
    assert (status, accepted["status"]) == (200, "handed_over"), accepted
    # The owner owns the device; the installer has a timed token only.
    status, device = await owner.call("GET", f"{V1}/devices/{serial}")
    assert status == 200, device
    status, token = await installer.call("POST", f"{V1}/devices/{serial}/token")
    assert status == 201, token
    assert token["expires_at"] <= now + HOUR
    assert token["permissions"] == {"1": ["live_view", "playback"], "2": ["live_view",
                                                                           "playback"]}  # fmt: skip
    _, mine = await owner.call("GET", f"{V1}/my-sites")
    [entry] = mine["items"]
    assert {g["scope"] for g in entry["installer_permissions"]} == {"site_info", "device"}
    # Site information permission lets the installer rename the site.
    status, renamed = await installer.call("PATCH", f"{V1}/sites/{site_id}",
                                           json={"name": "Bakery & Cafe"})  # fmt: skip
    assert (status, renamed["name"]) == (200, "Bakery & Cafe")
    # Service switch off: nobody gets a token.
    status, switched = await installer.call("PUT", f"{V1}/sites/{site_id}/service",
                                            json={"enabled": False})  # fmt: skip
    assert status == 200, switched
    assert switched["devices"][0]["service_enabled"] is False
    status, refused = await owner.call("POST", f"{V1}/devices/{serial}/token")
    assert (status, refused["error"]["code"]) == (403, "service_disabled")
    # The owner revokes the installer's permissions.
    status, revoked = await owner.call(
        "POST", f"{V1}/my-sites/{site_id}/installer-permissions/revoke", json={"site_info": True}
    )
    assert (status, revoked) == (200, {"revoked": 2})
    # The installer may still remove the device from the owner (consent given).
    status, removed = await installer.call("DELETE", f"{V1}/sites/{site_id}/devices/{serial}")
    assert (status, removed["removed_from_owner"]) == (200, True)
    status, _ = await owner.call("GET", f"{V1}/devices/{serial}")
    assert status == 404


async def _relogin(http: TestClient, user: User) -> User:
    """A fresh session (a day later the old one has expired)."""
    async with http.post(f"{V1}/sessions",
                         json={"login": user.email, "password": PASSWORD}) as response:  # fmt: skip
        assert response.status == 201
        token = (await response.json())["token"]
    return User(http=http, account_id=user.account_id, token=token, email=user.email)


async def test_daily_limit_and_invalidation_over_http(
    setup: tuple[User, User, str, str], http: TestClient, world: World
) -> None:
    installer, owner, site_id, _serial = setup
    ids = []
    for n in range(5):
        world.clock.advance(1)
        status, invitation = await installer.call(
            "POST", f"{V1}/sites/{site_id}/invitation", json={"email": f"p{n}@example.com"}
        )
        assert status == 201, invitation
        ids.append(invitation["id"])
    async with http.post(f"{V1}/sites/{site_id}/invitation", headers=installer.headers,
                         json={"email": owner.email}) as response:  # fmt: skip
        assert response.status == 429
        assert (await response.json())["error"]["code"] == "invitation_limit"
        assert int(response.headers["Retry-After"]) == 24 * HOUR - 4
    world.clock.advance(24 * HOUR)
    installer, owner = await _relogin(http, installer), await _relogin(http, owner)
    status, first = await installer.call(
        "POST", f"{V1}/sites/{site_id}/invitation", json={"email": owner.email}
    )
    assert status == 201
    status, second = await installer.call(
        "POST", f"{V1}/sites/{site_id}/invitation", json={"email": owner.email}
    )
    assert status == 201
    status, refused = await owner.call("POST", f"{V1}/site-invitations/{first['id']}/accept")
    assert (status, refused["error"]["code"]) == (409, "invitation_invalidated")
    status, resent = await installer.call("POST", f"{V1}/sites/{site_id}/invitation/resend")
    assert (status, resent["id"]) == (200, second["id"])


async def test_permission_unavailable_is_a_clear_422(
    setup: tuple[User, User, str, str], world: World
) -> None:
    installer, _owner, _site_id, _serial = setup
    now = int(world.clock.now)
    _, empty = await installer.call("POST", f"{V1}/sites", json={"name": "Empty"})
    status, refused = await installer.call(
        "POST", f"{V1}/sites/{empty['id']}/invitation",
        json={"email": "x@example.com", "installer_permissions": {"devices": {
            "SITE-SN1": {"permissions": ["configuration"], "valid_from": now,
                         "valid_until": now + HOUR}}}},
    )  # fmt: skip
    assert status == 422, refused
    assert refused["error"]["code"] == "installer_permission_unavailable"
    assert "no devices" in refused["error"]["message"]


HOSTILE = [
    {"email": "a@example.com", "surprise": 1},
    {"email": 5},
    {"email": "a@example.com", "allow_disable_service": "yes"},
    {"email": "a@example.com", "installer_permissions": []},
    {"email": "a@example.com", "installer_permissions": {"devices": {"SITE-SN1": {}}}},
    {"email": "a@example.com", "installer_permissions": {"devices": {"SITE-SN1": {
        "permissions": ["root"], "valid_from": 1, "valid_until": 2}}}},
    {"email": "a@example.com", "installer_permissions": {"devices": {"SITE-SN1": {
        "permissions": ["playback"], "valid_from": True, "valid_until": 2}}}},
    {"email": "a@example.com", "installer_permissions": {"devices": {"SITE-SN1": {
        "permissions": ["playback"], "valid_from": 10, "valid_until": 5}}}},
    {"email": "a@example.com", "installer_permissions": {"devices": {
        f"SN{i}": {"permissions": ["playback"], "valid_from": 1, "valid_until": 2}
        for i in range(65)}}},
    {"email": "not-an-email"},
    {"phone": "12"},
    {},
    {"email": "a@example.com", "remark": "x" * 129},
    {"email": "a@example.com", "remark": "bell\x07"},
]  # fmt: skip


async def test_hostile_invitation_bodies_are_400s(setup: tuple[User, User, str, str]) -> None:
    installer, _owner, site_id, _serial = setup
    for body in HOSTILE:
        status, answer = await installer.call(
            "POST", f"{V1}/sites/{site_id}/invitation", json=body
        )
        assert status in (400, 422), (body, answer)
        assert set(answer["error"]) == {"code", "message"}
    _, site = await installer.call("GET", f"{V1}/sites/{site_id}")
    assert site["status"] == "not_invited"


async def test_site_endpoints_deny_by_default(
    setup: tuple[User, User, str, str], http: TestClient
) -> None:
    installer, owner, site_id, serial = setup
    mallory = await signup(http, "mallory")
    await installer.call("POST", f"{V1}/sites/{site_id}/invitation",
                         json={"email": owner.email, "remark": "SECRET-REMARK"})  # fmt: skip
    attempts = [
        ("GET", f"{V1}/sites/{site_id}", None),
        ("PATCH", f"{V1}/sites/{site_id}", {"name": "mine"}),
        ("POST", f"{V1}/sites/{site_id}/invitation", {"email": "m@example.com"}),
        ("POST", f"{V1}/sites/{site_id}/invitation/resend", None),
        ("DELETE", f"{V1}/sites/{site_id}/devices/{serial}", None),
        ("PUT", f"{V1}/sites/{site_id}/service", {"enabled": False}),
        ("GET", f"{V1}/my-sites/{site_id}", None),
        ("POST", f"{V1}/my-sites/{site_id}/installer-permissions/revoke", {}),
        ("GET", f"{V1}/installer/org", None),
    ]
    for user in (mallory, owner):
        for method, path, body in attempts:
            kwargs = {"json": body} if body is not None else {}
            status, answer = await user.call(method, path, **kwargs)
            assert status in (403, 404), (user.email, method, path, answer)
            assert "SECRET-REMARK" not in json.dumps(answer)
    _, waiting = await mallory.call("GET", f"{V1}/site-invitations")
    assert waiting == {"items": []}
    # Without a session: 401 everywhere.
    async with http.get(f"{V1}/sites") as response:
        assert response.status == 401


async def test_openapi_documents_site_routes(http: TestClient) -> None:
    async with http.get("/api/openapi.json") as response:
        document = await response.json()
    invite = document["paths"]["/api/v1/sites/{site_id}/invitation"]["post"]
    schema = invite["requestBody"]["content"]["application/json"]["schema"]
    assert schema["additionalProperties"] is False
    assert "installer_permissions" in schema["properties"]
    assert "/api/v1/site-invitations/{invitation_id}/accept" in document["paths"]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=4),
    max_leaves=20,
)  # fmt: skip
_NEAR = st.fixed_dictionaries(
    {},
    optional={
        "site_info": st.none() | st.fixed_dictionaries(
            {"valid_from": _JSON, "valid_until": _JSON}),
        "devices": st.dictionaries(
            st.text(max_size=70),
            st.fixed_dictionaries({"permissions": st.lists(
                st.sampled_from(["live_view", "playback", "configuration", "ptz", ""]),
                max_size=5), "valid_from": _JSON, "valid_until": _JSON}) | _JSON,
            max_size=3),
    },
)  # fmt: skip


@given(value=_JSON | _NEAR)
def test_installer_permissions_parse_or_refuse(value: object) -> None:
    """Any JSON either parses into a request or is refused with `InvalidRequest`."""
    try:
        request = parse_installer_permissions(value)
    except InvalidRequest:
        return
    assert isinstance(request, InstallerPermissionRequest)
    for device in request.devices:
        assert device.permissions
        assert type(device.validity.valid_from) is int


def _conforms(value: Any, schema: dict[str, Any], where: str) -> None:
    """`value` has exactly the keys its schema lists, recursively (oneOf: the object branch)."""
    if "oneOf" in schema:
        if value is None:
            return
        schema = next(s for s in schema["oneOf"] if s.get("type") == "object")
    if "properties" in schema:
        assert isinstance(value, dict), where
        assert set(value) == set(schema["properties"]), (where, set(value))
        for key, item in value.items():
            _conforms(item, schema["properties"][key], f"{where}.{key}")
    elif schema.get("type") == "array":
        for i, item in enumerate(value):
            _conforms(item, schema["items"], f"{where}[{i}]")
    elif isinstance(schema.get("additionalProperties"), dict):
        for key, item in value.items():
            _conforms(item, schema["additionalProperties"], f"{where}[{key}]")


def test_rendered_site_records_match_the_documented_schemas() -> None:
    from nvrshare.relay.api import ROUTES  # noqa: PLC0415
    from nvrshare.relay.api import sites_render as api  # noqa: PLC0415
    from nvrshare.relay.api.openapi import build_document  # noqa: PLC0415
    from nvrshare.relay.api.sites import SITE_ROUTES  # noqa: PLC0415
    from nvrshare.relay.services.sites_model import (  # noqa: PLC0415
        DevicePermission,
        DevicePermissionRequest,
        InstallerGrant,
        InstallerMember,
        InstallerOrg,
        InstallerRole,
        Site,
        SiteDevice,
        SiteInvitation,
        SiteStatus,
        Validity,
    )

    period = Validity(valid_from=1, valid_until=2)
    request = InstallerPermissionRequest(site_info=period, devices=(DevicePermissionRequest(
        serial="SN1", permissions=frozenset({DevicePermission.PLAYBACK}), validity=period),))
    invitation = SiteInvitation(
        id="i1", site_id="s1", site_name="Bakery", site_address="1 Main St", org_name="Acme",
        channel="email", address="o@example.com", remark=None, request=request,
        allow_disable_service=True, state="pending", created_at=1.0, last_sent_at=1.0,
        expires_at=2.0,
    )
    site = Site(
        id="s1", org_id="o1", name="Bakery", address="", status=SiteStatus.NOT_ACCEPTED,
        created_at=1.0, owner_id=None, installer_id=None, handed_over_at=None,
        allow_disable_service=False,
        devices=(SiteDevice(serial="SN1", model="M", online=True, channels=4,
                            service_enabled=True),),
        invitation=invitation,
        grants=(InstallerGrant(device_serial=None, installer_id="a1", permissions=frozenset(),
                               validity=period, active=True),),
        assignees=("a1",),
    )
    member = InstallerMember(account_id="a1", org_id="o1", role=InstallerRole.MANAGE_ALL,
                             device_management=True, email=None, phone=None, name="a")
    org = InstallerOrg(id="o1", name="Acme", created_at=1.0)
    _conforms(api.render_site(site), api.SITE_SCHEMA, "site")
    _conforms(api.render_invitation(invitation), api.INVITATION_SCHEMA, "invitation")
    _conforms(api.render_org(org, (member,)), api.ORG_SCHEMA, "org")
    _conforms(api.render_member(member), api.MEMBER_SCHEMA, "member")
    document = build_document(ROUTES)
    for route in SITE_ROUTES:
        answer = document["paths"][route.path][route.method.lower()]["responses"]
        if route.status != 204:
            assert "schema" in answer[str(route.status)]["content"]["application/json"], route
