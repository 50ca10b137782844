"""The `nvrshare site` verb: installer sites and the handover to the site owner.

Installer side:   site org create|show|add-member|remove-member, site create|list|show|edit,
                  site assign, site add-device|remove-device, site invite|resend, site service
Invitee / owner:  site invitations, site accept|decline, site mine, site grant|revoke

Uses the session stored by `nvrshare account login`.  Validity periods are
given as a duration from now (`30d`, `12h`, `90m`, `3600s`); `--device-perm`
is `SERIAL:NAME[,NAME...][@DURATION]` with names configuration, live_view,
playback.  Exit codes as for the other client verbs: 0 done, 1 refused, 2 bad
arguments, 4 relay unreachable.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from nvrshare.client.cli import DEFAULT_RELAY, report_client_errors
from nvrshare.client.session_file import load_session
from nvrshare.client.sites import SiteClient, installer_permissions

__all__ = ["parse_device_perm", "parse_duration", "register"]

DEVICE_PERMISSIONS = ("configuration", "live_view", "playback")
DEFAULT_VALIDITY = "30d"
EXIT_USAGE = 2
_DURATION = re.compile(r"([1-9][0-9]{0,5})([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

Command = Callable[[argparse.Namespace, SiteClient], Awaitable[int]]
if TYPE_CHECKING:
    Group = argparse._SubParsersAction[argparse.ArgumentParser]


class UsageError(ValueError):
    """Bad command-line arguments (exit 2)."""


def parse_duration(text: str) -> int:
    """`30d` / `12h` / `90m` / `3600s` → seconds; `UsageError` otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise UsageError(f"bad duration {text!r}: use e.g. 30d, 12h, 90m or 3600s")
    return int(match.group(1)) * _UNITS[match.group(2)]


def parse_device_perm(spec: str, now: int) -> tuple[str, tuple[list[str], int, int]]:
    """`SERIAL:live_view,playback@30d` → (serial, (names, now, now + 30 days))."""
    serial, sep, rest = spec.partition(":")
    names_text, _, duration = rest.partition("@")
    names = [n.strip() for n in names_text.split(",") if n.strip()]
    if not sep or not serial or not names or set(names) - set(DEVICE_PERMISSIONS):
        raise UsageError(
            f"--device-perm {spec!r}: expected SERIAL:NAME[,NAME...][@DURATION] with names "
            + ", ".join(DEVICE_PERMISSIONS)
        )
    seconds = parse_duration(duration or DEFAULT_VALIDITY)
    return serial, (sorted(set(names)), now, now + seconds)


def _permissions(args: argparse.Namespace) -> dict[str, Any] | None:
    now = int(time.time())
    site_info = None
    if args.site_info:
        site_info = (now, now + parse_duration(args.site_info))
    devices = dict(parse_device_perm(spec, now) for spec in args.device_perm or [])
    if site_info is None and not devices:
        return None
    return installer_permissions(site_info=site_info, devices=devices)


# --- output ------------------------------------------------------------------------------


def _print(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2) if args.json else text)


def _describe_site(site: dict[str, Any]) -> str:
    lines = [f"{site['id']}  {site['name']}  [{site['status']}]  {site['address']}"]
    for device in site["devices"]:
        service = "" if device["service_enabled"] else "  (cloud service OFF)"
        lines.append(f"  device {device['serial']}  {device['model']}  {device['status']}"
                     f"{service}")  # fmt: skip
    invitation = site.get("invitation")
    if invitation:
        ((channel, address),) = invitation["invitee"].items()
        lines.append(f"  invitation {invitation['id']} to {channel} {address}")
    for grant in site["installer_permissions"]:
        what = grant["device_serial"] or "site information"
        names = ",".join(grant["permissions"]) or "manage"
        state = "active" if grant["active"] else "inactive"
        lines.append(f"  installer {what}: {names} until {grant['valid_until']} ({state})")
    return "\n".join(lines)


def _describe_invitation(invitation: dict[str, Any]) -> str:
    site = invitation["site"]
    remark = f"  \"{invitation['remark']}\"" if invitation["remark"] else ""
    return (f"{invitation['id']}  {site['name']} ({site['address']}) from "
            f"{invitation['installer']}{remark}")  # fmt: skip


# --- installer organisation ------------------------------------------------------------------


async def _org_create(args: argparse.Namespace, client: SiteClient) -> int:
    org = await client.create_installer_org(args.name)
    _print(args, org, f"created installer organisation {org['name']} ({org['id']})")
    return 0


async def _org_show(args: argparse.Namespace, client: SiteClient) -> int:
    org = await client.installer_org()
    members = [
        f"  {m['account']['email'] or m['account']['name'] or m['account']['id']}  {m['role']}"
        f"{'' if m['device_management'] else '  (no device management)'}"
        for m in org["members"]
    ]
    _print(args, org, "\n".join([f"{org['name']} ({org['id']})", *members]))
    return 0


