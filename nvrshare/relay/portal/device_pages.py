""""My devices" (add by serial + verification code, rename, remove) and "Share device"."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from nvrshare.relay.errors import RelayError
from nvrshare.relay.portal.forms import matrix_from_form, recipient_from_form
from nvrshare.relay.portal.session import SERVICES, form, page, redirect, require_account
from nvrshare.relay.services.models import Account, Device
from nvrshare.relay.services.shares import MAX_REMARK_LENGTH

__all__ = ["add_device", "devices", "remove_device", "rename_device", "share", "share_form"]

PAGE_SIZE = 50
HISTORY_SIZE = 20
MAX_CURSOR = 256


def cursor_of(request: web.Request) -> str | None:
    cursor = request.query.get("cursor")
    return cursor if cursor and len(cursor) <= MAX_CURSOR else None


async def _devices_page(
    request: web.Request, account: Account, *, add_error: RelayError | None = None,
    values: dict[str, str] | None = None,
) -> web.Response:  # fmt: skip
    listing = await request.app[SERVICES].devices.list_owned(
        account, limit=PAGE_SIZE, cursor=cursor_of(request)
    )
    values = {"serial": "", **(values or {})}
    context = {"devices": listing, "add_error": add_error, "values": values}
    return await page(request, "devices.html", context, refusal=add_error)


async def devices(request: web.Request) -> web.StreamResponse:
    return await _devices_page(request, require_account(request))


async def add_device(request: web.Request) -> web.StreamResponse:
    account = require_account(request)
    fields = form(request)
    values: dict[str, str] = {}
    try:
        values["serial"] = fields.text("serial", limit=64).strip()
        code = fields.text("verification_code", limit=64).strip()
        await request.app[SERVICES].devices.bind(
            account, serial=values["serial"], verification_code=code,
            source=request.remote or "unknown",
        )  # fmt: skip
    except RelayError as exc:
        return await _devices_page(
            request, account, add_error=exc, values=values
        )
    return redirect(request, "devices", done="added")


async def rename_device(request: web.Request) -> web.StreamResponse:
    account = require_account(request)
    alias = form(request).optional("alias", limit=128)
    await request.app[SERVICES].devices.rename(account, request.match_info["serial"], alias)
    return redirect(request, "devices", done="renamed")


async def remove_device(request: web.Request) -> web.StreamResponse:
    account = require_account(request)
    await request.app[SERVICES].devices.remove(account, request.match_info["serial"])
    return redirect(request, "devices", done="removed")


async def _share_page(
    request: web.Request, account: Account, device: Device, *,
    result: RelayError | None = None, values: dict[str, Any] | None = None,
) -> web.Response:  # fmt: skip
    history = await request.app[SERVICES].shares.history(account, limit=HISTORY_SIZE)
    context = {
        "device": device,
        "history": history.items,
        "result": result,
        "values": values or {"recipient": "", "recipient_kind": "auto", "remark": "",
                             "matrix": {}, "all": False},
        "max_remark": MAX_REMARK_LENGTH,
    }  # fmt: skip
    return await page(request, "share.html", context, refusal=result)


async def share_form(request: web.Request) -> web.StreamResponse:
    account = require_account(request)
    device = await request.app[SERVICES].devices.get_owned(account, request.match_info["serial"])
    return await _share_page(request, account, device)


async def share(request: web.Request) -> web.StreamResponse:
    account = require_account(request)
    services = request.app[SERVICES]
    device = await services.devices.get_owned(account, request.match_info["serial"])
    fields = form(request)
    values: dict[str, Any] = {
        "recipient": fields.text("recipient", required=False, limit=254),
        "recipient_kind": fields.text("recipient_kind", required=False, limit=8) or "auto",
        "remark": fields.text("remark", required=False, limit=MAX_REMARK_LENGTH * 4),
        "matrix": {},
        "all": fields.checked("all_permissions"),
    }
    try:
        matrix = matrix_from_form(fields, (c.number for c in device.channels))
        values["matrix"] = matrix
        await services.shares.create(
            account, serial=device.serial, recipient=recipient_from_form(fields),
            permissions=matrix, remark=values["remark"] or None,
        )  # fmt: skip
    except RelayError as exc:
        return await _share_page(
            request, account, device, result=exc, values=values
        )
    return redirect(request, "share_new", done="shared", serial=device.serial)
