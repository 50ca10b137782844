"""User-facing verbs over the client SDK: account, device, share, shared-with-me.

`nvrshare account login` stores the session (see `session_file`); every other
verb uses it.  Passwords come from `--password-stdin`, `$NVRSHARE_PASSWORD`,
or a prompt, never from the command line.  `--json` prints the API's JSON.
Exit codes: 0 done, 1 the relay refused (its message is printed), 4 the relay
could not be reached.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from nvrshare.client.errors import ClientError, RelayRefused, RelayUnreachable
from nvrshare.client.sdk import RelayClient
from nvrshare.client.session_file import (
    SavedSession,
    delete_session,
    load_session,
    save_session,
)

__all__ = ["parse_permission_spec", "register", "report_client_errors"]

DEFAULT_RELAY = "http://127.0.0.1:8480"
EXIT_REFUSED = 1
EXIT_UNREACHABLE = 4
PERMISSION_NAMES = ("live_view", "playback", "ptz", "alarm", "two_way_audio")

Command = Callable[[argparse.Namespace, RelayClient], Awaitable[int]]


def _print(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2) if args.json else text)


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    env = os.environ.get("NVRSHARE_PASSWORD")
    return env if env is not None else getpass.getpass("password: ")


def parse_permission_spec(specs: list[str]) -> dict[int, list[str]]:
    """`["1:live_view,playback", "2:all"]` → {1: [...], 2: [...]}; ValueError if malformed."""
    matrix: dict[int, list[str]] = {}
    for spec in specs:
        channel, sep, names = spec.partition(":")
        channel = channel.strip()
        if not sep or not (channel.isascii() and channel.isdigit() and len(channel) <= 3):
            raise ValueError(f"--perm {spec!r}: expected CHANNEL:NAME[,NAME...]")
        wanted = [n.strip() for n in names.split(",") if n.strip()]
        if wanted == ["all"]:
            wanted = list(PERMISSION_NAMES)
        unknown = [n for n in wanted if n not in PERMISSION_NAMES]
        if not wanted or unknown:
            raise ValueError(
                f"--perm {spec!r}: permissions are {', '.join(PERMISSION_NAMES)} or all"
            )
        matrix.setdefault(int(channel), [])
        matrix[int(channel)] += [n for n in wanted if n not in matrix[int(channel)]]
    if not matrix:
        raise ValueError("give at least one --perm CHANNEL:NAME[,NAME...]")
    return matrix


def _describe_device(device: dict[str, Any]) -> str:
    name = device.get("alias") or device.get("domain") or "-"
    channels = ", ".join(f"{c['number']}:{c['name']}" for c in device["channels"])
    return (
        f"{device['serial']}  {name}  {device['status']}  {device['ip']}:{device['port']}"
        f"  [{channels}]"
    )


def _describe_matrix(matrix: dict[str, list[str]]) -> str:
    return "; ".join(f"ch{ch}: {','.join(names)}" for ch, names in matrix.items())


def _who(account: dict[str, Any]) -> str:
    return str(
        account.get("email") or account.get("name") or account.get("phone") or account["id"]
    )


# --- account -----------------------------------------------------------------


async def _account_register(args: argparse.Namespace, client: RelayClient) -> int:
    account = await client.register(
        password=_password(args), email=args.email, phone=args.phone, name=args.name,
        region=args.region,
    )  # fmt: skip
    _print(args, account, f"registered account {account['id']} in region {account['region']}")
    return 0


async def _account_login(args: argparse.Namespace, client: RelayClient) -> int:
    session = await client.login(args.login, _password(args))
    path = save_session(
        SavedSession(
            relay=client.base_url,
            token=session["token"],
            account_id=session["account"]["id"],
            expires_at=float(session["expires_at"]),
        )
    )
    _print(args, session["account"], f"logged in as {_who(session['account'])} ({path})")
    return 0


async def _account_logout(args: argparse.Namespace, client: RelayClient) -> int:
    await client.logout()
    delete_session()
    _print(args, {}, "logged out")
    return 0


# --- device ------------------------------------------------------------------


async def _device_add(args: argparse.Namespace, client: RelayClient) -> int:
    device = await client.add_device(args.serial, args.code)
    _print(args, device, f"added {_describe_device(device)}")
    return 0


async def _device_list(args: argparse.Namespace, client: RelayClient) -> int:
    devices = [d async for d in client.iter_devices()]
    _print(args, devices, "\n".join(_describe_device(d) for d in devices) or "no devices")
    return 0


async def _device_rename(args: argparse.Namespace, client: RelayClient) -> int:
    device = await client.rename_device(args.serial, args.alias or None)
    _print(args, device, f"renamed: {_describe_device(device)}")
    return 0


async def _device_remove(args: argparse.Namespace, client: RelayClient) -> int:
    await client.remove_device(args.serial)
    _print(args, {}, f"removed {args.serial}; every share of it ended")
    return 0


async def _device_audit(args: argparse.Namespace, client: RelayClient) -> int:
    page = await client.device_audit(args.serial, limit=args.limit)
    lines = [
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(e['at']))}Z  {e['action']}  "
        f"by {e['actor_id'] or 'the device'}"
        + (f"  on {e['subject_id']}" if e["subject_id"] else "")
        for e in page["items"]
    ]
    _print(args, page["items"], "\n".join(lines) or "no entries")
    return 0


# --- share -------------------------------------------------------------------


async def _share_create(args: argparse.Namespace, client: RelayClient) -> int:
    try:
        matrix = parse_permission_spec(args.perm or [])
    except ValueError as exc:
        print(f"nvrshare share create: {exc}", file=sys.stderr)
        return 2
    result = await client.share(
        args.serial, permissions=matrix, email=args.email, phone=args.phone, name=args.name,
        account_id=args.account_id, qr=args.qr, remark=args.remark,
    )  # fmt: skip
    share = result["share"]
    text = (
        f"shared (share {share['id']}, {share['state']}) with {_who(share['recipient'])}: "
        f"{_describe_matrix(share['permissions'])}"
    )
    _print(args, result, text)
    return 0


async def _share_edit(args: argparse.Namespace, client: RelayClient) -> int:
    try:
        matrix = parse_permission_spec(args.perm) if args.perm else None
    except ValueError as exc:
        print(f"nvrshare share edit: {exc}", file=sys.stderr)
        return 2
    share = await client.update_share(
        args.share_id, permissions=matrix, remark=args.remark, clear_remark=args.clear_remark
    )
    _print(args, share, f"share {share['id']}: {_describe_matrix(share['permissions'])}")
    return 0


def _describe_shares(entry: dict[str, Any]) -> str:
    lines = [_describe_device(entry["device"])]
    for share in entry["shares"]:
        remark = f"  ({share['remark']})" if share["remark"] else ""
        lines.append(
            f"  {share['id']}  {_who(share['recipient'])}  {share['state']}  "
            f"{_describe_matrix(share['permissions'])}{remark}"
        )
    return "\n".join(lines)


async def _share_list(args: argparse.Namespace, client: RelayClient) -> int:
    if args.serial:
        entry = await client.device_shares(args.serial)
        _print(args, entry, _describe_shares(entry))
        return 0
    entries, cursor = [], None
    while True:
        page = await client.my_shared_devices(cursor=cursor)
        entries += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    _print(args, entries, "\n".join(map(_describe_shares, entries)) or "no shared devices")
    return 0


async def _share_accept(args: argparse.Namespace, client: RelayClient) -> int:
    await client.accept(args.share_id)
    _print(args, {}, f"accepted {args.share_id}")
    return 0


async def _share_reject(args: argparse.Namespace, client: RelayClient) -> int:
    await client.reject(args.share_id)
    _print(args, {}, f"rejected {args.share_id}")
    return 0


async def _share_revoke(args: argparse.Namespace, client: RelayClient) -> int:
    if args.share:
        await client.revoke_share(args.share)
        count = 1
    elif args.serial and args.all:
        count = await client.disable_sharing(args.serial)
    elif args.serial and args.account:
        count = await client.revoke_accounts(args.serial, args.account)
    else:
        print("nvrshare share revoke: give --share ID, or SERIAL with --account ID... or --all",
              file=sys.stderr)  # fmt: skip
        return 2
    _print(args, {"revoked": count}, f"stopped {count} share(s)")
    return 0


async def _share_history(args: argparse.Namespace, client: RelayClient) -> int:
    page = await client.share_history(limit=200)
    _print(args, page["items"],
           "\n".join(f"{_who(e['account'])}  {e['account']['id']}" for e in page["items"])
           or "no history")  # fmt: skip
    return 0


async def _shared_with_me(args: argparse.Namespace, client: RelayClient) -> int:
    if args.rename:
        share_id, alias = args.rename
        await client.rename_received(share_id, alias or None)
        _print(args, {}, f"renamed {share_id}")
        return 0
    if args.delete:
        await client.delete_received(args.delete)
        _print(args, {}, f"deleted {args.delete}: it is no longer shared with you")
        return 0
    if args.count:
        count = await client.pending_count()
        _print(args, {"count": count}, f"you have {count} new sharings")
        return 0
    page = await client.shared_with_me(state="pending" if args.pending else None, limit=200)
    lines = [
        f"{s['id']}  {s['state']}  {s['alias'] or s['device']['domain'] or '-'}  "
        f"{s['device']['serial']}  {s['device']['status']}  "
        f"{s['device']['ip']}:{s['device']['port']}  from {_who(s['sharer'])}  "
        f"{_describe_matrix(s['permissions'])}"
        for s in page["items"]
    ]
    _print(args, page["items"], "\n".join(lines) or "nothing is shared with you")
    return 0


# --- plumbing ------------------------------------------------------------------


async def report_client_errors(call: Awaitable[int]) -> int:
    """Await a verb; a relay refusal or an unreachable relay becomes a message and an exit code."""
    try:
        return await call
    except RelayUnreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except RelayRefused as exc:
        retry = f" (retry in {exc.retry_after} s)" if exc.retry_after else ""
        print(f"error: {exc.message} [{exc.code}]{retry}", file=sys.stderr)
        return EXIT_REFUSED
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED


def _runner(command: Command, *, needs_session: bool) -> Callable[[argparse.Namespace], Any]:
    async def call(args: argparse.Namespace) -> int:
        relay, token = args.relay, None
        if needs_session:
            saved = load_session()
            relay, token = relay or saved.relay, saved.token
        relay = relay or os.environ.get("NVRSHARE_RELAY") or DEFAULT_RELAY
        async with RelayClient(relay, token=token) as client:
            return await command(args, client)

    async def run(args: argparse.Namespace) -> int:
        return await report_client_errors(call(args))

    return run


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--relay", help=f"relay URL (default: the login's, or {DEFAULT_RELAY})")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _add(
    group: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
    command: Command,
    *,
    needs_session: bool = True,
) -> argparse.ArgumentParser:
    parser = group.add_parser(name, help=help_text)
    _common(parser)
    parser.set_defaults(func=_runner(command, needs_session=needs_session))
    return parser


def _recipient_options(parser: argparse.ArgumentParser) -> None:
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--email")
    who.add_argument("--phone")
    who.add_argument("--name", help="account name")
    who.add_argument("--account-id", help="an account id (e.g. from `share history`)")
    who.add_argument("--qr", help="a scanned account QR payload")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the account, device, share and shared-with-me verbs."""
    _register_account(subparsers)
    _register_device(subparsers)
    _register_share(subparsers)
    _register_shared_with_me(subparsers)


