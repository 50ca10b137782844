"""Site records → JSON, and the JSON Schemas of those answers for the OpenAPI document.

One function per record; each schema lists exactly the keys its renderer
produces (a test renders every record and compares).
"""

from __future__ import annotations

from typing import Any

from nvrshare.relay.services.sites_model import (
    DevicePermission,
    InstallerGrant,
    InstallerMember,
    InstallerOrg,
    InstallerPermissionRequest,
    InstallerRole,
    Site,
    SiteInvitation,
    Validity,
)

__all__ = [
    "INVITATION_SCHEMA",
    "MEMBER_SCHEMA",
    "ORG_SCHEMA",
    "SITE_RESPONSES",
    "SITE_SCHEMA",
    "render_invitation",
    "render_member",
    "render_org",
    "render_site",
]

_PERMISSION_NAMES = [p.value for p in DevicePermission]


# --- rendering -------------------------------------------------------------------------


def _validity_json(validity: Validity) -> dict[str, int]:
    return {"valid_from": validity.valid_from, "valid_until": validity.valid_until}


def _request_json(request: InstallerPermissionRequest) -> dict[str, Any]:
    return {
        "site_info": None if request.site_info is None else _validity_json(request.site_info),
        "devices": {
            d.serial: {"permissions": sorted(p.value for p in d.permissions),
                       **_validity_json(d.validity)}
            for d in request.devices
        },
    }  # fmt: skip


def render_org(org: InstallerOrg, members: tuple[InstallerMember, ...]) -> dict[str, Any]:
    return {
        "id": org.id,
        "name": org.name,
        "created_at": org.created_at,
        "members": [render_member(m) for m in members],
    }


def render_member(member: InstallerMember) -> dict[str, Any]:
    return {
        "account": {"id": member.account_id, "email": member.email, "phone": member.phone,
                    "name": member.name},
        "role": member.role.value,
        "device_management": member.device_management,
    }  # fmt: skip


def render_invitation(invitation: SiteInvitation) -> dict[str, Any]:
    return {
        "id": invitation.id,
        "site": {"id": invitation.site_id, "name": invitation.site_name,
                 "address": invitation.site_address},
        "installer": invitation.org_name,
        "invitee": {invitation.channel: invitation.address},
        "remark": invitation.remark,
        "installer_permissions": _request_json(invitation.request),
        "allow_disable_service": invitation.allow_disable_service,
        "state": invitation.state,
        "created_at": invitation.created_at,
        "last_sent_at": invitation.last_sent_at,
        "expires_at": invitation.expires_at,
    }  # fmt: skip


def _grant(grant: InstallerGrant) -> dict[str, Any]:
    return {
        "scope": "device" if grant.device_serial is not None else "site_info",
        "device_serial": grant.device_serial,
        "installer_id": grant.installer_id,
        "permissions": sorted(p.value for p in grant.permissions),
        "active": grant.active,
        **_validity_json(grant.validity),
    }


def render_site(site: Site) -> dict[str, Any]:
    return {
        "id": site.id,
        "name": site.name,
        "address": site.address,
        "status": site.status.value,
        "created_at": site.created_at,
        "owner_id": site.owner_id,
        "installer_id": site.installer_id,
        "handed_over_at": site.handed_over_at,
        "allow_disable_service": site.allow_disable_service,
        "devices": [
            {"serial": d.serial, "model": d.model, "status": "online" if d.online else "offline",
             "channels": d.channels, "service_enabled": d.service_enabled}
            for d in site.devices
        ],
        "invitation": None if site.invitation is None else render_invitation(site.invitation),
        "installer_permissions": [_grant(g) for g in site.grants],
        "assignees": list(site.assignees),
    }  # fmt: skip


# --- response schemas (OpenAPI); a test renders every record and compares --------------


