"""Who is asking, and may they post this form: the portal's request state.

`session_middleware` resolves the session cookie through the service layer
(`AccountService.authenticate`), hands out a pre-session cookie to anonymous
visitors, and refuses any POST whose CSRF token does not match.  Handlers read
the result with `visitor(request)` / `require_account(request)` and render
with `page(...)`, which adds what every page shows (account, CSRF token,
the "N new sharings" count).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from nvrshare.relay.errors import RelayError, Unauthorized
from nvrshare.relay.portal.forms import Form, read_form
from nvrshare.relay.portal.rendering import render
from nvrshare.relay.portal.security import (
    PRE_SESSION_COOKIE,
    SESSION_COOKIE,
    CookiePolicy,
    csrf_token,
    csrf_valid,
    new_pre_session,
)
from nvrshare.relay.services import Services
from nvrshare.relay.services.models import Account

__all__ = [
    "COOKIES",
    "SERVICES",
    "Visitor",
    "error_page",
    "form",
    "page",
    "redirect",
    "require_account",
    "session_middleware",
    "visitor",
]

_log = logging.getLogger(__name__)

SERVICES = web.AppKey("portal_services", Services)
COOKIES = web.AppKey("portal_cookies", CookiePolicy)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, kw_only=True, slots=True)
class Visitor:
    """The account behind the request (None: anonymous) and its CSRF secret."""

    account: Account | None
    session_token: str | None
    csrf_secret: str

    @property
    def csrf(self) -> str:
        return csrf_token(self.csrf_secret)


_VISITOR = web.RequestKey("portal_visitor", Visitor)
_FORM = web.RequestKey("portal_form", Form)


def visitor(request: web.Request) -> Visitor:
    found = request.get(_VISITOR)
    assert isinstance(found, Visitor), "session_middleware is not installed"
    return found


def require_account(request: web.Request) -> Account:
    """The logged-in account; anonymous visitors are sent to the login page."""
    account = visitor(request).account
    if account is None:
        raise web.HTTPSeeOther(str(request.app.router["login"].url_for()))
    return account


def form(request: web.Request) -> Form:
    """The POST form the middleware already read and checked."""
    found = request.get(_FORM)
    assert isinstance(found, Form), "only POST handlers have a form"
    return found


def redirect(request: web.Request, name: str, *, done: str | None = None,
             **parts: str) -> web.Response:  # fmt: skip
    """303 to the named route (Post/Redirect/Get), with an optional success notice."""
    url = request.app.router[name].url_for(**parts)
    if done is not None:
        url = url.with_query(done=done)
    return web.Response(status=303, headers={"Location": str(url)})


async def page(
    request: web.Request, template: str, context: Mapping[str, Any] | None = None,
    *, status: int = 200, refusal: RelayError | None = None,
) -> web.Response:  # fmt: skip
    """Render a page with the visitor's account, CSRF token and pending-share count.

    `refusal` is the service error the page shows, if any: its status becomes the
    page's, and its `retry_after` (rate limited, network busy) a Retry-After header.
    """
    who = request.get(_VISITOR)
    account = who.account if isinstance(who, Visitor) else None
    pending = 0
    if account is not None:
        pending = await request.app[SERVICES].shares.pending_count(account)
    base = {
        "account": account,
        "csrf": who.csrf if isinstance(who, Visitor) else "",
        "pending": pending,
    }
    response = render(
        request, template, {**base, **(context or {})},
        status=refusal.status if refusal is not None else status,
    )  # fmt: skip
    if refusal is not None and refusal.retry_after is not None:
        response.headers["Retry-After"] = str(refusal.retry_after)
    return response


def error_page(
    request: web.Request, status: int, message: str, code: str, retry_after: int | None = None
) -> web.Response:
    """A plain error page that needs no database (it may be the database that failed)."""
    who = request.get(_VISITOR)
    context = {
        "account": who.account if isinstance(who, Visitor) else None,
        "csrf": who.csrf if isinstance(who, Visitor) else "",
        "pending": 0,
        "message": message,
        "code": code,
        "status": status,
    }
    response = render(request, "error.html", context, status=status)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


async def _resolve(request: web.Request) -> tuple[Visitor, bool, bool]:
    """(visitor, the pre-session cookie is new, the session cookie is stale)."""
    services = request.app[SERVICES]
    token = CookiePolicy.read(request, SESSION_COOKIE)
    stale = request.cookies.get(SESSION_COOKIE) is not None and token is None
    account = None
    if token is not None:
        try:
            account = await services.accounts.authenticate(token)
        except Unauthorized:
            token, stale = None, True
    if account is not None and token is not None:
        return Visitor(account=account, session_token=token, csrf_secret=token), False, False
    pre = CookiePolicy.read(request, PRE_SESSION_COOKIE)
    fresh = pre is None
    pre = pre or new_pre_session()
    return Visitor(account=None, session_token=None, csrf_secret=pre), fresh, stale


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    resource = request.match_info.route.resource
    if resource is not None and resource.name == "static":
        return await handler(request)  # public files: no database round trip
    try:
        who, fresh_pre, stale = await _resolve(request)
    except RelayError as exc:
        return error_page(request, exc.status, exc.message, exc.code, exc.retry_after)
    request[_VISITOR] = who
    if request.method == "POST":
        try:
            submitted = await read_form(request)
        except RelayError as exc:
            return error_page(request, exc.status, exc.message, exc.code)
        tokens = submitted.fields.getall("csrf", [])
        if len(tokens) != 1 or not csrf_valid(who.csrf_secret, tokens[0]):
            _log.info("portal: CSRF check failed for %s %s", request.method, request.path)
            return error_page(
                request, 403,
                "This form has expired or was sent from another site: reload the page "
                "and try again.",
                "csrf_failed",
            )  # fmt: skip
        request[_FORM] = submitted
    response = await handler(request)
    cookies = request.app[COOKIES]
    if not response.prepared:
        if fresh_pre:
            cookies.set_pre_session(response, who.csrf_secret)
        if stale:
            cookies.clear_session(response)
    return response
