"""The route table's vocabulary: a `Route` describes one endpoint completely.

Method, path, whether it needs a session, its body spec, query parameters,
success status and summary: `app.create_app` mounts routes from these and
`openapi.build_document` describes the very same list, so the document always
matches what is served.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from nvrshare.protocol.validation import is_valid_serial
from nvrshare.relay.api.bodies import BodySpec
from nvrshare.relay.errors import NotFound, Unauthorized
from nvrshare.relay.services import Services
from nvrshare.relay.services.models import Account

__all__ = ["Call", "Handler", "QueryParam", "Route", "json_response", "no_content"]


@dataclass(frozen=True, kw_only=True, slots=True)
class QueryParam:
    name: str
    description: str
    schema: dict[str, Any]


@dataclass(frozen=True, kw_only=True, slots=True)
class Call:
    """One parsed request, as a handler sees it."""

    request: web.Request
    services: Services
    account_or_none: Account | None
    token: str | None
    body: dict[str, Any]

    @property
    def account(self) -> Account:
        if self.account_or_none is None:
            raise Unauthorized("log in first")
        return self.account_or_none

    def path(self, name: str) -> str:
        return self.request.match_info[name]

    @property
    def serial(self) -> str:
        serial = self.request.match_info["serial"]
        if not is_valid_serial(serial):
            raise NotFound("no such device")
        return serial

    def query(self, name: str) -> str | None:
        return self.request.query.get(name)

    @property
    def source(self) -> str:
        """The client's address for per-source limits.

        X-Forwarded-For is believed only from a configured trusted proxy, and
        then its right-most address that is not itself a trusted proxy.
        """
        remote = self.request.remote or "unknown"
        trusted = self.services.context.config.trusted_proxies
        if remote not in trusted:
            return remote
        hops = self.request.headers.get("X-Forwarded-For", "")[:1024].split(",")
        for hop in reversed([h.strip() for h in hops]):
            try:
                address = str(ipaddress.ip_address(hop))
            except ValueError:
                return remote  # a malformed chain: fall back to the proxy itself
            if address not in trusted:
                return address
        return remote


Handler = Callable[[Call], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, kw_only=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    auth: bool = True
    body: BodySpec | None = None
    query: tuple[QueryParam, ...] = ()
    status: int = 200
    content_type: str = "application/json"
    response: Mapping[str, Any] | None = None  # JSON Schema of the success body


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def no_content() -> web.Response:
    return web.Response(status=204)