async def _org_add_member(args: argparse.Namespace, client: SiteClient) -> int:
    member = await client.add_installer_member(
        args.login, role=args.role, device_management=not args.no_device_management
    )
    _print(args, member, f"added {member['account']['id']} as {member['role']}")
    return 0


async def _org_remove_member(args: argparse.Namespace, client: SiteClient) -> int:
    await client.remove_installer_member(args.account_id)
    _print(args, {}, f"removed {args.account_id}")
    return 0


# --- sites ---------------------------------------------------------------------------------


async def _create(args: argparse.Namespace, client: SiteClient) -> int:
    site = await client.create_site(args.name, address=args.address)
    _print(args, site, f"created site {_describe_site(site)}")
    return 0


async def _list(args: argparse.Namespace, client: SiteClient) -> int:
    sites = [s async for s in client.iter_sites()]
    _print(args, sites, "\n".join(map(_describe_site, sites)) or "no sites")
    return 0


async def _show(args: argparse.Namespace, client: SiteClient) -> int:
    site = await client.get_site(args.site_id)
    _print(args, site, _describe_site(site))
    return 0


async def _edit(args: argparse.Namespace, client: SiteClient) -> int:
    site = await client.update_site(args.site_id, name=args.name, address=args.address)
    _print(args, site, _describe_site(site))
    return 0


async def _assign(args: argparse.Namespace, client: SiteClient) -> int:
    site = await client.assign_site(args.site_id, args.account_id, assigned=not args.remove)
    _print(args, site, f"assignees: {', '.join(site['assignees']) or '-'}")
    return 0


async def _add_device(args: argparse.Namespace, client: SiteClient) -> int:
    site = await client.add_site_device(args.site_id, args.serial, args.code)
    _print(args, site, _describe_site(site))
    return 0


async def _remove_device(args: argparse.Namespace, client: SiteClient) -> int:
    result = await client.remove_site_device(args.site_id, args.serial)
    text = (f"removed {args.serial} from the owner's account" if result["removed_from_owner"]
            else f"took {args.serial} out of the site")  # fmt: skip
    _print(args, result, text)
    return 0


async def _invite(args: argparse.Namespace, client: SiteClient) -> int:
    invitation = await client.invite_site_owner(
        args.site_id, email=args.email, phone=args.phone, remark=args.remark,
        installer_permissions=_permissions(args),
        allow_disable_service=args.allow_disable_service,
    )  # fmt: skip
    ((channel, address),) = invitation["invitee"].items()
    _print(args, invitation, f"invited {address} by {channel} (invitation {invitation['id']})")
    return 0


async def _resend(args: argparse.Namespace, client: SiteClient) -> int:
    invitation = await client.resend_site_invitation(args.site_id)
    _print(args, invitation, f"resent invitation {invitation['id']}")
    return 0


async def _service(args: argparse.Namespace, client: SiteClient) -> int:
    site = await client.set_site_service(args.site_id, enabled=args.on, serial=args.serial)
    _print(args, site, _describe_site(site))
    return 0


# --- invitee / owner ---------------------------------------------------------------------------


async def _invitations(args: argparse.Namespace, client: SiteClient) -> int:
    invitations = await client.site_invitations()
    _print(args, invitations,
           "\n".join(map(_describe_invitation, invitations)) or "no site invitations")  # fmt: skip
    return 0


async def _accept(args: argparse.Namespace, client: SiteClient) -> int:
    site = await client.accept_site_invitation(args.invitation_id)
    _print(args, site, f"accepted: {_describe_site(site)}")
    return 0


async def _decline(args: argparse.Namespace, client: SiteClient) -> int:
    await client.decline_site_invitation(args.invitation_id)
    _print(args, {}, f"declined {args.invitation_id}")
    return 0


async def _mine(args: argparse.Namespace, client: SiteClient) -> int:
    if args.site_id:
        site = await client.my_site(args.site_id)
        _print(args, site, _describe_site(site))
        return 0
    sites = [s async for s in client.iter_my_sites()]
    _print(args, sites, "\n".join(map(_describe_site, sites)) or "no sites handed over to you")
    return 0


async def _grant(args: argparse.Namespace, client: SiteClient) -> int:
    permissions = _permissions(args)
    if permissions is None:
        raise UsageError("give --site-info DURATION and/or --device-perm SERIAL:NAMES[@DURATION]")
    site = await client.grant_installer_permissions(args.site_id, permissions)
    _print(args, site, _describe_site(site))
    return 0


async def _revoke(args: argparse.Namespace, client: SiteClient) -> int:
    if not (args.site_info or args.serial or args.all_devices):
        raise UsageError("give --site-info, --serial SERIAL (repeatable) and/or --all-devices")
    serials = None if args.all_devices else list(args.serial or [])
    count = await client.revoke_installer_permissions(
        args.site_id, site_info=args.site_info, serials=serials
    )
    _print(args, {"revoked": count}, f"revoked {count} installer permission(s)")
    return 0


# --- plumbing ------------------------------------------------------------------------------------


