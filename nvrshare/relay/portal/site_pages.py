""""Sites": installers' sites and the handover to a site owner, both sides.

Installer side: create the organisation, create sites, add devices, invite the
site owner by email or phone with installer permissions and a validity period,
resend; after the handover, switch the cloud service off / on if the owner
allowed it.  Owner side: invitations addressed to you (accept / decline), and
sites handed over to you with the installer's permissions (authorise, revoke
all or one device's).  Organisation members are in `org_pages`.
Every rule is in `nvrshare.relay.services.sites*`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from nvrshare.relay.errors import Forbidden, InvalidRequest, RelayError
from nvrshare.relay.portal.device_pages import PAGE_SIZE, cursor_of
from nvrshare.relay.portal.session import SERVICES, form, page, redirect, require_account
from nvrshare.relay.portal.site_forms import (
    SITE_PERMISSION_COLUMNS,
    day_of,
    installer_request_from_form,
)
from nvrshare.relay.services.models import Account

__all__ = [
    "accept_invitation",
    "add_site_device",
    "create_org",
    "create_site",
    "decline_invitation",
    "grant_installer",
    "invite",
    "owned_site",
    "resend",
    "revoke_installer",
    "set_service",
    "site",
    "sites",
]

STATUS_LABELS = {
    "not_invited": "Not Invited",
    "not_registered": "Not Registered",
    "not_accepted": "Not Accepted",
    "handed_over": "Handed Over",
}


def _today(request: web.Request) -> str:
    return day_of(request.app[SERVICES].context.clock())


async def _sites_page(
    request: web.Request, account: Account, *, refusal: RelayError | None = None
) -> web.Response:
    services = request.app[SERVICES]
    try:
        org, members = await services.sites.org(account)
        listing = await services.sites.list_sites(
            account, limit=PAGE_SIZE, cursor=cursor_of(request)
        )
    except Forbidden as exc:
        if exc.code != "not_an_installer":
            raise
        org, members, listing = None, (), None
    context = {
        "org": org, "members": members, "listing": listing, "error": refusal,
        "invitations": await services.sites.invitations_for(account),
        "owned": (await services.sites.owned_sites(account, limit=PAGE_SIZE)).items,
        "status_labels": STATUS_LABELS,
    }  # fmt: skip
    return await page(request, "sites.html", context, refusal=refusal)


async def sites(request: web.Request) -> web.StreamResponse:
    return await _sites_page(request, require_account(request))


async def create_org(request: web.Request) -> web.StreamResponse:
    account = require_account(request)
    try:
        name = form(request).text("name", limit=64)
        await request.app[SERVICES].sites.create_org(account, name)
    except RelayError as exc:
        return await _sites_page(request, account, refusal=exc)
    return redirect(request, "sites", done="org_created")


async def create_site(request: web.Request) -> web.StreamResponse:
    account = require_account(request)
    fields = form(request)
    try:
        created = await request.app[SERVICES].sites.create_site(
            account, name=fields.text("name", limit=64),
            address=fields.text("address", required=False, limit=256),
        )  # fmt: skip
    except RelayError as exc:
        return await _sites_page(request, account, refusal=exc)
    return redirect(request, "site", done="site_created", site_id=created.id)


async def _site_page(
    request: web.Request, account: Account, *, refusal: RelayError | None = None,
    values: dict[str, Any] | None = None,
) -> web.Response:  # fmt: skip
    shown = await request.app[SERVICES].sites.get_site(account, request.match_info["site_id"])
    context = {
        "site": shown, "error": refusal, "status_labels": STATUS_LABELS,
        "columns": SITE_PERMISSION_COLUMNS, "today": _today(request),
        "switchable": shown.owner_id is not None and shown.allow_disable_service,
        "values": {"channel": "email", "address": "", "remark": "", **(values or {})},
    }  # fmt: skip
    return await page(request, "site.html", context, refusal=refusal)


async def site(request: web.Request) -> web.StreamResponse:
    return await _site_page(request, require_account(request))


async def add_site_device(request: web.Request) -> web.StreamResponse:
    account = require_account(request)
    fields = form(request)
    site_id = request.match_info["site_id"]
    try:
        await request.app[SERVICES].sites.add_device(
            account, site_id, serial=fields.text("serial", limit=64).strip(),
            verification_code=fields.text("verification_code", limit=64).strip(),
            source=request.remote or "unknown",
        )  # fmt: skip
    except RelayError as exc:
        return await _site_page(request, account, refusal=exc)
    return redirect(request, "site", done="added", site_id=site_id)


async def invite(request: web.Request) -> web.StreamResponse:
    account = require_account(request)
    fields = form(request)
    site_id = request.match_info["site_id"]
    values = {
        "channel": fields.text("channel", required=False, limit=8) or "email",
        "address": fields.text("address", required=False, limit=254).strip(),
        "remark": fields.text("remark", required=False, limit=512),
    }
    try:
        if values["channel"] not in {"email", "phone"}:
            raise InvalidRequest("invite by email or phone number")
        by = {values["channel"]: values["address"]}
        await request.app[SERVICES].sites.invite(
            account, site_id, **by, remark=values["remark"].strip() or None,
            permissions=installer_request_from_form(fields),
            allow_disable_service=fields.checked("allow_disable_service"),
        )  # fmt: skip
    except RelayError as exc:
        return await _site_page(request, account, refusal=exc, values=values)
    return redirect(request, "site", done="invited", site_id=site_id)


async def resend(request: web.Request) -> web.StreamResponse:
    account = require_account(request)
    site_id = request.match_info["site_id"]
    try:
        await request.app[SERVICES].sites.resend(account, site_id)
    except RelayError as exc:
        return await _site_page(request, account, refusal=exc)
    return redirect(request, "site", done="resent", site_id=site_id)


async def set_service(request: web.Request) -> web.StreamResponse:
    """The installer switches the cloud service of one device (or all) on or off.

    Only after the handover, and only if the owner allowed it when accepting:
    while it is off nobody (the owner included) gets a token for the device.
    """
    account = require_account(request)
    fields = form(request)
    site_id = request.match_info["site_id"]
    try:
        wanted = fields.text("enabled", limit=3)
        if wanted not in {"on", "off"}:
            raise InvalidRequest("switch the cloud service on or off")
        await request.app[SERVICES].sites.set_service(
            account, site_id, enabled=wanted == "on", serial=fields.optional("serial", limit=64)
        )
    except RelayError as exc:
        return await _site_page(request, account, refusal=exc)
    return redirect(request, "site", done=f"service_{wanted}", site_id=site_id)


# --- the site owner ---------------------------------------------------------------


async def accept_invitation(request: web.Request) -> web.StreamResponse:
    account = require_account(request)
    accepted = await request.app[SERVICES].sites.accept(
        account, request.match_info["invitation_id"]
    )
    return redirect(request, "owned_site", done="handed_over", site_id=accepted.id)


async def decline_invitation(request: web.Request) -> web.StreamResponse:
    account = require_account(request)
    await request.app[SERVICES].sites.decline(account, request.match_info["invitation_id"])
    return redirect(request, "sites", done="declined")


async def _owned_site_page(
    request: web.Request, account: Account, *, refusal: RelayError | None = None
) -> web.Response:
    shown = await request.app[SERVICES].sites.owned_site(account, request.match_info["site_id"])
    context = {"site": shown, "error": refusal, "status_labels": STATUS_LABELS,
               "columns": SITE_PERMISSION_COLUMNS, "today": _today(request)}  # fmt: skip
    return await page(request, "owned_site.html", context, refusal=refusal)


async def owned_site(request: web.Request) -> web.StreamResponse:
    return await _owned_site_page(request, require_account(request))


async def grant_installer(request: web.Request) -> web.StreamResponse:
    account = require_account(request)
    site_id = request.match_info["site_id"]
    try:
        wanted = installer_request_from_form(form(request))
        if wanted.site_info is None and not wanted.devices:
            raise InvalidRequest("tick at least one installer permission")
        await request.app[SERVICES].sites.grant_installer(account, site_id, wanted)
    except RelayError as exc:
        return await _owned_site_page(request, account, refusal=exc)
    return redirect(request, "owned_site", done="authorised", site_id=site_id)


async def revoke_installer(request: web.Request) -> web.StreamResponse:
    """Revoke every installer permission, or (a `serial` field) those on one device."""
    account = require_account(request)
    site_id = request.match_info["site_id"]
    try:
        serial = form(request).optional("serial", limit=64)
        if serial is None:
            await request.app[SERVICES].sites.revoke_installer(account, site_id, site_info=True)
        else:
            await request.app[SERVICES].sites.revoke_installer(account, site_id, serials=[serial])
    except RelayError as exc:
        return await _owned_site_page(request, account, refusal=exc)
    return redirect(request, "owned_site", done="revoked", site_id=site_id)