def _register_account(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    account = subparsers.add_parser("account", help="register / log in").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    p = _add(account, "register", "create an account", _account_register, needs_session=False)
    for flag in ("--email", "--phone", "--name", "--region"):
        p.add_argument(flag)
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p = _add(account, "login", "log in and store the session", _account_login,
             needs_session=False)  # fmt: skip
    p.add_argument("login", help="email, phone number or account name")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    _add(account, "logout", "end the stored session", _account_logout)


def _register_device(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    device = subparsers.add_parser("device", help="add, list, rename, remove devices")
    actions = device.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = _add(actions, "add", "add a device by serial and verification code", _device_add)
    p.add_argument("serial")
    p.add_argument("--code", required=True, help="the recorder's verification code")
    _add(actions, "list", "devices you own", _device_list)
    p = _add(actions, "rename", "set (or clear, with '') a device's alias", _device_rename)
    p.add_argument("serial")
    p.add_argument("alias")
    p = _add(actions, "remove", "remove a device (ends every share)", _device_remove)
    p.add_argument("serial")
    p = _add(actions, "audit", "what happened to a device (newest first)", _device_audit)
    p.add_argument("serial")
    p.add_argument("--limit", type=int, default=50, help="entries to show (1..200)")


def _register_share(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    share = subparsers.add_parser("share", help="create, list, accept, reject, revoke shares")
    actions = share.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = _add(actions, "create", "share a device with an account", _share_create)
    p.add_argument("serial")
    _recipient_options(p)
    p.add_argument("--perm", action="append", metavar="CH:NAMES",
                   help="e.g. 1:live_view,playback or 2:all (repeat per channel)")  # fmt: skip
    p.add_argument("--remark", help="a note visible to you only")
    p = _add(actions, "edit", "change a share's permissions and/or remark", _share_edit)
    p.add_argument("share_id")
    p.add_argument("--perm", action="append", metavar="CH:NAMES", help="the new matrix")
    remark = p.add_mutually_exclusive_group()
    remark.add_argument("--remark", help="a note visible to you only")
    remark.add_argument("--clear-remark", action="store_true")
    p = _add(actions, "list", "my shared devices (or one device's shares)", _share_list)
    p.add_argument("serial", nargs="?")
    p = _add(actions, "accept", "accept a share made to you", _share_accept)
    p.add_argument("share_id")
    p = _add(actions, "reject", "reject a share made to you", _share_reject)
    p.add_argument("share_id")
    p = _add(actions, "revoke", "stop sharing", _share_revoke)
    p.add_argument("serial", nargs="?")
    p.add_argument("--share", metavar="SHARE_ID", help="stop one share")
    p.add_argument("--account", action="append", metavar="ACCOUNT_ID",
                   help="stop sharing SERIAL with this account (repeatable)")  # fmt: skip
    p.add_argument("--all", action="store_true", help="disable all sharing of SERIAL")
    _add(actions, "history", "accounts you shared with before", _share_history)


def _register_shared_with_me(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    p = _add(subparsers, "shared-with-me", "devices others share with you", _shared_with_me)
    p.add_argument("--pending", action="store_true", help="only shares waiting for you")
    p.add_argument("--count", action="store_true", help="only how many wait for you")
    p.add_argument("--rename", nargs=2, metavar=("SHARE_ID", "ALIAS"),
                   help="your own name for a shared device ('' clears it)")  # fmt: skip
    p.add_argument("--delete", metavar="SHARE_ID", help="remove a device shared with you")
