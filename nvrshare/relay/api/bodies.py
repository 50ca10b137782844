"""Request bodies and query strings: strict, bounded, typed.

A body spec maps field names to `Field`s.  `parse_body` refuses anything that
is not a JSON object, unknown fields, missing required fields, wrong JSON
types (a bool is not an integer), and over-long strings or lists, each with a
message that names the field.  The same specs generate the OpenAPI schemas,
so the document cannot drift from what the handlers accept.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nvrshare.protocol.errors import RemoteProtocolError
from nvrshare.protocol.permissions import (
    MAX_CHANNEL,
    Permission,
    parse_permission_names,
)
from nvrshare.relay.errors import InvalidRequest
from nvrshare.relay.services.paging import DEFAULT_LIMIT, MAX_LIMIT

__all__ = [
    "PERMISSION_NAMES",
    "BodySpec",
    "Field",
    "decode_json",
    "parse_body",
    "parse_matrix",
    "query_limit",
    "spec_schema",
]

PERMISSION_NAMES = ("live_view", "playback", "ptz", "alarm", "two_way_audio")
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Field:
    type: str
    required: bool = False
    nullable: bool = False
    max_length: int | None = None
    description: str = ""
    schema: Mapping[str, Any] | None = None  # extra JSON Schema for objects/arrays


BodySpec = Mapping[str, Field]


def decode_json(raw: bytes) -> object:
    """Parse a JSON document; `InvalidRequest` for bad UTF-8, bad JSON, NaN or Infinity."""

    def _no_constants(name: str) -> object:
        raise ValueError(f"{name} is not JSON")

    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidRequest("the body is not valid JSON") from None


def parse_body(spec: BodySpec, value: object) -> dict[str, Any]:
    """Check `value` against `spec`; return it (absent optional fields left out)."""
    if not isinstance(value, dict):
        raise InvalidRequest("the body must be a JSON object")
    unknown = sorted(set(value) - set(spec))
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(unknown)[:200]}")
    for name, field in spec.items():
        if name not in value:
            if field.required:
                raise InvalidRequest(f"missing field: {name}")
            continue
        item = value[name]
        if item is None:
            if not field.nullable:
                raise InvalidRequest(f"field {name} must not be null")
            continue
        expected = _JSON_TYPES[field.type]
        if not isinstance(item, expected) or (field.type == "integer" and isinstance(item, bool)):
            raise InvalidRequest(f"field {name} must be of type {field.type}")
        if field.max_length is not None and len(item) > field.max_length:  # type: ignore[arg-type]
            raise InvalidRequest(f"field {name} is too long (max {field.max_length})")
    return dict(value)


def field_schema(field: Field) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": field.type}
    if field.nullable:
        schema["type"] = [field.type, "null"]
    if field.max_length is not None:
        key = {"string": "maxLength", "array": "maxItems"}.get(field.type, "maxProperties")
        schema[key] = field.max_length
    if field.description:
        schema["description"] = field.description
    if field.schema:
        schema.update(field.schema)
    return schema


def spec_schema(spec: BodySpec) -> dict[str, Any]:
    """The JSON Schema (OpenAPI 3.1) of a body spec."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [name for name, field in spec.items() if field.required],
        "properties": {name: field_schema(field) for name, field in spec.items()},
    }


MATRIX_SCHEMA: Mapping[str, Any] = {
    "description": "channel number (as a string) -> list of permission names",
    "additionalProperties": {
        "type": "array",
        "items": {"enum": list(PERMISSION_NAMES)},
        "minItems": 1,
        "uniqueItems": True,
    },
    "minProperties": 1,
}


def parse_matrix(value: object) -> dict[int, Permission]:
    """`{"1": ["live_view", ...]}` → {1: Permission}; `InvalidRequest` on anything odd."""
    if not isinstance(value, dict) or not value:
        raise InvalidRequest("permissions must map at least one channel to permission names")
    if len(value) > MAX_CHANNEL:
        raise InvalidRequest(f"permissions may name at most {MAX_CHANNEL} channels")
    result: dict[int, Permission] = {}
    for key, names in value.items():
        # isascii: str.isdigit() also accepts digits like "²" that int() refuses.
        if not (isinstance(key, str) and key.isascii() and key.isdigit() and len(key) <= 3):
            raise InvalidRequest(f"permissions: {key[:8]!r} is not a channel number")
        channel = int(key)
        if not 1 <= channel <= MAX_CHANNEL:
            raise InvalidRequest(f"permissions: channel must be in 1..{MAX_CHANNEL}")
        if isinstance(names, list) and len(names) > len(PERMISSION_NAMES):
            raise InvalidRequest("permissions: too many names for one channel")
        try:
            permission = parse_permission_names(names)
        except RemoteProtocolError as exc:
            raise InvalidRequest(f"permissions for channel {channel}: {exc}") from None
        if permission == Permission.NONE:
            raise InvalidRequest(f"permissions for channel {channel} are empty")
        result[channel] = permission
    return result


def query_limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not (value.isascii() and value.isdigit() and len(value) <= 3) or not (
        1 <= int(value) <= MAX_LIMIT
    ):
        raise InvalidRequest(f"limit must be an integer in 1..{MAX_LIMIT}")
    return int(value)
