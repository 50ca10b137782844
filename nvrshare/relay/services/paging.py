"""Opaque pagination cursors: `?limit=&cursor=`, default 50, max 200.

A cursor is base64url of a JSON list of the last row's sort key.  It is
opaque to clients (they only hand it back) but not secret; a forged cursor
can only move a caller's own listing, because every query is also filtered by
the caller's account.
"""

from __future__ import annotations

import base64
import binascii
import json
import math

from nvrshare.relay.errors import InvalidRequest

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "check_limit", "decode_cursor", "encode_cursor"]

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_CURSOR_LENGTH = 512


def check_limit(limit: int) -> int:
    if type(limit) is not int or not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be an integer in 1..{MAX_LIMIT}")
    return limit


def encode_cursor(key: list[str | float | int]) -> str:
    raw = json.dumps(key, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(
    cursor: str | None, arity: int, kinds: tuple[type, ...] | None = None
) -> list[str | float | int] | None:
    """The sort key a cursor carries, or None for the first page.

    `kinds` gives each position's type (`float` also takes an integer).
    Raises `InvalidRequest` for anything that is not a cursor this relay made.
    """
    if cursor is None:
        return None
    if not isinstance(cursor, str) or not 0 < len(cursor) <= MAX_CURSOR_LENGTH:
        raise InvalidRequest("cursor is invalid")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidRequest("cursor is invalid") from None
    if (
        not isinstance(key, list)
        or len(key) != arity
        or not all(isinstance(k, str | int | float) and not isinstance(k, bool) for k in key)
    ):
        raise InvalidRequest("cursor is invalid")
    if kinds is not None:
        for value, kind in zip(key, kinds, strict=True):
            accepted = (int, float) if kind is float else (kind,)
            if not isinstance(value, accepted) or (
                isinstance(value, float) and not math.isfinite(value)
            ):
                raise InvalidRequest("cursor is invalid")
    return key
