"""The one place where zeep, onvif-zeep-async, aiohttp, lxml and timeout errors become shim errors.

Everything the ONVIF backend does against the device runs inside `map_errors()`.
Faults are classified by their ONVIF subcodes (``ter:NotAuthorized``,
``ter:ActionNotSupported``, ``ter:NoProfile`` ...) because cameras rarely agree
on anything else; a fault we cannot classify is still a `DeviceError`, never a
foreign exception.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import aiohttp
import httpx
import zeep.exceptions
from lxml import etree
from onvif.exceptions import ONVIFAuthError, ONVIFError, ONVIFTimeoutError

from nvrshare.firmware_shim.errors import (
    AuthFailed,
    BadResponse,
    DeviceError,
    DeviceTimeout,
    DeviceUnreachable,
    NotFound,
    NotSupported,
    ShimError,
    ShimUsageError,
)

# Subcode local names (any prefix) -> the shim error they mean.
_NOT_FOUND_SUBCODES = frozenset(
    {
        "NoProfile",
        "NoToken",
        "NoEntity",
        "NoSource",
        "NoConfig",
        "ResourceUnknownFault",
        "NoRecording",  # Replay / Recording: unknown recording token
        "InvalidToken",  # Search: unknown or expired search job
    }
)
_NOT_SUPPORTED_SUBCODES = frozenset(
    {
        "ActionNotSupported",
        "NotSupported",
        "SnapshotNotSupported",
        "NoPTZProfile",
        "PTZNotSupported",
    }
)
_AUTH_SUBCODES = frozenset({"NotAuthorized", "FailedAuthentication", "InvalidSecurity"})
_MAX_TEXT = 200


def _local_names(fault: zeep.exceptions.Fault) -> set[str]:
    names: set[str] = set()
    for code in [fault.code, *(fault.subcodes or [])]:
        if code is None:
            continue
        text = code.localname if isinstance(code, etree.QName) else str(code)
        names.add(text.rsplit(":", 1)[-1].rsplit("}", 1)[-1])
    return names


def fault_to_shim(fault: zeep.exceptions.Fault, what: str) -> DeviceError:
    """Classify a SOAP fault from the device."""
    names = _local_names(fault)
    message = f"{what}: {str(fault.message or 'SOAP fault')[:_MAX_TEXT]}"
    if names & _AUTH_SUBCODES or "not authorized" in message.lower():
        return AuthFailed(message)
    if names & _NOT_SUPPORTED_SUBCODES:
        return NotSupported(message)
    if names & _NOT_FOUND_SUBCODES:
        return NotFound(message)
    return DeviceError(message)


def to_shim(exc: BaseException, what: str) -> ShimError | None:
    """The shim error for a foreign exception, or None when it is not ours to convert."""
    result: ShimError | None = None
    if isinstance(exc, ShimUsageError):
        # Raised while building a model from device data: the device sent nonsense.
        result = BadResponse(f"{what}: {exc}")
    elif isinstance(exc, ShimError):
        result = exc
    elif isinstance(exc, zeep.exceptions.Fault):
        result = fault_to_shim(exc, what)
    elif isinstance(exc, zeep.exceptions.TransportError):
        if exc.status_code in (401, 403):
            result = AuthFailed(f"{what}: HTTP {exc.status_code}")
        else:
            result = BadResponse(f"{what}: HTTP {exc.status_code}")
    elif isinstance(exc, ONVIFAuthError):
        result = AuthFailed(f"{what}: {str(exc)[:_MAX_TEXT]}")
    elif isinstance(exc, ONVIFTimeoutError | TimeoutError | asyncio.TimeoutError):
        result = DeviceTimeout(f"{what}: no answer in time")
    elif isinstance(exc, ONVIFError):
        # safe_func wraps whatever went wrong; classify the cause when there is one.
        cause = exc.__cause__
        result = to_shim(cause, what) if cause is not None else None
        if result is None:
            result = DeviceError(f"{what}: {str(exc)[:_MAX_TEXT]}")
    elif isinstance(
        exc,
        zeep.exceptions.XMLSyntaxError
        | zeep.exceptions.XMLParseError
        | zeep.exceptions.ValidationError
        | zeep.exceptions.UnexpectedElementError
        | zeep.exceptions.LookupError
        | zeep.exceptions.NamespaceError
        | etree.LxmlError,
    ):
        result = BadResponse(f"{what}: malformed reply ({type(exc).__name__})")
    elif isinstance(exc, aiohttp.ClientResponseError):
        result = BadResponse(f"{what}: HTTP {exc.status}")
    elif isinstance(exc, aiohttp.ClientError | httpx.TransportError | ConnectionError | OSError):
        result = DeviceUnreachable(f"{what}: {type(exc).__name__}")
    elif isinstance(exc, zeep.exceptions.Error | httpx.HTTPError):
        result = BadResponse(f"{what}: {type(exc).__name__}")
    elif isinstance(exc, AttributeError | KeyError | IndexError | TypeError | ValueError):
        # A reply that parsed but lacks what every camera sends.
        result = BadResponse(f"{what}: unexpected reply shape ({type(exc).__name__})")
    return result


@contextlib.contextmanager
def map_errors(what: str) -> Iterator[None]:
    """Re-raise any foreign exception from the block as the matching `ShimError`.

    `what` names the operation for the message (never the credentials).
    Cancellation and errors we do not recognise (real bugs) pass through.
    """
    try:
        yield
    except ShimError as exc:
        converted = to_shim(exc, what)
        if converted is exc:
            raise
        raise converted from exc  # type: ignore[misc]
    except Exception as exc:
        converted = to_shim(exc, what)
        if converted is None:
            raise
        raise converted from exc