def _obj(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": sorted(properties), "properties": properties}


_STR, _OPT_STR, _INT, _BOOL = (
    {"type": "string"}, {"type": ["string", "null"]}, {"type": "integer"}, {"type": "boolean"}
)  # fmt: skip
_TIME = {"type": "number", "description": "Unix seconds"}
_OPT_TIME = {"type": ["number", "null"], "description": "Unix seconds"}
_PERIOD = {"valid_from": _INT, "valid_until": _INT}
MEMBER_SCHEMA = _obj({
    "account": _obj({"id": _STR, "email": _OPT_STR, "phone": _OPT_STR, "name": _OPT_STR}),
    "role": {"enum": [r.value for r in InstallerRole]},
    "device_management": _BOOL,
})  # fmt: skip
ORG_SCHEMA = _obj({"id": _STR, "name": _STR, "created_at": _TIME,
                   "members": {"type": "array", "items": MEMBER_SCHEMA}})  # fmt: skip
REQUEST_SCHEMA = _obj({
    "site_info": {"oneOf": [_obj(_PERIOD), {"type": "null"}]},
    "devices": {"type": "object", "additionalProperties": _obj(
        {"permissions": {"type": "array", "items": {"enum": _PERMISSION_NAMES}}, **_PERIOD})},
})  # fmt: skip
INVITATION_SCHEMA = _obj({
    "id": _STR, "site": _obj({"id": _STR, "name": _STR, "address": _STR}),
    "installer": {"type": "string", "description": "the installer organisation's name"},
    "invitee": {"type": "object", "description": "{\"email\": ...} or {\"phone\": ...}"},
    "remark": {"type": ["string", "null"], "description": "shown to the invitee"},
    "installer_permissions": REQUEST_SCHEMA, "allow_disable_service": _BOOL,
    "state": {"enum": ["pending", "invalidated", "accepted", "declined"]},
    "created_at": _TIME, "last_sent_at": _TIME, "expires_at": _TIME,
})  # fmt: skip
SITE_SCHEMA = _obj({
    "id": _STR, "name": _STR, "address": _STR,
    "status": {"enum": ["not_invited", "not_registered", "not_accepted", "handed_over"]},
    "created_at": _TIME, "owner_id": _OPT_STR, "installer_id": _OPT_STR,
    "handed_over_at": _OPT_TIME, "allow_disable_service": _BOOL,
    "devices": {"type": "array", "items": _obj({
        "serial": _STR, "model": _STR, "status": {"enum": ["online", "offline"]},
        "channels": _INT, "service_enabled": _BOOL})},
    "invitation": {"oneOf": [INVITATION_SCHEMA, {"type": "null"}]},
    "installer_permissions": {"type": "array", "items": _obj({
        "scope": {"enum": ["site_info", "device"]}, "device_serial": _OPT_STR,
        "installer_id": _STR, "permissions": {"type": "array", "items": _STR},
        "active": _BOOL, **_PERIOD})},
    "assignees": {"type": "array", "items": _STR},
})  # fmt: skip
SITE_PAGE_SCHEMA = _obj({"items": {"type": "array", "items": SITE_SCHEMA},
                         "next_cursor": {"type": ["string", "null"]}})  # fmt: skip
SITE_RESPONSES: dict[str, dict[str, Any]] = {
    "create_installer_org": ORG_SCHEMA,
    "installer_org": ORG_SCHEMA,
    "add_installer_member": MEMBER_SCHEMA,
    "create_site": SITE_SCHEMA,
    "list_sites": SITE_PAGE_SCHEMA,
    "get_site": SITE_SCHEMA,
    "update_site": SITE_SCHEMA,
    "assign_site": SITE_SCHEMA,
    "unassign_site": SITE_SCHEMA,
    "add_site_device": SITE_SCHEMA,
    "remove_site_device": _obj({"removed_from_owner": _BOOL,
                                "site": {"oneOf": [SITE_SCHEMA, {"type": "null"}]}}),
    "invite_site_owner": INVITATION_SCHEMA,
    "resend_site_invitation": INVITATION_SCHEMA,
    "set_site_service": SITE_SCHEMA,
    "my_site_invitations": _obj({"items": {"type": "array", "items": INVITATION_SCHEMA}}),
    "accept_site_invitation": SITE_SCHEMA,
    "owned_sites": SITE_PAGE_SCHEMA,
    "owned_site": SITE_SCHEMA,
    "grant_installer_permissions": SITE_SCHEMA,
    "revoke_installer_permissions": _obj({"revoked": {
        "type": "integer", "description": "how many installer permissions ended"}}),
}  # fmt: skip
