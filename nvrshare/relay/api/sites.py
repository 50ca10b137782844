"""HTTP endpoints of installer sites and the handover: routes, body parsing, handlers.

Thin like the rest of the API: parse → one `SiteService` call → render.
`SITE_ROUTES` is appended to the route table (`routes.ROUTES`), so the same
mounting, authentication, body validation, error rendering and OpenAPI
generation apply.  Records are rendered (and their schemas kept) in `sites_render`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp import web

from nvrshare.relay.api import render
from nvrshare.relay.api.bodies import Field, query_limit
from nvrshare.relay.api.routing import Call, QueryParam, Route, json_response, no_content
from nvrshare.relay.api.sites_render import (
    SITE_RESPONSES,
    render_invitation,
    render_member,
    render_org,
    render_site,
)
from nvrshare.relay.errors import InvalidRequest
from nvrshare.relay.services.paging import MAX_LIMIT
from nvrshare.relay.services.sites_model import (
    DevicePermission,
    DevicePermissionRequest,
    InstallerPermissionRequest,
    InstallerRole,
    Validity,
)

__all__ = ["INSTALLER_PERMISSIONS_SCHEMA", "SITE_ROUTES", "parse_installer_permissions"]

API = "/api/v1"
MAX_DEVICES = 64
_PERMISSION_NAMES = [p.value for p in DevicePermission]

# --- bodies ----------------------------------------------------------------------

VALIDITY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["valid_from", "valid_until"],
    "properties": {
        "valid_from": {"type": "integer", "minimum": 0, "description": "Unix seconds"},
        "valid_until": {"type": "integer", "description": "Unix seconds, exclusive"},
    },
}
INSTALLER_PERMISSIONS_SCHEMA: dict[str, Any] = {
    "description": "installer permissions after handover, each with a validity period",
    "additionalProperties": False,
    "properties": {
        "site_info": {"oneOf": [VALIDITY_SCHEMA, {"type": "null"}]},
        "devices": {
            "type": "object",
            "maxProperties": MAX_DEVICES,
            "description": "serial -> permissions and validity period",
            "additionalProperties": {
                **VALIDITY_SCHEMA,
                "required": ["permissions", "valid_from", "valid_until"],
                "properties": {
                    **VALIDITY_SCHEMA["properties"],
                    "permissions": {
                        "type": "array", "minItems": 1, "uniqueItems": True,
                        "items": {"enum": _PERMISSION_NAMES},
                    },
                },
            },
        },
    },
}  # fmt: skip


def _int(value: object, what: str) -> int:
    if type(value) is not int:
        raise InvalidRequest(f"{what} must be an integer (Unix seconds)")
    return value


def _validity(value: object, what: str, extra: frozenset[str] = frozenset()) -> Validity:
    if not isinstance(value, dict) or set(value) != {"valid_from", "valid_until"} | extra:
        raise InvalidRequest(f"{what} needs exactly valid_from and valid_until"
                             + (" and permissions" if extra else ""))  # fmt: skip
    return Validity(
        valid_from=_int(value["valid_from"], f"{what}.valid_from"),
        valid_until=_int(value["valid_until"], f"{what}.valid_until"),
    )


def parse_installer_permissions(value: object) -> InstallerPermissionRequest:
    """The JSON form (see `INSTALLER_PERMISSIONS_SCHEMA`) → a request; `InvalidRequest` if odd."""
    if value is None:
        return InstallerPermissionRequest()
    if not isinstance(value, dict) or set(value) - {"site_info", "devices"}:
        raise InvalidRequest("installer_permissions may have site_info and devices only")
    site = value.get("site_info")
    site_info = None if site is None else _validity(site, "site_info")
    devices = value.get("devices") or {}
    if not isinstance(devices, dict) or len(devices) > MAX_DEVICES:
        raise InvalidRequest(f"installer_permissions.devices maps at most {MAX_DEVICES} serials")
    wanted = []
    for serial, entry in devices.items():
        what = f"device {str(serial)[:64]}"
        if not isinstance(serial, str) or not 0 < len(serial) <= 64:
            raise InvalidRequest("installer_permissions.devices keys must be serials")
        validity = _validity(entry, what, frozenset({"permissions"}))
        names = entry["permissions"]
        if not isinstance(names, list) or not 0 < len(names) <= len(_PERMISSION_NAMES):
            raise InvalidRequest(f"{what}: permissions must name 1..3 of {_PERMISSION_NAMES}")
        try:
            permissions = frozenset(DevicePermission(n) for n in names)
        except ValueError:
            names_text = ", ".join(_PERMISSION_NAMES)
            raise InvalidRequest(f"{what}: permissions are {names_text}") from None
        wanted.append(DevicePermissionRequest(serial=serial, permissions=permissions,
                                              validity=validity))  # fmt: skip
    return InstallerPermissionRequest(site_info=site_info, devices=tuple(wanted))


# --- handlers ----------------------------------------------------------------------------


def _site_id(call: Call) -> str:
    return call.path("site_id")


async def create_installer_org(call: Call) -> web.StreamResponse:
    org = await call.services.sites.create_org(call.account, call.body["name"])
    return json_response(render_org(org, ()), status=201)


async def installer_org(call: Call) -> web.StreamResponse:
    org, members = await call.services.sites.org(call.account)
    return json_response(render_org(org, members))


async def add_installer_member(call: Call) -> web.StreamResponse:
    try:
        role = InstallerRole(call.body["role"])
    except ValueError:
        raise InvalidRequest("role must be manage_all or manage_assigned") from None
    member = await call.services.sites.add_member(
        call.account, login=call.body["login"], role=role,
        device_management=call.body.get("device_management", True),
    )  # fmt: skip
    return json_response(render_member(member), status=201)


async def remove_installer_member(call: Call) -> web.StreamResponse:
    await call.services.sites.remove_member(call.account, call.path("account_id"))
    return no_content()


async def create_site(call: Call) -> web.StreamResponse:
    site = await call.services.sites.create_site(
        call.account, name=call.body["name"], address=call.body.get("address", "")
    )
    return json_response(render_site(site), status=201)


async def list_sites(call: Call) -> web.StreamResponse:
    page = await call.services.sites.list_sites(
        call.account, limit=query_limit(call.query("limit")), cursor=call.query("cursor")
    )
    return json_response(render.page(page, render_site))


async def get_site(call: Call) -> web.StreamResponse:
    site = await call.services.sites.get_site(call.account, _site_id(call))
    return json_response(render_site(site))


async def update_site(call: Call) -> web.StreamResponse:
    site = await call.services.sites.update_site(
        call.account, _site_id(call), name=call.body.get("name"), address=call.body.get("address")
    )
    return json_response(render_site(site))


async def assign_site(call: Call) -> web.StreamResponse:
    site = await call.services.sites.assign(call.account, _site_id(call), call.path("account_id"))
    return json_response(render_site(site))


async def unassign_site(call: Call) -> web.StreamResponse:
    site = await call.services.sites.assign(
        call.account, _site_id(call), call.path("account_id"), assigned=False
    )
    return json_response(render_site(site))


async def add_site_device(call: Call) -> web.StreamResponse:
    site = await call.services.sites.add_device(
        call.account, _site_id(call), serial=call.body["serial"],
        verification_code=call.body["verification_code"], source=call.source,
    )  # fmt: skip
    return json_response(render_site(site), status=201)


async def remove_site_device(call: Call) -> web.StreamResponse:
    site = await call.services.sites.remove_device(call.account, _site_id(call), call.serial)
    return json_response({
        "removed_from_owner": site is None,
        "site": None if site is None else render_site(site),
    })  # fmt: skip


async def invite_site_owner(call: Call) -> web.StreamResponse:
    body = call.body
    invitation = await call.services.sites.invite(
        call.account, _site_id(call), email=body.get("email"), phone=body.get("phone"),
        remark=body.get("remark"),
        permissions=parse_installer_permissions(body.get("installer_permissions")),
        allow_disable_service=body.get("allow_disable_service", False),
    )  # fmt: skip
    return json_response(render_invitation(invitation), status=201)


async def resend_site_invitation(call: Call) -> web.StreamResponse:
    invitation = await call.services.sites.resend(call.account, _site_id(call))
    return json_response(render_invitation(invitation))


async def set_site_service(call: Call) -> web.StreamResponse:
    site = await call.services.sites.set_service(
        call.account, _site_id(call), enabled=call.body["enabled"], serial=call.body.get("serial")
    )
    return json_response(render_site(site))


async def my_site_invitations(call: Call) -> web.StreamResponse:
    invitations = await call.services.sites.invitations_for(call.account)
    return json_response({"items": [render_invitation(i) for i in invitations]})


async def accept_site_invitation(call: Call) -> web.StreamResponse:
    site = await call.services.sites.accept(call.account, call.path("invitation_id"))
    return json_response(render_site(site))


async def decline_site_invitation(call: Call) -> web.StreamResponse:
    await call.services.sites.decline(call.account, call.path("invitation_id"))
    return no_content()


async def owned_sites(call: Call) -> web.StreamResponse:
    page = await call.services.sites.owned_sites(
        call.account, limit=query_limit(call.query("limit")), cursor=call.query("cursor")
    )
    return json_response(render.page(page, render_site))


async def owned_site(call: Call) -> web.StreamResponse:
    site = await call.services.sites.owned_site(call.account, _site_id(call))
    return json_response(render_site(site))


async def grant_installer_permissions(call: Call) -> web.StreamResponse:
    site = await call.services.sites.grant_installer(
        call.account, _site_id(call), parse_installer_permissions(call.body)
    )
    return json_response(render_site(site))


async def revoke_installer_permissions(call: Call) -> web.StreamResponse:
    ended = await call.services.sites.revoke_installer(
        call.account, _site_id(call), site_info=call.body.get("site_info", False),
        serials=call.body.get("serials"),
    )  # fmt: skip
    return json_response({"revoked": ended})


# --- routes -------------------------------------------------------------------------------

PAGING = (
    QueryParam(name="limit", description=f"page size, 1..{MAX_LIMIT} (default 50)",
               schema={"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
    QueryParam(name="cursor", description="next_cursor from the previous page",
               schema={"type": "string", "maxLength": 512}),
)  # fmt: skip
SITE_BODY = {
    "name": Field(type="string", max_length=64),
    "address": Field(type="string", max_length=256),
}
PERMISSIONS_BODY = {
    "site_info": Field(type="object", nullable=True, schema=VALIDITY_SCHEMA),
    "devices": Field(type="object", max_length=MAX_DEVICES,
                     schema=INSTALLER_PERMISSIONS_SCHEMA["properties"]["devices"]),
}  # fmt: skip
SITE = f"{API}/sites/{{site_id}}"
MY_SITE = f"{API}/my-sites/{{site_id}}"

SITE_ROUTES: tuple[Route, ...] = (
    # installer organisation
    Route(method="POST", path=f"{API}/installer/org", handler=create_installer_org,
          tag="installer", status=201,
          summary="create an installer organisation (you manage all its sites)",
          body={"name": Field(type="string", required=True, max_length=64)}),
    Route(method="GET", path=f"{API}/installer/org", handler=installer_org, tag="installer",
          summary="your installer organisation and its members"),
    Route(method="POST", path=f"{API}/installer/org/members", handler=add_installer_member,
          tag="installer", status=201, summary="add an installer account with a role",
          body={
              "login": Field(type="string", required=True, max_length=254,
                             description="email, phone number or account name"),
              "role": Field(type="string", required=True, max_length=20,
                            schema={"enum": [r.value for r in InstallerRole]}),
              "device_management": Field(type="boolean"),
          }),
    Route(method="DELETE", path=f"{API}/installer/org/members/{{account_id}}",
          handler=remove_installer_member, tag="installer", status=204,
          summary="remove an installer account from your organisation"),
    # sites (installer)
    Route(method="POST", path=f"{API}/sites", handler=create_site, tag="sites", status=201,
          summary="create a site (Not Invited)",
          body={**SITE_BODY, "name": Field(type="string", required=True, max_length=64)}),
    Route(method="GET", path=f"{API}/sites", handler=list_sites, tag="sites",
          summary="sites you may manage", query=PAGING),
    Route(method="GET", path=SITE, handler=get_site, tag="sites", summary="one site"),
    Route(method="PATCH", path=SITE, handler=update_site, tag="sites", body=SITE_BODY,
          summary="edit a site's name/address (after handover: site information permission)"),
    Route(method="PUT", path=f"{SITE}/assignees/{{account_id}}", handler=assign_site,
          tag="sites", summary="assign an installer to a site (manage all sites only)"),
    Route(method="DELETE", path=f"{SITE}/assignees/{{account_id}}", handler=unassign_site,
          tag="sites", summary="unassign an installer from a site (manage all sites only)"),
    Route(method="POST", path=f"{SITE}/devices", handler=add_site_device, tag="sites",
          status=201, summary="add a device to a site by serial and verification code",
          body={
              "serial": Field(type="string", required=True, max_length=64),
              "verification_code": Field(type="string", required=True, max_length=256),
          }),
    Route(method="DELETE", path=f"{SITE}/devices/{{serial}}", handler=remove_site_device,
          tag="sites",
          summary="take a device out of a site (after handover: remove it from the owner)"),
    Route(method="POST", path=f"{SITE}/invitation", handler=invite_site_owner, tag="sites",
          status=201,
          summary="invite the site owner by email or phone (max 5 per site per day)",
          body={
              "email": Field(type="string", max_length=254),
              "phone": Field(type="string", max_length=32),
              "remark": Field(type="string", nullable=True, max_length=128,
                              description="shown to the invitee"),
              "installer_permissions": Field(type="object", nullable=True,
                                             schema=INSTALLER_PERMISSIONS_SCHEMA),
              "allow_disable_service": Field(type="boolean",
                                             description="allow me to disable the cloud service"),
          }),
    Route(method="POST", path=f"{SITE}/invitation/resend", handler=resend_site_invitation,
          tag="sites", summary="resend the pending invitation"),
    Route(method="PUT", path=f"{SITE}/service", handler=set_site_service, tag="sites",
          summary="switch the cloud service of one device (or all) on or off",
          body={
              "enabled": Field(type="boolean", required=True),
              "serial": Field(type="string", nullable=True, max_length=64,
                              description="one device; absent or null: every device"),
          }),
    # the invitee / site owner
    Route(method="GET", path=f"{API}/site-invitations", handler=my_site_invitations,
          tag="my-sites", summary="site invitations waiting for you"),
    Route(method="POST", path=f"{API}/site-invitations/{{invitation_id}}/accept",
          handler=accept_site_invitation, tag="my-sites",
          summary="accept a site: you become the owner of its devices"),
    Route(method="POST", path=f"{API}/site-invitations/{{invitation_id}}/decline",
          handler=decline_site_invitation, tag="my-sites", status=204,
          summary="decline a site invitation"),
    Route(method="GET", path=f"{API}/my-sites", handler=owned_sites, tag="my-sites",
          summary="sites handed over to you", query=PAGING),
    Route(method="GET", path=MY_SITE, handler=owned_site, tag="my-sites",
          summary="one site handed over to you"),
    Route(method="POST", path=f"{MY_SITE}/installer-permissions",
          handler=grant_installer_permissions, tag="my-sites", body=PERMISSIONS_BODY,
          summary="authorise installer permissions (each with a validity period)"),
    Route(method="POST", path=f"{MY_SITE}/installer-permissions/revoke",
          handler=revoke_installer_permissions, tag="my-sites",
          summary="revoke installer permissions (site information and/or devices)",
          body={
              "site_info": Field(type="boolean"),
              "serials": Field(type="array", nullable=True, max_length=MAX_DEVICES,
                               schema={"items": {"type": "string"}},
                               description="devices; null or absent: every device"),
          }),
)  # fmt: skip
SITE_ROUTES = tuple(
    replace(route, response=SITE_RESPONSES.get(route.handler.__name__)) for route in SITE_ROUTES
)
