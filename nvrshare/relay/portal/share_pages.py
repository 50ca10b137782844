""""My shared devices" (edit, stop sharing, disable all) and "Others' shared devices"."""

from __future__ import annotations

from aiohttp import web

from nvrshare.relay.errors import InvalidRequest, NotFound, RelayError
from nvrshare.relay.portal.device_pages import PAGE_SIZE, cursor_of
from nvrshare.relay.portal.forms import matrix_from_form
from nvrshare.relay.portal.session import SERVICES, form, page, redirect, require_account
from nvrshare.relay.services.models import Account, DeviceShares, OwnerShare, ShareState
from nvrshare.relay.services.shares import MAX_REMARK_LENGTH

__all__ = [
    "accept",
    "delete_received",
    "disable_sharing",
    "edit_share",
    "edit_share_form",
    "received",
    "reject",
    "rename_received",
    "shared",
    "stop_sharing",
]

# --- owner -------------------------------------------------------------------


async def shared(request: web.Request) -> web.StreamResponse:
    account = require_account(request)
    listing = await request.app[SERVICES].shares.list_for_owner(
        account, limit=PAGE_SIZE, cursor=cursor_of(request)
    )
    return await page(request, "shared.html", {"listing": listing})


async def _owned_share(request: web.Request, account: Account) -> tuple[DeviceShares, OwnerShare]:
    # device_shares is the owner-only view: a recipient gets Forbidden, anyone else NotFound.
    shares = await request.app[SERVICES].shares.device_shares(
        account, request.match_info["serial"]
    )
    share_id = request.match_info["share_id"]
    for candidate in shares.shares:
        if candidate.id == share_id:
            return shares, candidate
    raise NotFound("no such share")


async def edit_share_form(request: web.Request) -> web.StreamResponse:
    account = require_account(request)
    shares, share = await _owned_share(request, account)
    context = {"device": shares.device, "share": share, "error": None,
               "matrix": share.permissions, "remark": share.remark or "",
               "max_remark": MAX_REMARK_LENGTH}  # fmt: skip
    return await page(request, "share_edit.html", context)


async def edit_share(request: web.Request) -> web.StreamResponse:
    account = require_account(request)
    shares, share = await _owned_share(request, account)
    fields = form(request)
    remark = fields.text("remark", required=False, limit=MAX_REMARK_LENGTH * 4)
    matrix = dict(share.permissions)
    try:
        matrix = matrix_from_form(fields, (c.number for c in shares.device.channels))
        await request.app[SERVICES].shares.update(
            account, share.id, permissions=matrix, remark=remark.strip() or None
        )
    except RelayError as exc:
        context = {"device": shares.device, "share": share, "error": exc, "matrix": matrix,
                   "remark": remark, "max_remark": MAX_REMARK_LENGTH}  # fmt: skip
        return await page(request, "share_edit.html", context, refusal=exc)
    return redirect(request, "shared", done="updated")


async def stop_sharing(request: web.Request) -> web.StreamResponse:
    account = require_account(request)
    account_ids = form(request).many("account", limit=32)
    if not account_ids:
        raise InvalidRequest("select at least one account to stop sharing with")
    await request.app[SERVICES].shares.revoke_accounts(
        account, request.match_info["serial"], account_ids
    )
    return redirect(request, "shared", done="stopped")


async def disable_sharing(request: web.Request) -> web.StreamResponse:
    account = require_account(request)
    await request.app[SERVICES].shares.revoke_accounts(
        account, request.match_info["serial"], None
    )
    return redirect(request, "shared", done="disabled")


# --- recipient -----------------------------------------------------------------


async def received(request: web.Request) -> web.StreamResponse:
    account = require_account(request)
    shares = request.app[SERVICES].shares
    pending = await shares.list_received(account, state=ShareState.PENDING, limit=PAGE_SIZE)
    listing = await shares.list_received(account, limit=PAGE_SIZE, cursor=cursor_of(request))
    return await page(request, "received.html", {"new": pending.items, "listing": listing})


async def accept(request: web.Request) -> web.StreamResponse:
    account = require_account(request)
    await request.app[SERVICES].shares.accept(account, request.match_info["share_id"])
    return redirect(request, "received", done="accepted")


async def reject(request: web.Request) -> web.StreamResponse:
    account = require_account(request)
    await request.app[SERVICES].shares.reject(account, request.match_info["share_id"])
    return redirect(request, "received", done="rejected")


async def rename_received(request: web.Request) -> web.StreamResponse:
    account = require_account(request)
    alias = form(request).optional("alias", limit=128)
    await request.app[SERVICES].shares.rename_received(
        account, request.match_info["share_id"], alias
    )
    return redirect(request, "received", done="renamed")


async def delete_received(request: web.Request) -> web.StreamResponse:
    account = require_account(request)
    await request.app[SERVICES].shares.delete_received(account, request.match_info["share_id"])
    return redirect(request, "received", done="deleted")
