"""The SDK for installer sites and the handover: `SiteClient` is a `RelayClient` plus sites.

    async with SiteClient(url) as relay:
        await relay.login("installer@example.com", password)
        site = await relay.create_site("Bakery", address="1 Main St")
        await relay.add_site_device(site["id"], "DS-1234", "ABCDEF")
        await relay.invite_site_owner(
            site["id"], email="owner@example.com", remark="your recorder",
            installer_permissions=installer_permissions(
                devices={"DS-1234": (["live_view", "playback"], now, now + 30 * 86400)}
            ),
            allow_disable_service=True,
        )

Results are the API's JSON objects; errors are the SDK's (`RelayRefused`
with the relay's code, e.g. `invitation_limit`, `invitation_invalidated`,
`installer_permission_unavailable`, `service_disabled`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from nvrshare.client.sdk import API, RelayClient

__all__ = ["SiteClient", "installer_permissions"]

DevicePermissions = tuple[Iterable[str], int, int]  # (names, valid_from, valid_until)


def installer_permissions(
    *,
    site_info: tuple[int, int] | None = None,
    devices: Mapping[str, DevicePermissions] | None = None,
) -> dict[str, Any]:
    """The JSON of installer permissions: site info (from, until) and per-device ones.

    Device permission names: configuration, live_view, playback; times are Unix seconds.
    """
    return {
        "site_info": None if site_info is None else {
            "valid_from": int(site_info[0]), "valid_until": int(site_info[1])
        },
        "devices": {
            serial: {"permissions": list(names), "valid_from": int(start),
                     "valid_until": int(end)}
            for serial, (names, start, end) in (devices or {}).items()
        },
    }  # fmt: skip


def _seg(value: str) -> str:
    return quote(value, safe="")


class SiteClient(RelayClient):
    """A relay client with the installer-site endpoints."""

    # --- installer organisation ---------------------------------------------------

    async def create_installer_org(self, name: str) -> dict[str, Any]:
        return await self._object("POST", f"{API}/installer/org", body={"name": name})

    async def installer_org(self) -> dict[str, Any]:
        return await self._object("GET", f"{API}/installer/org")

    async def add_installer_member(
        self, login: str, *, role: str, device_management: bool = True
    ) -> dict[str, Any]:
        """Add an account (email, phone or name) as `manage_all` or `manage_assigned`."""
        body = {"login": login, "role": role, "device_management": device_management}
        return await self._object("POST", f"{API}/installer/org/members", body=body)

    async def remove_installer_member(self, account_id: str) -> None:
        await self._request("DELETE", f"{API}/installer/org/members/{_seg(account_id)}")

    # --- sites (installer) ------------------------------------------------------------

    async def create_site(self, name: str, *, address: str = "") -> dict[str, Any]:
        return await self._object("POST", f"{API}/sites", body={"name": name, "address": address})

    async def list_sites(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        return await self._object("GET", f"{API}/sites", params={"limit": limit,
                                                                  "cursor": cursor})  # fmt: skip

    def iter_sites(self) -> AsyncIterator[dict[str, Any]]:
        return self._pages(f"{API}/sites")

    async def get_site(self, site_id: str) -> dict[str, Any]:
        return await self._object("GET", f"{API}/sites/{_seg(site_id)}")

    async def update_site(
        self, site_id: str, *, name: str | None = None, address: str | None = None
    ) -> dict[str, Any]:
        body = {k: v for k, v in {"name": name, "address": address}.items() if v is not None}
        return await self._object("PATCH", f"{API}/sites/{_seg(site_id)}", body=body)

    async def assign_site(self, site_id: str, account_id: str, *, assigned: bool = True
                          ) -> dict[str, Any]:  # fmt: skip
        method = "PUT" if assigned else "DELETE"
        path = f"{API}/sites/{_seg(site_id)}/assignees/{_seg(account_id)}"
        return await self._object(method, path)

    async def add_site_device(self, site_id: str, serial: str, verification_code: str
                              ) -> dict[str, Any]:  # fmt: skip
        return await self._object(
            "POST", f"{API}/sites/{_seg(site_id)}/devices",
            body={"serial": serial, "verification_code": verification_code},
        )  # fmt: skip

    async def remove_site_device(self, site_id: str, serial: str) -> dict[str, Any]:
        """`{"removed_from_owner": bool, "site": ...}` (after handover: removed from the owner)."""
        return await self._object("DELETE", f"{API}/sites/{_seg(site_id)}/devices/{_seg(serial)}")

    async def invite_site_owner(
        self,
        site_id: str,
        *,
        email: str | None = None,
        phone: str | None = None,
        remark: str | None = None,
        installer_permissions: Mapping[str, Any] | None = None,
        allow_disable_service: bool = False,
    ) -> dict[str, Any]:
        """Invite the site owner (a new invitation invalidates the previous one)."""
        body: dict[str, Any] = {"allow_disable_service": allow_disable_service}
        for key, value in (("email", email), ("phone", phone), ("remark", remark),
                           ("installer_permissions", installer_permissions)):  # fmt: skip
            if value is not None:
                body[key] = value
        return await self._object("POST", f"{API}/sites/{_seg(site_id)}/invitation", body=body)

    async def resend_site_invitation(self, site_id: str) -> dict[str, Any]:
        return await self._object("POST", f"{API}/sites/{_seg(site_id)}/invitation/resend")

    async def set_site_service(
        self, site_id: str, *, enabled: bool, serial: str | None = None
    ) -> dict[str, Any]:
        """Switch the cloud service of one device (or every device) of a handed-over site."""
        body: dict[str, Any] = {"enabled": enabled}
        if serial is not None:
            body["serial"] = serial
        return await self._object("PUT", f"{API}/sites/{_seg(site_id)}/service", body=body)

    # --- the invitee / site owner ----------------------------------------------------------

    async def site_invitations(self) -> list[dict[str, Any]]:
        result = await self._object("GET", f"{API}/site-invitations")
        return list(result["items"])

    async def accept_site_invitation(self, invitation_id: str) -> dict[str, Any]:
        return await self._object(
            "POST", f"{API}/site-invitations/{_seg(invitation_id)}/accept"
        )

    async def decline_site_invitation(self, invitation_id: str) -> None:
        await self._request("POST", f"{API}/site-invitations/{_seg(invitation_id)}/decline")

    async def my_sites(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        return await self._object("GET", f"{API}/my-sites", params={"limit": limit,
                                                                     "cursor": cursor})  # fmt: skip

    def iter_my_sites(self) -> AsyncIterator[dict[str, Any]]:
        return self._pages(f"{API}/my-sites")

    async def my_site(self, site_id: str) -> dict[str, Any]:
        return await self._object("GET", f"{API}/my-sites/{_seg(site_id)}")

    async def grant_installer_permissions(
        self, site_id: str, permissions: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Authorise installer permissions (see `installer_permissions`)."""
        return await self._object(
            "POST", f"{API}/my-sites/{_seg(site_id)}/installer-permissions",
            body=dict(permissions),
        )  # fmt: skip

    async def revoke_installer_permissions(
        self, site_id: str, *, site_info: bool = False, serials: Sequence[str] | None = None
    ) -> int:
        """Revoke site information and/or device permissions (serials None: every device)."""
        body: dict[str, Any] = {"site_info": site_info}
        if serials is not None:
            body["serials"] = list(serials)
        result = await self._object(
            "POST", f"{API}/my-sites/{_seg(site_id)}/installer-permissions/revoke", body=body
        )
        return int(result["revoked"])
