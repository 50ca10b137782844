"""The OpenAPI document describes what the handlers really render."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from nvrshare.protocol.messages import PtzAction
from nvrshare.protocol.permissions import Permission
from nvrshare.relay.api import ROUTES, create_app, render
from nvrshare.relay.api.openapi import add_operation, build_document
from nvrshare.relay.assembly.ptz import PTZ_PATH, PtzGateway
from nvrshare.relay.services import Services
from nvrshare.relay.services.models import (
    Account,
    AccountRef,
    Channel,
    DataEndpoint,
    Device,
    DeviceShares,
    HistoryEntry,
    IssuedToken,
    OwnerShare,
    Page,
    ReceivedShare,
    ShareState,
)

DOCUMENT = build_document(ROUTES)
SCHEMAS = DOCUMENT["components"]["schemas"]

REF = AccountRef(id="a1", email="a@example.com", phone=None, name="a")
CHANNELS = (Channel(number=1, name="Gate"),)
DEVICE = Device(
    serial="SN1", domain="home", alias=None, model="M", firmware_version="V1", ip="192.0.2.1",
    port=8000, online=True, last_seen=1.0, channels=CHANNELS, owner_id="a1", share_epoch=3,
    grant_version=4,
)  # fmt: skip
OWNER_SHARE = OwnerShare(
    id="s1", device_serial="SN1", recipient=REF, state=ShareState.PENDING,
    permissions={1: Permission.LIVE_VIEW}, remark="r", created_at=1.0, updated_at=2.0,
)  # fmt: skip
RECEIVED = ReceivedShare(
    id="s1", device_serial="SN1", domain="home", model="M", ip="192.0.2.1", port=8000,
    online=False, last_seen=None, channels=CHANNELS, sharer=REF, state=ShareState.ACCEPTED,
    permissions={1: Permission.PTZ}, alias=None, created_at=1.0,
)  # fmt: skip


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return SCHEMAS[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _conforms(value: Any, schema: dict[str, Any], where: str) -> None:
    schema = _resolve(schema)
    if "properties" in schema:
        assert isinstance(value, dict), where
        assert set(value) == set(schema["properties"]), (where, set(value))
        for key, item in value.items():
            _conforms(item, schema["properties"][key], f"{where}.{key}")
    elif schema.get("type") == "array":
        for i, item in enumerate(value):
            _conforms(item, schema["items"], f"{where}[{i}]")


def test_rendered_records_match_their_schemas() -> None:
    samples = {
        "Account": render.account(
            Account(
                id="a1", email=None, phone="+15550000000", name=None, region="EU", created_at=1.0
            )
        ),
        "AccountRef": render.account_ref(REF),
        "Device": render.device(DEVICE),
        "OwnerShare": render.owner_share(OWNER_SHARE),
        "DeviceShares": render.device_shares(DeviceShares(device=DEVICE, shares=(OWNER_SHARE,))),
        "ReceivedShare": render.received_share(RECEIVED),
        "HistoryEntry": render.history_entry(HistoryEntry(account=REF, last_shared_at=1.0)),
        "IssuedToken": render.issued_token(
            IssuedToken(
                token="t",
                device_serial="SN1",
                expires_at=2,
                share_epoch=1,
                permissions={1: Permission.ALARM},
                data_endpoint=DataEndpoint(host="relay.example", port=7000, tls=True),
            )
        ),
        "DataEndpoint": render.issued_token(
            IssuedToken(
                token="t", device_serial="SN1", expires_at=2, share_epoch=1, permissions={},
                data_endpoint=DataEndpoint(host="relay.example", port=7000, tls=False),
            )
        )["data_endpoint"],
    }  # fmt: skip
    for name, value in samples.items():
        _conforms(value, {"$ref": f"#/components/schemas/{name}"}, name)
    page = render.page(Page(items=(DEVICE,), next_cursor=None), render.device)
    list_devices = DOCUMENT["paths"]["/api/v1/devices"]["get"]["responses"]["200"]
    _conforms(page, list_devices["content"]["application/json"]["schema"], "page")


def test_every_reference_resolves_and_control_plane_routes_have_schemas() -> None:
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(DOCUMENT)
    assert refs
    for target in refs:
        assert target.rsplit("/", 1)[1] in SCHEMAS, target
    for route in ROUTES:
        if route.tag in {"accounts", "devices", "shares", "shared-with-me", "meta"}:
            success = DOCUMENT["paths"][route.path][route.method.lower()]["responses"]
            answer = success[str(route.status)]
            assert route.status == 204 or "schema" in answer["content"][route.content_type], (
                route.method, route.path,
            )  # fmt: skip


async def test_the_assembled_relay_documents_its_ptz_route(services: Services) -> None:
    app = create_app(services)
    PtzGateway(lambda: None).install(None, app)
    async with TestClient(TestServer(app, host="127.0.0.1")) as http:
        async with http.get("/api/openapi.json") as response:
            document = await response.json()
        served = {
            (route.method, route.resource.canonical)
            for route in http.app.router.routes()
            if route.method != "HEAD"
            and route.resource is not None
            and route.resource.canonical.startswith("/api/")
        }
    documented = {
        (method.upper(), path) for path, ops in document["paths"].items() for method in ops
    }
    assert ("POST", PTZ_PATH) in served
    assert documented == served
    operation = document["paths"][PTZ_PATH]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {"channel", "action", "pan", "tilt", "zoom", "preset"}
    assert set(body["properties"]["action"]["enum"]) == {a.value for a in PtzAction}
    assert operation["security"] == [{"bearer": []}]
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    with pytest.raises(ValueError, match="already described"):
        add_operation(document, "post", PTZ_PATH, operation)
