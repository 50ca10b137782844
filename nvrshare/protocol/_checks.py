"""Field checks shared by the message dataclasses.

Every check raises `LocalProtocolError`: a message that fails one was built
wrongly by its caller.  The codec builds decoded messages through the same
constructors and turns that error into `RemoteProtocolError`, so a rule lives
in exactly one place whichever side broke it.
"""

from __future__ import annotations

import ipaddress
import math
import re

from nvrshare.protocol.errors import LocalProtocolError
from nvrshare.protocol.permissions import MAX_CHANNEL, MAX_TIMESTAMP
from nvrshare.protocol.validation import is_valid_domain, is_valid_serial

__all__ = [
    "MAX_TIMESTAMP",
    "MAX_UINT",
    "check_bytes",
    "check_channel",
    "check_domain",
    "check_host",
    "check_ip",
    "check_port",
    "check_serial",
    "check_text",
    "check_uint",
    "check_unit_float",
]

# Unsigned values fit a signed 64-bit integer, so every language's msgpack reads them.
MAX_UINT = 2**63 - 1

# C0 controls, DEL and the bidirectional overrides/isolates: never in names,
# reasons or anything a UI or log prints (the latter reorder displayed text,
# so "gate\u202egnp.exe" would show as another name).
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069]")
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
MAX_HOST_LENGTH = 253


def check_text(name: str, value: object, *, max_length: int, allow_empty: bool = False) -> None:
    if not isinstance(value, str):
        raise LocalProtocolError(f"{name} must be a string")
    if len(value) > max_length or (not value and not allow_empty):
        raise LocalProtocolError(f"{name} must be 1..{max_length} characters")
    if _CONTROL.search(value):
        raise LocalProtocolError(f"{name} must not contain control characters")


def check_uint(name: str, value: object, *, maximum: int = MAX_UINT, minimum: int = 0) -> None:
    if type(value) is not int or not minimum <= value <= maximum:
        raise LocalProtocolError(f"{name} must be an integer in {minimum}..{maximum}")


def check_bytes(
    name: str, value: object, *, length: int | None = None, max_length: int | None = None
) -> None:
    if not isinstance(value, bytes):
        raise LocalProtocolError(f"{name} must be bytes")
    if length is not None and len(value) != length:
        raise LocalProtocolError(f"{name} must be exactly {length} bytes")
    if max_length is not None and not 0 < len(value) <= max_length:
        raise LocalProtocolError(f"{name} must be 1..{max_length} bytes")


def check_unit_float(name: str, value: object) -> None:
    # `not -1 <= nan <= 1` holds, so NaN is refused along with the infinities.
    if type(value) is not float or not math.isfinite(value) or not -1.0 <= value <= 1.0:
        raise LocalProtocolError(f"{name} must be a float in [-1, 1]")


def check_channel(name: str, value: object) -> None:
    check_uint(name, value, minimum=1, maximum=MAX_CHANNEL)


def check_port(name: str, value: object) -> None:
    check_uint(name, value, minimum=1, maximum=65535)


def check_serial(name: str, value: object) -> None:
    if not is_valid_serial(value):
        raise LocalProtocolError(f"{name} is not a valid device serial: {value!r:.80}")


def check_domain(name: str, value: object) -> None:
    if not is_valid_domain(value):
        raise LocalProtocolError(f"{name} is not a valid device domain: {value!r:.80}")


def check_ip(name: str, value: object) -> None:
    if not isinstance(value, str) or len(value) > 45:
        raise LocalProtocolError(f"{name} must be an IP address")
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise LocalProtocolError(f"{name} must be an IP address: {value!r:.80}") from None


def check_host(name: str, value: object) -> None:
    """A DNS name or an IP literal (IPv6 without brackets)."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_HOST_LENGTH:
        raise LocalProtocolError(f"{name} must be a host name or IP address")
    if _HOST.fullmatch(value) is None:
        check_ip(name, value)
