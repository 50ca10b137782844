"""JSON Schemas of what the API answers, for the OpenAPI document's components.

Each schema lists exactly the keys its `render` function produces (a test
renders every record and compares), so the document says what clients get.
"""

from __future__ import annotations

from typing import Any

from nvrshare.relay.api.bodies import MATRIX_SCHEMA

__all__ = ["COMPONENTS", "page_of", "ref"]


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": sorted(properties), "properties": properties}


def page_of(name: str) -> dict[str, Any]:
    return _object(
        {
            "items": {"type": "array", "items": ref(name)},
            "next_cursor": {"type": ["string", "null"], "description": "null on the last page"},
        }
    )


_STR = {"type": "string"}
_OPT_STR = {"type": ["string", "null"]}
_TIME = {"type": "number", "description": "Unix seconds"}
_OPT_TIME = {"type": ["number", "null"], "description": "Unix seconds"}
_STATUS = {"enum": ["online", "offline"]}
_STATE = {"enum": ["pending", "accepted", "rejected"]}
_CHANNELS = {"type": "array", "items": ref("Channel")}
_COUNT = _object({"revoked": {"type": "integer", "description": "how many shares ended"}})

COMPONENTS: dict[str, dict[str, Any]] = {
    "Account": _object(
        {"id": _STR, "email": _OPT_STR, "phone": _OPT_STR, "name": _OPT_STR, "region": _STR,
         "created_at": _TIME}
    ),
    "AccountRef": _object({"id": _STR, "email": _OPT_STR, "phone": _OPT_STR, "name": _OPT_STR}),
    "Session": _object(
        {"token": _STR, "token_type": {"const": "Bearer"}, "expires_at": _TIME,
         "account": ref("Account")}
    ),
    "AccountQr": _object(
        {"payload": _STR, "expires_at": {"type": "integer"},
         "png_base64": {"type": "string", "contentEncoding": "base64"}}
    ),
    "Channel": _object({"number": {"type": "integer"}, "name": _STR}),
    "Device": _object(
        {"serial": _STR, "domain": _OPT_STR, "alias": _OPT_STR, "model": _STR,
         "firmware_version": _STR, "ip": _STR, "port": {"type": "integer"}, "status": _STATUS,
         "last_seen": _OPT_TIME, "channels": _CHANNELS, "share_epoch": {"type": "integer"}}
    ),
    "Permissions": {"type": "object", **MATRIX_SCHEMA},
    "OwnerShare": _object(
        {"id": _STR, "device_serial": _STR, "recipient": ref("AccountRef"), "state": _STATE,
         "permissions": ref("Permissions"),
         "remark": {"type": ["string", "null"], "description": "visible to the owner only"},
         "created_at": _TIME, "updated_at": _TIME}
    ),
    "ShareResult": _object({"result": {"const": "shared"}, "share": ref("OwnerShare")}),
    "DeviceShares": _object(
        {"device": ref("Device"), "shares": {"type": "array", "items": ref("OwnerShare")}}
    ),
    "SharedDevice": _object(
        {"serial": _STR, "domain": _OPT_STR, "model": _STR, "ip": _STR,
         "port": {"type": "integer"}, "status": _STATUS, "last_seen": _OPT_TIME,
         "channels": _CHANNELS}
    ),
    "ReceivedShare": _object(
        {"id": _STR, "device": ref("SharedDevice"), "sharer": ref("AccountRef"), "state": _STATE,
         "permissions": ref("Permissions"),
         "alias": {"type": ["string", "null"], "description": "your own name for it"},
         "created_at": _TIME}
    ),
    "HistoryEntry": _object({"account": ref("AccountRef"), "last_shared_at": _TIME}),
    "IssuedToken": _object(
        {"token": {"type": "string", "description": "base64url share token"},
         "device_serial": _STR, "expires_at": {"type": "integer"},
         "share_epoch": {"type": "integer"}, "permissions": ref("Permissions"),
         "data_endpoint": {
             "oneOf": [ref("DataEndpoint"), {"type": "null"}],
             "description": "the relay's data port, where the token opens sessions; "
             "null when this relay runs none",
         }}
    ),
    "DataEndpoint": _object(
        {"host": _STR, "port": {"type": "integer", "minimum": 1, "maximum": 65535},
         "tls": {"type": "boolean", "description": "the data port speaks TLS"}}
    ),
    "PendingCount": _object({"count": {"type": "integer"}, "message": _STR}),
    "Revoked": _COUNT,
    "Health": _object({"status": {"const": "ok"}}),
    "AuditEntry": _object(
        {"at": _TIME, "actor_id": _OPT_STR, "action": _STR, "subject_id": _OPT_STR,
         "detail": {"type": "object"}}
    ),
}  # fmt: skip
