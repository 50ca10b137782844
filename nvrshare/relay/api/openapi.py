"""The OpenAPI 3.1 document, generated from the route table it describes."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from nvrshare.relay.api.bodies import spec_schema
from nvrshare.relay.api.routing import Route
from nvrshare.relay.api.schemas import COMPONENTS

__all__ = ["ERROR_RESPONSE", "add_operation", "build_document"]

_PARAM = re.compile(r"{(\w+)}")

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}


ERROR_RESPONSE: dict[str, Any] = {
    "description": "an error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def _success(route: Route) -> dict[str, Any]:
    if route.status == 204:
        return {"description": "success, no body"}
    media: dict[str, Any] = {}
    if route.response is not None:
        media["schema"] = dict(route.response)
    elif route.content_type == "image/png":
        media["schema"] = {"type": "string", "contentMediaType": "image/png"}
    return {"description": "success", "content": {route.content_type: media}}


def _operation(route: Route) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": route.handler.__name__.strip("_"),
        "summary": route.summary,
        "tags": [route.tag],
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PARAM.findall(route.path)
        ]
        + [
            {
                "name": q.name,
                "in": "query",
                "required": False,
                "description": q.description,
                "schema": q.schema,
            }
            for q in route.query
        ],
        "responses": {
            str(route.status): _success(route),
            "default": ERROR_RESPONSE,
        },
    }
    if route.auth:
        operation["security"] = [{"bearer": []}]
    else:
        operation["security"] = []
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": spec_schema(route.body)}},
        }
    return operation


def add_operation(
    document: dict[str, Any], method: str, path: str, operation: Mapping[str, Any]
) -> None:
    """Describe a route served outside the route table (one an app hook adds).

    Whoever adds such a route to the application adds its operation here too,
    so the document keeps listing exactly what is served.  Refuses to replace
    an operation already described (two owners of one route is a wiring bug).
    """
    operations = document["paths"].setdefault(path, {})
    if method.lower() in operations:
        raise ValueError(f"{method} {path} is already described")
    operations[method.lower()] = dict(operation)


def build_document(routes: Iterable[Route], *, version: str = "1") -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "nvrshare relay control plane", "version": version},
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR_SCHEMA, **COMPONENTS},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
