"""The installer organisation's members: list them with their roles, add, remove.

Every member sees the list; only a member who manages all sites may add or
remove (the service refuses anyone else with `Forbidden`, shown on the page).
The service layer has no "change a role" operation: a role is chosen when the
member is added.  Every rule is in `nvrshare.relay.services.sites_org`.
"""

from __future__ import annotations

from aiohttp import web

from nvrshare.relay.errors import InvalidRequest, RelayError
from nvrshare.relay.portal.session import SERVICES, form, page, redirect, require_account
from nvrshare.relay.services.models import Account
from nvrshare.relay.services.sites_model import InstallerRole

__all__ = ["ROLE_LABELS", "add_member", "members", "remove_member"]

ROLE_LABELS = {
    InstallerRole.MANAGE_ALL.value: "Manages all sites",
    InstallerRole.MANAGE_ASSIGNED.value: "Manages assigned sites",
}


async def _members_page(
    request: web.Request, account: Account, *, refusal: RelayError | None = None,
    values: dict[str, object] | None = None,
) -> web.Response:  # fmt: skip
    # A non-installer gets the service's `not_an_installer` refusal as the error page.
    org, listed = await request.app[SERVICES].sites.org(account)
    me = next(m for m in listed if m.account_id == account.id)
    context = {
        "org": org, "members": listed, "error": refusal, "role_labels": ROLE_LABELS,
        "is_admin": me.role == InstallerRole.MANAGE_ALL,
        "values": {"login": "", "role": InstallerRole.MANAGE_ASSIGNED.value,
                   "device_management": True, **(values or {})},
    }  # fmt: skip
    return await page(request, "members.html", context, refusal=refusal)


async def members(request: web.Request) -> web.StreamResponse:
    return await _members_page(request, require_account(request))


async def add_member(request: web.Request) -> web.StreamResponse:
    account = require_account(request)
    fields = form(request)
    values: dict[str, object] = {}
    try:
        values["login"] = fields.text("login", limit=254).strip()
        values["role"] = fields.text("role", limit=20)
        values["device_management"] = fields.checked("device_management")
        try:
            role = InstallerRole(values["role"])
        except ValueError:
            raise InvalidRequest("choose a role: manages all or assigned sites") from None
        await request.app[SERVICES].sites.add_member(
            account, login=str(values["login"]), role=role,
            device_management=bool(values["device_management"]),
        )  # fmt: skip
    except RelayError as exc:
        return await _members_page(request, account, refusal=exc, values=values)
    return redirect(request, "org_members", done="member_added")


async def remove_member(request: web.Request) -> web.StreamResponse:
    account = require_account(request)
    try:
        await request.app[SERVICES].sites.remove_member(account, request.match_info["account_id"])
    except RelayError as exc:
        return await _members_page(request, account, refusal=exc)
    return redirect(request, "org_members", done="member_removed")
