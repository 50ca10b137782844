"""An async client for the relay's control-plane API.

    async with RelayClient("http://127.0.0.1:8480") as relay:
        await relay.login("alice@example.com", password)
        await relay.share("DS-1234", email="bob@example.com", permissions={1: ["live_view"]})

Results are the API's JSON objects (dicts).  Errors: `RelayRefused` (and its
subclasses, by the relay's error code) when the relay said no,
`RelayUnreachable` when it could not be asked.  aiohttp's exceptions never
leave this module.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import aiohttp

from nvrshare.client.errors import RelayUnreachable, refusal

__all__ = ["RelayClient"]

API = "/api/v1"
MAX_RESPONSE = 4 * 1024 * 1024


async def _read_bounded(response: aiohttp.ClientResponse) -> bytes:
    """The whole body, refusing one larger than MAX_RESPONSE."""
    chunks, size = [], 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_RESPONSE:
            raise RelayUnreachable("the relay's answer is larger than any API response")
        chunks.append(chunk)
    return b"".join(chunks)


class RelayClient:
    """One relay, one (optional) bearer session; use as `async with`."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> RelayClient:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        raw: bool = False,
    ) -> Any:
        if self._session is None:
            raise RuntimeError("use RelayClient as `async with`")
        headers = {"Accept": "application/json"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        try:
            async with self._session.request(
                method, self.base_url + path, json=body, params=query, headers=headers
            ) as response:
                data = await _read_bounded(response)
                status, content_type = response.status, response.content_type
                retry_after = response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise RelayUnreachable(f"cannot reach the relay at {self.base_url}: {exc}") from exc
        if status >= 400:
            try:
                error = json.loads(data)["error"]
                code, message = str(error["code"]), str(error["message"])
            except (ValueError, KeyError, TypeError):
                raise RelayUnreachable(
                    f"the relay answered HTTP {status} without an error body"
                ) from None
            after = None
            if retry_after and retry_after.isascii() and retry_after.isdigit():
                after = int(retry_after[:6])
            raise refusal(status, code, message, after)
        if raw:
            return data
        if status == 204:
            return None
        if content_type != "application/json":
            raise RelayUnreachable(f"expected JSON from the relay, got {content_type}")
        try:
            return json.loads(data)
        except ValueError:
            raise RelayUnreachable("the relay sent invalid JSON") from None

    async def _object(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        result = await self._request(method, path, **kwargs)
        if not isinstance(result, dict):
            raise RelayUnreachable("the relay sent JSON that is not an object")
        return result

    async def _pages(self, path: str, **params: Any) -> AsyncIterator[dict[str, Any]]:
        cursor = None
        while True:
            page = await self._object("GET", path, params=dict(params, cursor=cursor))
            for item in page["items"]:
                yield item
            cursor = page["next_cursor"]
            if cursor is None:
                return

    # --- accounts -------------------------------------------------------------

    async def register(
        self,
        *,
        password: str,
        email: str | None = None,
        phone: str | None = None,
        name: str | None = None,
        region: str | None = None,
    ) -> dict[str, Any]:
        fields = {"email": email, "phone": phone, "name": name, "region": region}
        body = {k: v for k, v in fields.items() if v is not None}
        return await self._object("POST", f"{API}/accounts", body=dict(body, password=password))

    async def login(self, login: str, password: str) -> dict[str, Any]:
        """Log in and keep the session's bearer token for later calls."""
        session = await self._object(
            "POST", f"{API}/sessions", body={"login": login, "password": password}
        )
        self.token = session["token"]
        return session

    async def logout(self) -> None:
        await self._request("DELETE", f"{API}/sessions/current")
        self.token = None

    async def me(self) -> dict[str, Any]:
        return await self._object("GET", f"{API}/account")

    async def account_qr(self) -> dict[str, Any]:
        return await self._object("GET", f"{API}/account/qr")

    async def account_qr_png(self) -> bytes:
        png = await self._request("GET", f"{API}/account/qr.png", raw=True)
        assert isinstance(png, bytes)
        return png

    # --- devices --------------------------------------------------------------

    async def list_devices(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        return await self._object(
            "GET", f"{API}/devices", params={"limit": limit, "cursor": cursor}
        )

    def iter_devices(self) -> AsyncIterator[dict[str, Any]]:
        return self._pages(f"{API}/devices")

    async def add_device(self, serial: str, verification_code: str) -> dict[str, Any]:
        return await self._object(
            "POST",
            f"{API}/devices",
            body={"serial": serial, "verification_code": verification_code},
        )

    async def get_device(self, serial: str) -> dict[str, Any]:
        return await self._object("GET", f"{API}/devices/{serial}")

    async def rename_device(self, serial: str, alias: str | None) -> dict[str, Any]:
        return await self._object("PATCH", f"{API}/devices/{serial}", body={"alias": alias})

    async def remove_device(self, serial: str) -> None:
        await self._request("DELETE", f"{API}/devices/{serial}")

    async def device_audit(
        self, serial: str, *, limit: int | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        """A page of a device's audit trail (owner only), newest first."""
        return await self._object(
            "GET", f"{API}/devices/{serial}/audit", params={"limit": limit, "cursor": cursor}
        )

    async def issue_token(self, serial: str) -> dict[str, Any]:
        return await self._object("POST", f"{API}/devices/{serial}/token")

    # --- shares: owner ----------------------------------------------------------

    async def share(
        self,
        serial: str,
        *,
        permissions: Mapping[int, Iterable[str]],
        email: str | None = None,
        phone: str | None = None,
        name: str | None = None,
        account_id: str | None = None,
        qr: str | None = None,
        remark: str | None = None,
    ) -> dict[str, Any]:
        """Share a device; `AccountNotFound` / `NetworkBusy` are the two failure results."""
        named = {"email": email, "phone": phone, "name": name, "account_id": account_id, "qr": qr}
        recipient = {k: v for k, v in named.items() if v is not None}
        body: dict[str, Any] = {
            "recipient": recipient,
            "permissions": {str(ch): list(names) for ch, names in permissions.items()},
        }
        if remark is not None:
            body["remark"] = remark
        return await self._object("POST", f"{API}/devices/{serial}/shares", body=body)

    async def device_shares(self, serial: str) -> dict[str, Any]:
        return await self._object("GET", f"{API}/devices/{serial}/shares")

    async def my_shared_devices(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        return await self._object("GET", f"{API}/shares", params={"limit": limit,
                                                                   "cursor": cursor})  # fmt: skip

    async def update_share(
        self,
        share_id: str,
        *,
        permissions: Mapping[int, Iterable[str]] | None = None,
        remark: str | None = None,
        clear_remark: bool = False,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if permissions is not None:
            body["permissions"] = {str(ch): list(n) for ch, n in permissions.items()}
        if remark is not None or clear_remark:
            body["remark"] = remark
        return await self._object("PATCH", f"{API}/shares/{share_id}", body=body)

    async def revoke_share(self, share_id: str) -> None:
        await self._request("DELETE", f"{API}/shares/{share_id}")

    async def revoke_accounts(self, serial: str, account_ids: Iterable[str]) -> int:
        result = await self._object(
            "POST",
            f"{API}/devices/{serial}/shares/revoke",
            body={"account_ids": list(account_ids)},
        )
        return int(result["revoked"])

    async def disable_sharing(self, serial: str) -> int:
        result = await self._object("DELETE", f"{API}/devices/{serial}/shares")
        return int(result["revoked"])

    async def share_history(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        return await self._object(
            "GET", f"{API}/share-history", params={"limit": limit, "cursor": cursor}
        )

    async def delete_recipient(self, account_id: str) -> int:
        result = await self._object("DELETE", f"{API}/recipients/{account_id}")
        return int(result["revoked"])

    # --- shares: recipient ------------------------------------------------------

    async def shared_with_me(
        self, *, state: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        return await self._object(
            "GET",
            f"{API}/shared-with-me",
            params={"state": state, "limit": limit, "cursor": cursor},
        )

    async def pending_count(self) -> int:
        return int((await self._object("GET", f"{API}/shared-with-me/pending-count"))["count"])

    async def accept(self, share_id: str) -> None:
        await self._request("POST", f"{API}/shared-with-me/{share_id}/accept")

    async def reject(self, share_id: str) -> None:
        await self._request("POST", f"{API}/shared-with-me/{share_id}/reject")

    async def rename_received(self, share_id: str, alias: str | None) -> None:
        await self._request("PATCH", f"{API}/shared-with-me/{share_id}", body={"alias": alias})

    async def delete_received(self, share_id: str) -> None:
        await self._request("DELETE", f"{API}/shared-with-me/{share_id}")

    async def openapi(self) -> dict[str, Any]:
        return await self._object("GET", "/api/openapi.json")
