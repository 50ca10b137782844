"""The portal as an aiohttp sub-application: routes, middlewares, static files.

    api = create_app(services)
    api.add_subapp("/portal", create_portal(services, secure_cookies=False))

Middlewares, outermost first: security headers on every response (and a last
resort for anything that escaped), the session/CSRF gate, then the error
renderer that turns service refusals and HTTP errors into HTML pages.
"""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web

from nvrshare.relay.errors import RelayError
from nvrshare.relay.portal import account_pages, device_pages, org_pages, share_pages, site_pages
from nvrshare.relay.portal.rendering import ENVIRONMENT, build_environment
from nvrshare.relay.portal.security import SECURITY_HEADERS, CookiePolicy
from nvrshare.relay.portal.session import (
    COOKIES,
    SERVICES,
    Handler,
    error_page,
    session_middleware,
)
from nvrshare.relay.services import Services

__all__ = ["STATIC_DIR", "create_portal"]

_log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
MAX_FORM_BYTES = 64 * 1024
_SERIAL = "{serial:[^/]{1,64}}"
_SHARE = "{share_id:[^/]{1,64}}"
_SITE = "{site_id:[^/]{1,64}}"
_INVITATION = "{invitation_id:[^/]{1,64}}"
_ACCOUNT = "{account_id:[^/]{1,64}}"

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        _log.exception("portal: unhandled error in %s %s", request.method, request.path)
        response = web.Response(status=500, text="internal error", content_type="text/plain")
    if not response.prepared:
        response.headers.update(SECURITY_HEADERS)
    return response


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPRedirection as exc:
        location = exc.headers.get("Location", "/")
        return web.Response(status=exc.status, headers={"Location": location})
    except web.HTTPException as exc:
        code = _HTTP_CODES.get(exc.status, "http_error")
        return error_page(request, exc.status, exc.reason, code)
    except RelayError as exc:
        if exc.status >= 500:
            _log.warning("portal: %s %s: %s", request.method, request.path, exc.code)
        return error_page(request, exc.status, exc.message, exc.code, exc.retry_after)
    except Exception:
        _log.exception("portal: unhandled error in %s %s", request.method, request.path)
        return error_page(request, 500, "internal error", "internal_error")


def create_portal(
    services: Services, *, secure_cookies: bool, path: str = "/portal"
) -> web.Application:
    """The management portal over `services`, to be mounted at `path`.

    `secure_cookies` marks cookies Secure: set it when browsers reach the relay
    over TLS (directly or through a TLS-terminating proxy).  `path` scopes the
    cookies and must match where the sub-application is mounted.
    """
    app = web.Application(middlewares=[_headers, session_middleware, _errors],
                          client_max_size=MAX_FORM_BYTES)  # fmt: skip
    app[SERVICES] = services
    app[COOKIES] = CookiePolicy(secure=secure_cookies, path=path.rstrip("/") + "/")
    app[ENVIRONMENT] = build_environment()
    a, d, s = account_pages, device_pages, share_pages
    r = app.router
    r.add_get("/", a.home, name="home")
    r.add_get("/login", a.login_form, name="login")
    r.add_post("/login", a.login)
    r.add_get("/register", a.register_form, name="register")
    r.add_post("/register", a.register)
    r.add_post("/logout", a.logout, name="logout")
    r.add_get("/account", a.account, name="account")
    r.add_get("/devices", d.devices, name="devices")
    r.add_post("/devices", d.add_device)
    r.add_post(f"/devices/{_SERIAL}/rename", d.rename_device, name="device_rename")
    r.add_post(f"/devices/{_SERIAL}/remove", d.remove_device, name="device_remove")
    r.add_get(f"/devices/{_SERIAL}/share", d.share_form, name="share_new")
    r.add_post(f"/devices/{_SERIAL}/share", d.share)
    r.add_get("/shared", s.shared, name="shared")
    # Before the share route below, which would otherwise take "stop" for a share id.
    r.add_post(f"/shared/{_SERIAL}/stop", s.stop_sharing, name="share_stop")
    r.add_post(f"/shared/{_SERIAL}/disable", s.disable_sharing, name="share_disable")
    r.add_get(f"/shared/{_SERIAL}/{_SHARE}", s.edit_share_form, name="share_edit")
    r.add_post(f"/shared/{_SERIAL}/{_SHARE}", s.edit_share)
    r.add_get("/received", s.received, name="received")
    r.add_post(f"/received/{_SHARE}/accept", s.accept, name="received_accept")
    r.add_post(f"/received/{_SHARE}/reject", s.reject, name="received_reject")
    r.add_post(f"/received/{_SHARE}/rename", s.rename_received, name="received_rename")
    r.add_post(f"/received/{_SHARE}/delete", s.delete_received, name="received_delete")
    _add_site_routes(app)
    r.add_static("/static/", STATIC_DIR, name="static", append_version=False)
    return app


def _add_site_routes(app: web.Application) -> None:
    """Installer sites, the organisation's members and the handover (both sides)."""
    p, r = site_pages, app.router
    r.add_get("/sites", p.sites, name="sites")
    r.add_post("/sites", p.create_site)
    r.add_post("/sites/organisation", p.create_org, name="sites_org")
    r.add_get(f"/sites/{_SITE}", p.site, name="site")
    r.add_post(f"/sites/{_SITE}/devices", p.add_site_device, name="site_devices")
    r.add_post(f"/sites/{_SITE}/invite", p.invite, name="site_invite")
    r.add_post(f"/sites/{_SITE}/resend", p.resend, name="site_resend")
    r.add_post(f"/sites/{_SITE}/service", p.set_service, name="site_service")
    r.add_post(f"/invitations/{_INVITATION}/accept", p.accept_invitation,
               name="invitation_accept")  # fmt: skip
    r.add_post(f"/invitations/{_INVITATION}/decline", p.decline_invitation,
               name="invitation_decline")  # fmt: skip
    r.add_get(f"/owned-sites/{_SITE}", p.owned_site, name="owned_site")
    r.add_post(f"/owned-sites/{_SITE}/grant", p.grant_installer, name="owned_site_grant")
    r.add_post(f"/owned-sites/{_SITE}/revoke", p.revoke_installer, name="owned_site_revoke")
    o = org_pages
    r.add_get("/organisation", o.members, name="org_members")
    r.add_post("/organisation/members", o.add_member, name="org_member_add")
    r.add_post(f"/organisation/members/{_ACCOUNT}/remove", o.remove_member,
               name="org_member_remove")  # fmt: skip
