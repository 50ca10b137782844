"""Register, log in, log out, and "My account" (with the account's QR code)."""

from __future__ import annotations

import segno
from aiohttp import web

from nvrshare.relay.errors import InvalidRequest, RelayError
from nvrshare.relay.portal.session import (
    COOKIES,
    SERVICES,
    form,
    page,
    redirect,
    require_account,
    visitor,
)

__all__ = ["account", "home", "login", "login_form", "logout", "register", "register_form"]

MAX_PASSWORD_FIELD = 1024


def _source(request: web.Request) -> str:
    return request.remote or "unknown"


async def home(request: web.Request) -> web.StreamResponse:
    if visitor(request).account is None:
        return redirect(request, "login")
    return redirect(request, "devices")


async def login_form(request: web.Request) -> web.StreamResponse:
    if visitor(request).account is not None:
        return redirect(request, "devices")
    return await page(request, "login.html", {"login": "", "error": None})


async def login(request: web.Request) -> web.StreamResponse:
    fields = form(request)
    services = request.app[SERVICES]
    login_text = ""
    try:
        login_text = fields.text("login", limit=254).strip()
        password = fields.text("password", limit=MAX_PASSWORD_FIELD)
        session = await services.accounts.login(
            login=login_text, password=password, source=_source(request)
        )
    except RelayError as exc:
        context = {"login": login_text, "error": exc}
        return await page(request, "login.html", context, refusal=exc)
    response = redirect(request, "devices")
    lifetime = int(session.expires_at - services.context.clock())
    request.app[COOKIES].set_session(response, session.token, lifetime)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    token = visitor(request).session_token
    if token is not None:
        await request.app[SERVICES].accounts.logout(token)
    response = redirect(request, "login")
    request.app[COOKIES].clear_session(response)
    return response


def _register_context(
    request: web.Request, values: dict[str, str], error: object
) -> dict[str, object]:
    config = request.app[SERVICES].context.config
    return {
        "values": {"name": "", "email": "", "phone": "", "region": "", **values},
        "regions": config.regions,
        "default_region": config.default_region,
        "error": error,
    }


async def register_form(request: web.Request) -> web.StreamResponse:
    if visitor(request).account is not None:
        return redirect(request, "devices")
    return await page(request, "register.html", _register_context(request, {}, None))


async def register(request: web.Request) -> web.StreamResponse:
    fields = form(request)
    values: dict[str, str] = {}
    try:
        for name in ("name", "email", "phone", "region"):
            values[name] = fields.optional(name, limit=254) or ""
        password = fields.text("password", limit=MAX_PASSWORD_FIELD)
        if fields.text("password_again", limit=MAX_PASSWORD_FIELD) != password:
            raise InvalidRequest("the two passwords differ")
        await request.app[SERVICES].accounts.register(
            password=password,
            name=values["name"] or None,
            email=values["email"] or None,
            phone=values["phone"] or None,
            region=values["region"] or None,
        )
    except RelayError as exc:
        context = _register_context(request, values, exc)
        return await page(request, "register.html", context, refusal=exc)
    return redirect(request, "login", done="registered")


async def account(request: web.Request) -> web.StreamResponse:
    current = require_account(request)
    payload, expires_at = request.app[SERVICES].accounts.qr_payload(current)
    # Inline as a data: image so the picture and the text below it are one payload.
    qr_image = segno.make(payload, error="m").png_data_uri(scale=5, border=2)
    context = {"qr_payload": payload, "qr_expires_at": expires_at, "qr_image": qr_image}
    return await page(request, "account.html", context)
