"""Service records → JSON.  One function per record, shaped by who is looking.

`received_share` has no remark to render: the record it renders has none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from nvrshare.protocol.permissions import Permission, permission_names
from nvrshare.relay.services.audit import AuditEntry
from nvrshare.relay.services.models import (
    Account,
    AccountRef,
    Device,
    DeviceShares,
    HistoryEntry,
    IssuedToken,
    OwnerShare,
    Page,
    ReceivedShare,
)

__all__ = [
    "account",
    "account_ref",
    "audit_entry",
    "device",
    "device_shares",
    "history_entry",
    "issued_token",
    "matrix",
    "owner_share",
    "page",
    "received_share",
]

T = TypeVar("T")


def matrix(permissions: Mapping[int, Permission]) -> dict[str, list[str]]:
    return {str(ch): list(permission_names(p)) for ch, p in sorted(permissions.items())}


def account(value: Account) -> dict[str, Any]:
    return {
        "id": value.id,
        "email": value.email,
        "phone": value.phone,
        "name": value.name,
        "region": value.region,
        "created_at": value.created_at,
    }


def account_ref(value: AccountRef) -> dict[str, Any]:
    return {"id": value.id, "email": value.email, "phone": value.phone, "name": value.name}


def device(value: Device) -> dict[str, Any]:
    return {
        "serial": value.serial,
        "domain": value.domain,
        "alias": value.alias,
        "model": value.model,
        "firmware_version": value.firmware_version,
        "ip": value.ip,
        "port": value.port,
        "status": "online" if value.online else "offline",
        "last_seen": value.last_seen,
        "channels": [{"number": c.number, "name": c.name} for c in value.channels],
        "share_epoch": value.share_epoch,
    }


def owner_share(value: OwnerShare) -> dict[str, Any]:
    return {
        "id": value.id,
        "device_serial": value.device_serial,
        "recipient": account_ref(value.recipient),
        "state": value.state.value,
        "permissions": matrix(value.permissions),
        "remark": value.remark,
        "created_at": value.created_at,
        "updated_at": value.updated_at,
    }


def device_shares(value: DeviceShares) -> dict[str, Any]:
    return {"device": device(value.device), "shares": [owner_share(s) for s in value.shares]}


def received_share(value: ReceivedShare) -> dict[str, Any]:
    return {
        "id": value.id,
        "device": {
            "serial": value.device_serial,
            "domain": value.domain,
            "model": value.model,
            "ip": value.ip,
            "port": value.port,
            "status": "online" if value.online else "offline",
            "last_seen": value.last_seen,
            "channels": [{"number": c.number, "name": c.name} for c in value.channels],
        },
        "sharer": account_ref(value.sharer),
        "state": value.state.value,
        "permissions": matrix(value.permissions),
        "alias": value.alias,
        "created_at": value.created_at,
    }


def history_entry(value: HistoryEntry) -> dict[str, Any]:
    return {"account": account_ref(value.account), "last_shared_at": value.last_shared_at}


def issued_token(value: IssuedToken) -> dict[str, Any]:
    return {
        "token": value.token,
        "device_serial": value.device_serial,
        "expires_at": value.expires_at,
        "share_epoch": value.share_epoch,
        "permissions": matrix(value.permissions),
        "data_endpoint": None
        if value.data_endpoint is None
        else {
            "host": value.data_endpoint.host,
            "port": value.data_endpoint.port,
            "tls": value.data_endpoint.tls,
        },
    }


def page(value: Page[T], render: Callable[[T], dict[str, Any]]) -> dict[str, Any]:
    return {"items": [render(item) for item in value.items], "next_cursor": value.next_cursor}


def audit_entry(value: AuditEntry) -> dict[str, Any]:
    return {
        "at": value.at,
        "actor_id": value.actor_id,
        "action": value.action.value,
        "subject_id": value.subject_id,
        "detail": value.detail,
    }
