"""The aiohttp application: routes from the table, one error middleware, body limits.

Every failure leaves as `{"error": {"code": ..., "message": ...}}`: service
errors with their own code and status, aiohttp's (unknown path, wrong method,
oversized body) translated, and anything unexpected as a logged 500 that does
not echo internals.  "Network busy" (503) carries `Retry-After`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from nvrshare.relay.api.bodies import decode_json, parse_body
from nvrshare.relay.api.openapi import build_document
from nvrshare.relay.api.routes import ROUTES
from nvrshare.relay.api.routing import Call, Route
from nvrshare.relay.errors import InvalidRequest, PayloadTooLarge, RelayError, Unauthorized
from nvrshare.relay.services import Services

__all__ = ["OPENAPI_DOCUMENT", "SERVICES", "create_app", "error_body"]

_log = logging.getLogger(__name__)

SERVICES = web.AppKey("services", Services)
OPENAPI_DOCUMENT = web.AppKey("openapi_document", dict)

_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _error_response(
    status: int, code: str, message: str, retry_after: int | None = None
) -> web.Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    if status == 401:
        headers = dict(headers or {}, **{"WWW-Authenticate": "Bearer"})
    return web.json_response(error_body(code, message), status=status, headers=headers)


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if not request.path.startswith("/api/"):
        # Not the JSON API (e.g. the portal's HTML pages, mounted beside it): theirs to render.
        return await handler(request)
    try:
        return await handler(request)
    except RelayError as exc:
        if exc.status >= 500:
            _log.warning("%s %s: %s", request.method, request.path, exc.code)
        return _error_response(exc.status, exc.code, exc.message, exc.retry_after)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        return _error_response(exc.status, code, exc.reason)
    except Exception:
        _log.exception("unhandled error in %s %s", request.method, request.path)
        return _error_response(500, "internal_error", "internal error")


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token: log in and send Authorization: Bearer <token>")
    return token.strip()


async def _read_body(request: web.Request, route: Route) -> dict[str, Any]:
    if route.body is None:
        if request.body_exists:
            raise InvalidRequest("this endpoint takes no body")
        return {}
    if request.content_type != "application/json":
        raise InvalidRequest("send the body as application/json")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(
            f"the body exceeds {request.client_max_size} bytes"
        ) from None
    return parse_body(route.body, decode_json(raw))


def _endpoint(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        services = request.app[SERVICES]
        token = account = None
        if route.auth:
            token = _bearer(request)
            account = await services.accounts.authenticate(token)
        body = await _read_body(request, route)
        call = Call(
            request=request, services=services, account_or_none=account, token=token, body=body
        )
        return await route.handler(call)

    endpoint.__name__ = route.handler.__name__
    return endpoint


def create_app(services: Services) -> web.Application:
    """The control-plane HTTP application over `services`."""
    app = web.Application(
        middlewares=[_errors], client_max_size=services.context.config.max_body_bytes
    )
    app[SERVICES] = services
    app[OPENAPI_DOCUMENT] = build_document(ROUTES)
    for route in ROUTES:
        app.router.add_route(route.method, route.path, _endpoint(route))
    return app
