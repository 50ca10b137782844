"""Templates → responses: one Jinja2 environment, autoescaping everything.

Templates get the service layer's records as they are (frozen dataclasses) plus
a few display helpers; nothing here decides who sees what, the records are
already shaped by who is looking (a `ReceivedShare` has no remark to show).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

import jinja2
from aiohttp import web

from nvrshare.protocol.permissions import Permission
from nvrshare.relay.portal.forms import PERMISSION_COLUMNS, matrix_rows, permission_labels
from nvrshare.relay.services.models import AccountRef

__all__ = ["DONE_MESSAGES", "build_environment", "display_name", "render"]

# Success notices after a redirect: the query names one of these, never free text.
DONE_MESSAGES = {
    "registered": "Account created: log in.",
    "added": "Device added.",
    "renamed": "Renamed.",
    "removed": "Device removed.",
    "shared": "Shared.",
    "updated": "Permissions saved.",
    "stopped": "Sharing stopped.",
    "disabled": "All sharing of the device is disabled.",
    "accepted": "Sharing accepted.",
    "rejected": "Sharing rejected.",
    "deleted": "Deleted.",
    "org_created": "Installer organisation created.",
    "site_created": "Site created.",
    "invited": "Invitation sent.",
    "resent": "Invitation sent again.",
    "declined": "Invitation declined.",
    "handed_over": "The site is now yours.",
    "authorised": "Installer permissions saved.",
    "revoked": "Installer permissions revoked.",
    "service_on": "Cloud service switched on.",
    "service_off": "Cloud service switched off: nobody can view the device until it is back on.",
    "member_added": "Member added.",
    "member_removed": "Member removed.",
}


def display_name(ref: AccountRef) -> str:
    """How one account is named to another: the account name, else email, else phone."""
    return ref.name or ref.email or ref.phone or ref.id


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "never"
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _labels(permission: Permission | int) -> str:
    return ", ".join(permission_labels(Permission(permission))) or "none"


def build_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("nvrshare.relay.portal", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        # Templates ship with the package: no per-render stat() of their files.
        auto_reload=False,
    )
    env.filters["who"] = display_name
    env.filters["when"] = _when
    env.filters["labels"] = _labels
    env.globals["PERMISSION_COLUMNS"] = PERMISSION_COLUMNS
    env.globals["matrix_rows"] = matrix_rows
    # Compile every template now, at start-up, so that serving a page never reads a file
    # on the event loop (and a broken template fails the start, not a request).
    for name in env.list_templates(extensions=["html"]):
        env.get_template(name)
    return env


ENVIRONMENT = web.AppKey("portal_templates", jinja2.Environment)


def render(
    request: web.Request,
    template: str,
    context: Mapping[str, Any],
    *,
    status: int = 200,
) -> web.Response:
    """Render `template` with `context` plus `url` (route name → path) and `done`."""

    def url(name: str, **parts: str) -> str:
        return str(request.app.router[name].url_for(**parts))

    def static(filename: str) -> str:
        return str(request.app.router["static"].url_for(filename=filename))

    done = DONE_MESSAGES.get(request.query.get("done", ""))
    text = request.app[ENVIRONMENT].get_template(template).render(
        {"url": url, "static": static, "done": done, **context}
    )
    return web.Response(
        text=text,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": "no-store"},
    )
