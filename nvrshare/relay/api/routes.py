"""Every endpoint of the control-plane API, in one table."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp import web

from nvrshare.relay.api import handlers as h
from nvrshare.relay.api.bodies import MATRIX_SCHEMA, Field
from nvrshare.relay.api.routing import Call, QueryParam, Route, json_response
from nvrshare.relay.api.schemas import page_of, ref
from nvrshare.relay.api.sites import SITE_ROUTES
from nvrshare.relay.services.paging import MAX_LIMIT

__all__ = ["API", "OPENAPI_PATH", "ROUTES"]

API = "/api/v1"
OPENAPI_PATH = "/api/openapi.json"

PAGING = (
    QueryParam(
        name="limit",
        description=f"page size, 1..{MAX_LIMIT} (default 50)",
        schema={"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    ),
    QueryParam(
        name="cursor",
        description="next_cursor from the previous page",
        schema={"type": "string", "maxLength": 512},
    ),
)
STATE = QueryParam(
    name="state",
    description="only shares in this state (default: pending and accepted)",
    schema={"enum": ["pending", "accepted", "rejected"]},
)

ALIAS = {"alias": Field(type="string", required=True, nullable=True, max_length=64,
                        description="a display name; null clears it")}  # fmt: skip
RECIPIENT_SCHEMA: dict[str, Any] = {
    "description": "exactly one way to name the account",
    "minProperties": 1,
    "maxProperties": 1,
    "additionalProperties": False,
    "properties": {
        "email": {"type": "string"},
        "phone": {"type": "string"},
        "name": {"type": "string"},
        "account_id": {"type": "string"},
        "qr": {"type": "string", "description": "a scanned account QR payload"},
    },
}


async def _openapi(call: Call) -> web.StreamResponse:
    from nvrshare.relay.api.app import OPENAPI_DOCUMENT  # noqa: PLC0415 (import cycle)

    return json_response(call.request.app[OPENAPI_DOCUMENT])


ROUTES: tuple[Route, ...] = (
    Route(method="GET", path="/api/health", handler=h.health, summary="liveness",
          tag="meta", auth=False),
    Route(method="GET", path=OPENAPI_PATH, handler=_openapi, summary="this document",
          tag="meta", auth=False),
    # accounts
    Route(method="POST", path=f"{API}/accounts", handler=h.register, tag="accounts",
          summary="register an account (email and/or phone and/or name)", auth=False, status=201,
          body={
              "email": Field(type="string", max_length=254),
              "phone": Field(type="string", max_length=32),
              "name": Field(type="string", max_length=32),
              "password": Field(type="string", required=True, max_length=256),
              "region": Field(type="string", max_length=8),
          }),
    Route(method="POST", path=f"{API}/sessions", handler=h.login, tag="accounts",
          summary="log in: returns an expiring bearer session", auth=False, status=201,
          body={
              "login": Field(type="string", required=True, max_length=254,
                             description="email, phone number or account name"),
              "password": Field(type="string", required=True, max_length=256),
          }),
    Route(method="DELETE", path=f"{API}/sessions/current", handler=h.logout, tag="accounts",
          summary="log out (end this session)", status=204),
    Route(method="GET", path=f"{API}/account", handler=h.me, tag="accounts",
          summary="the logged-in account"),
    Route(method="GET", path=f"{API}/account/qr", handler=h.account_qr, tag="accounts",
          summary="signed account QR payload (and its PNG, base64)"),
    Route(method="GET", path=f"{API}/account/qr.png", handler=h.account_qr_png, tag="accounts",
          summary="the account QR code as a PNG", content_type="image/png"),
    # devices
    Route(method="GET", path=f"{API}/devices", handler=h.list_devices, tag="devices",
          summary="devices you own", query=PAGING),
    Route(method="POST", path=f"{API}/devices", handler=h.add_device, tag="devices",
          summary="add a device by serial number and verification code", status=201,
          body={
              "serial": Field(type="string", required=True, max_length=64),
              "verification_code": Field(type="string", required=True, max_length=256),
          }),
    Route(method="GET", path=f"{API}/devices/{{serial}}", handler=h.get_device, tag="devices",
          summary="one device you own"),
    Route(method="PATCH", path=f"{API}/devices/{{serial}}", handler=h.rename_device,
          tag="devices", summary="rename (alias) a device you own", body=ALIAS),
    Route(method="DELETE", path=f"{API}/devices/{{serial}}", handler=h.remove_device,
          tag="devices", summary="remove a device: every share of it ends", status=204),
    Route(method="GET", path=f"{API}/devices/{{serial}}/audit", handler=h.device_audit,
          tag="devices", summary="what happened to a device you own (audit log)", query=PAGING),
    Route(method="POST", path=f"{API}/devices/{{serial}}/token", handler=h.issue_token,
          tag="devices", status=201,
          summary="a short-lived share token for a device you own or have accepted"),
    # shares, owner side
    Route(method="GET", path=f"{API}/devices/{{serial}}/shares", handler=h.device_shares,
          tag="shares", summary="the accounts a device is shared with"),
    Route(method="POST", path=f"{API}/devices/{{serial}}/shares", handler=h.create_share,
          tag="shares", status=201,
          summary="share a device: shared / account doesn't exist / network busy",
          body={
              "recipient": Field(type="object", required=True, schema=RECIPIENT_SCHEMA),
              "permissions": Field(type="object", required=True, schema=MATRIX_SCHEMA),
              "remark": Field(type="string", nullable=True, max_length=64,
                              description="visible to you only"),
          }),
    Route(method="POST", path=f"{API}/devices/{{serial}}/shares/revoke", handler=h.revoke_several,
          tag="shares", summary="stop sharing a device with several accounts",
          body={"account_ids": Field(type="array", required=True, max_length=200,
                                     schema={"items": {"type": "string"}, "minItems": 1})}),
    Route(method="DELETE", path=f"{API}/devices/{{serial}}/shares", handler=h.disable_sharing,
          tag="shares", summary="disable all sharing of a device"),
    Route(method="GET", path=f"{API}/shares", handler=h.my_shared_devices, tag="shares",
          summary="my shared devices, with each device's shares", query=PAGING),
    Route(method="PATCH", path=f"{API}/shares/{{share_id}}", handler=h.update_share,
          tag="shares", summary="edit a share's permissions and/or remark",
          body={
              "permissions": Field(type="object", schema=MATRIX_SCHEMA),
              "remark": Field(type="string", nullable=True, max_length=64),
          }),
    Route(method="DELETE", path=f"{API}/shares/{{share_id}}", handler=h.revoke_share,
          tag="shares", summary="stop sharing with one account", status=204),
    Route(method="GET", path=f"{API}/share-history", handler=h.share_history, tag="shares",
          summary="accounts you shared with before", query=PAGING),
    Route(method="DELETE", path=f"{API}/recipients/{{account_id}}", handler=h.delete_recipient,
          tag="shares", summary="delete a recipient and all sharing information with them"),
    # shares, recipient side
    Route(method="GET", path=f"{API}/shared-with-me", handler=h.shared_with_me,
          tag="shared-with-me", summary="others' shared devices", query=(*PAGING, STATE)),
    Route(method="GET", path=f"{API}/shared-with-me/pending-count", handler=h.pending_count,
          tag="shared-with-me", summary="how many shares wait for your answer"),
    Route(method="POST", path=f"{API}/shared-with-me/{{share_id}}/accept",
          handler=h.accept_share, tag="shared-with-me", summary="accept a share", status=204),
    Route(method="POST", path=f"{API}/shared-with-me/{{share_id}}/reject",
          handler=h.reject_share, tag="shared-with-me", summary="reject a share", status=204),
    Route(method="PATCH", path=f"{API}/shared-with-me/{{share_id}}", handler=h.rename_received,
          tag="shared-with-me", summary="your own alias for a shared device", body=ALIAS,
          status=204),
    Route(method="DELETE", path=f"{API}/shared-with-me/{{share_id}}",
          handler=h.delete_received, tag="shared-with-me",
          summary="delete a device shared with you", status=204),
)  # fmt: skip

# What each endpoint answers (OpenAPI response schemas), by handler.
_RESPONSES: dict[str, dict[str, Any]] = {
    "health": ref("Health"),
    "_openapi": {"type": "object", "description": "this OpenAPI 3.1 document"},
    "register": ref("Account"),
    "login": ref("Session"),
    "me": ref("Account"),
    "account_qr": ref("AccountQr"),
    "list_devices": page_of("Device"),
    "add_device": ref("Device"),
    "get_device": ref("Device"),
    "rename_device": ref("Device"),
    "issue_token": ref("IssuedToken"),
    "device_audit": page_of("AuditEntry"),
    "device_shares": ref("DeviceShares"),
    "create_share": ref("ShareResult"),
    "revoke_several": ref("Revoked"),
    "disable_sharing": ref("Revoked"),
    "my_shared_devices": page_of("DeviceShares"),
    "update_share": ref("OwnerShare"),
    "share_history": page_of("HistoryEntry"),
    "delete_recipient": ref("Revoked"),
    "shared_with_me": page_of("ReceivedShare"),
    "pending_count": ref("PendingCount"),
}
ROUTES = tuple(
    replace(route, response=_RESPONSES[route.handler.__name__])
    if route.handler.__name__ in _RESPONSES
    else route
    for route in ROUTES
)

ROUTES = (*ROUTES, *SITE_ROUTES)  # installer sites and the handover (`api.sites`)
