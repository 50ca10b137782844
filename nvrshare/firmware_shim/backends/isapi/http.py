"""The ISAPI HTTP boundary: one aiohttp session with Digest auth, and error mapping.

Everything aiohttp (or the network, or the device's status codes) can throw is
turned into the shim's errors here, in `map_errors` and `check_status`, so the
rest of the backend never sees a foreign exception.
"""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp

from nvrshare.firmware_shim.backends.isapi import xmlparse
from nvrshare.firmware_shim.errors import (
    AuthFailed,
    BadResponse,
    DeviceBusy,
    DeviceError,
    DeviceTimeout,
    DeviceUnreachable,
    NotFound,
    NotSupported,
    ShimError,
    UntrustedDevice,
)

__all__ = ["IsapiHttp", "map_errors"]

MAX_BODY = 1024 * 1024


@contextlib.contextmanager
def map_errors(what: str) -> Iterator[None]:
    """Convert foreign exceptions raised inside the block into `ShimError`s."""
    try:
        yield
    except ShimError:
        raise
    except TimeoutError as exc:
        raise DeviceTimeout(f"{what}: timed out") from exc
    except (aiohttp.ServerFingerprintMismatch, aiohttp.ClientSSLError) as exc:
        raise UntrustedDevice(f"{what}: {exc}") from exc
    except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError) as exc:
        raise DeviceUnreachable(f"{what}: {exc}") from exc
    except (aiohttp.ClientPayloadError, aiohttp.ClientResponseError) as exc:
        raise BadResponse(f"{what}: {exc}") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise DeviceUnreachable(f"{what}: {exc}") from exc
    except (ET.ParseError, UnicodeDecodeError, ValueError) as exc:
        raise BadResponse(f"{what}: {exc}") from exc


def _describe(body: bytes) -> tuple[int | None, str]:
    """(statusCode, subStatusCode) from a ResponseStatus body, when there is one."""
    try:
        root = xmlparse.parse(body, limit=64 * 1024)
    except BadResponse:
        return None, ""
    return xmlparse.int_of(root, "statusCode"), (xmlparse.text_of(root, "subStatusCode") or "")


def check_status(what: str, status: int, body: bytes) -> None:
    """Raise the shim error that an HTTP status (and ResponseStatus body) means."""
    if 200 <= status < 300:
        return
    code, sub = _describe(body)
    detail = f"{what}: HTTP {status} {sub}".rstrip()
    if status == 401:
        raise AuthFailed(detail)
    if code == 3 or sub.lower() == "devicebusy":
        raise DeviceBusy(detail)
    if status in (403, 404) and sub.lower() in ("notsupport", "notsupported"):
        raise NotSupported(detail)
    if status == 404:
        raise NotFound(detail)
    if status == 403:
        raise NotSupported(detail)
    if status == 503:
        raise DeviceBusy(detail)
    raise DeviceError(detail)


class IsapiHttp:
    """A Digest-authenticated session against one device's base URL."""

    def __init__(
        self,
        base_url: str,
        *,
        username: str,
        password: str,
        timeout: float,
        tls_fingerprint: bytes | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._username = username
        self._password = password
        # Recorders ship self-signed certificates: pinning the certificate's SHA-256
        # is the safe alternative to switching verification off.
        self._ssl: aiohttp.Fingerprint | bool = (
            aiohttp.Fingerprint(tls_fingerprint) if tls_fingerprint else True
        )
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self._ssl, limit=16),
            middlewares=(aiohttp.DigestAuthMiddleware(self._username, self._password),),
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            raise_for_status=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise DeviceUnreachable("ISAPI session is not open")
        return self._session

    async def call(self, method: str, path: str, *, body: str | None = None) -> bytes:
        """One request/response exchange; returns the (bounded) 2xx body."""
        what = f"{method} {path.split('?', maxsplit=1)[0]}"
        with map_errors(what):
            async with self.session.request(
                method,
                self.base_url + path,
                data=body.encode("utf-8") if body is not None else None,
                headers={"Content-Type": "application/xml"} if body is not None else None,
            ) as response:
                data = await _read_bounded(response)
                check_status(what, response.status, data)
                return data

    async def xml(self, method: str, path: str, *, body: str | None = None) -> ET.Element:
        return xmlparse.parse(await self.call(method, path, body=body))

    @contextlib.asynccontextmanager
    async def stream(
        self, method: str, path: str, *, read_timeout: float | None, **kwargs: Any
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A long-lived request (alert stream, audio); status already checked."""
        what = f"{method} {path.split('?', maxsplit=1)[0]}"
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.timeout, sock_read=read_timeout
        )
        with map_errors(what):
            async with self.session.request(
                method, self.base_url + path, timeout=timeout, **kwargs
            ) as response:
                if not 200 <= response.status < 300:
                    check_status(what, response.status, await _read_bounded(response))
                yield response


async def _read_bounded(response: aiohttp.ClientResponse) -> bytes:
    declared = response.content_length
    if declared is not None and declared > MAX_BODY:
        raise BadResponse(f"response of {declared} bytes is too large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY:
            raise BadResponse("response body too large")
        chunks.append(chunk)
    return b"".join(chunks)