def _runner(command: Command) -> Callable[[argparse.Namespace], Awaitable[int]]:
    async def call(args: argparse.Namespace) -> int:
        saved = load_session()
        relay = args.relay or saved.relay or os.environ.get("NVRSHARE_RELAY") or DEFAULT_RELAY
        async with SiteClient(relay, token=saved.token) as client:
            return await command(args, client)

    async def run(args: argparse.Namespace) -> int:
        try:
            return await report_client_errors(call(args))
        except UsageError as exc:
            print(f"nvrshare site: {exc}", file=sys.stderr)
            return EXIT_USAGE

    return run


def _add(group: Group, name: str, help_text: str, command: Command) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = group.add_parser(name, help=help_text)
    parser.add_argument("--relay", help=f"relay URL (default: the login's, or {DEFAULT_RELAY})")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=_runner(command))
    return parser


def _permission_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--site-info", metavar="DURATION",
                        help="site information management for DURATION from now (e.g. 30d)")
    parser.add_argument("--device-perm", action="append", metavar="SERIAL:NAMES[@DURATION]",
                        help="e.g. DS-1:live_view,playback@30d (names: "
                             + ", ".join(DEVICE_PERMISSIONS) + "; repeatable)")  # fmt: skip


def register(subparsers: Group) -> None:
    site = subparsers.add_parser("site", help="installer sites and owner handover")
    actions = site.add_subparsers(dest="action", metavar="ACTION", required=True)
    _register_org(actions)
    _register_installer(actions)
    _register_owner(actions)


def _register_org(actions: Group) -> None:
    org = actions.add_parser("org", help="your installer organisation")
    org_actions = org.add_subparsers(dest="org_action", metavar="ACTION", required=True)
    p = _add(org_actions, "create", "create an installer organisation", _org_create)
    p.add_argument("name")
    _add(org_actions, "show", "your organisation and its members", _org_show)
    p = _add(org_actions, "add-member", "add an installer account", _org_add_member)
    p.add_argument("login", help="email, phone number or account name")
    p.add_argument("--role", required=True, choices=("manage_all", "manage_assigned"))
    p.add_argument("--no-device-management", action="store_true",
                   help="may not add devices nor request configuration / live view")  # fmt: skip
    p = _add(org_actions, "remove-member", "remove an installer account", _org_remove_member)
    p.add_argument("account_id")


def _register_installer(actions: Group) -> None:
    p = _add(actions, "create", "create a site", _create)
    p.add_argument("name")
    p.add_argument("--address", default="")
    _add(actions, "list", "sites you may manage", _list)
    p = _add(actions, "show", "one site", _show)
    p.add_argument("site_id")
    p = _add(actions, "edit", "edit a site's name/address", _edit)
    p.add_argument("site_id")
    p.add_argument("--name")
    p.add_argument("--address")
    p = _add(actions, "assign", "assign an installer to a site", _assign)
    p.add_argument("site_id")
    p.add_argument("account_id")
    p.add_argument("--remove", action="store_true", help="unassign instead")
    p = _add(actions, "add-device", "add a device by serial and verification code", _add_device)
    p.add_argument("site_id")
    p.add_argument("serial")
    p.add_argument("--code", required=True, help="the recorder's verification code")
    p = _add(actions, "remove-device",
             "take a device out of a site (after handover: remove it from the owner)",
             _remove_device)  # fmt: skip
    p.add_argument("site_id")
    p.add_argument("serial")
    p = _add(actions, "invite", "invite the site owner by email or phone", _invite)
    p.add_argument("site_id")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--email")
    who.add_argument("--phone")
    p.add_argument("--remark", help="shown to the invitee")
    _permission_options(p)
    p.add_argument("--allow-disable-service", action="store_true",
                   help="allow me to disable the cloud service after handover")  # fmt: skip
    p = _add(actions, "resend", "resend the pending invitation", _resend)
    p.add_argument("site_id")
    p = _add(actions, "service", "switch the cloud service of a handed-over site", _service)
    p.add_argument("site_id")
    state = p.add_mutually_exclusive_group(required=True)
    state.add_argument("--on", action="store_true")
    state.add_argument("--off", action="store_true")
    p.add_argument("--serial", help="one device (default: every device of the site)")


def _register_owner(actions: Group) -> None:
    _add(actions, "invitations", "site invitations waiting for you", _invitations)
    p = _add(actions, "accept", "accept a site: you become the owner of its devices", _accept)
    p.add_argument("invitation_id")
    p = _add(actions, "decline", "decline a site invitation", _decline)
    p.add_argument("invitation_id")
    p = _add(actions, "mine", "sites handed over to you (or one of them)", _mine)
    p.add_argument("site_id", nargs="?")
    p = _add(actions, "grant", "authorise installer permissions on your site", _grant)
    p.add_argument("site_id")
    _permission_options(p)
    p = _add(actions, "revoke", "revoke installer permissions on your site", _revoke)
    p.add_argument("site_id")
    p.add_argument("--site-info", action="store_true", help="site information management")
    p.add_argument("--serial", action="append", help="one device (repeatable)")
    p.add_argument("--all-devices", action="store_true")
