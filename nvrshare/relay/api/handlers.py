"""HTTP handlers: parse → one service call → render.  No rule lives here."""

from __future__ import annotations

import base64
import io

import segno
from aiohttp import web

from nvrshare.relay.api import render
from nvrshare.relay.api.bodies import parse_matrix, query_limit
from nvrshare.relay.api.routing import Call, json_response, no_content
from nvrshare.relay.errors import InvalidRequest
from nvrshare.relay.services.models import ShareState
from nvrshare.relay.services.shares import RecipientKind, RecipientRef

# --- accounts ----------------------------------------------------------------


async def register(call: Call) -> web.StreamResponse:
    body = call.body
    account = await call.services.accounts.register(
        password=body["password"],
        email=body.get("email"),
        phone=body.get("phone"),
        name=body.get("name"),
        region=body.get("region"),
    )
    return json_response(render.account(account), status=201)


async def login(call: Call) -> web.StreamResponse:
    session = await call.services.accounts.login(
        login=call.body["login"], password=call.body["password"], source=call.source
    )
    return json_response(
        {
            "token": session.token,
            "token_type": "Bearer",
            "expires_at": session.expires_at,
            "account": render.account(session.account),
        },
        status=201,
    )


async def logout(call: Call) -> web.StreamResponse:
    assert call.token is not None
    await call.services.accounts.logout(call.token)
    return no_content()


async def me(call: Call) -> web.StreamResponse:
    return json_response(render.account(call.account))


def _qr_png(payload: str) -> bytes:
    out = io.BytesIO()
    segno.make(payload, error="m").save(out, kind="png", scale=6, border=2)
    return out.getvalue()


async def account_qr(call: Call) -> web.StreamResponse:
    payload, expires_at = call.services.accounts.qr_payload(call.account)
    png = base64.b64encode(_qr_png(payload)).decode("ascii")
    return json_response({"payload": payload, "expires_at": expires_at, "png_base64": png})


async def account_qr_png(call: Call) -> web.StreamResponse:
    payload, _expires_at = call.services.accounts.qr_payload(call.account)
    return web.Response(
        body=_qr_png(payload), content_type="image/png", headers={"Cache-Control": "no-store"}
    )


# --- devices -----------------------------------------------------------------


async def list_devices(call: Call) -> web.StreamResponse:
    page = await call.services.devices.list_owned(
        call.account, limit=query_limit(call.query("limit")), cursor=call.query("cursor")
    )
    return json_response(render.page(page, render.device))


async def add_device(call: Call) -> web.StreamResponse:
    device = await call.services.devices.bind(
        call.account,
        serial=call.body["serial"],
        verification_code=call.body["verification_code"],
        source=call.source,
    )
    return json_response(render.device(device), status=201)


async def get_device(call: Call) -> web.StreamResponse:
    device = await call.services.devices.get_owned(call.account, call.serial)
    return json_response(render.device(device))


async def rename_device(call: Call) -> web.StreamResponse:
    device = await call.services.devices.rename(call.account, call.serial, call.body["alias"])
    return json_response(render.device(device))


async def remove_device(call: Call) -> web.StreamResponse:
    await call.services.devices.remove(call.account, call.serial)
    return no_content()


async def device_audit(call: Call) -> web.StreamResponse:
    page = await call.services.devices.audit_trail(
        call.account, call.serial, limit=query_limit(call.query("limit")),
        cursor=call.query("cursor"),
    )  # fmt: skip
    return json_response(render.page(page, render.audit_entry))


async def issue_token(call: Call) -> web.StreamResponse:
    issued = await call.services.tokens.issue(call.account, call.serial)
    return json_response(render.issued_token(issued), status=201)


# --- shares: owner -------------------------------------------------------------


def _recipient(value: dict[str, object]) -> RecipientRef:
    if len(value) != 1:
        raise InvalidRequest(
            "recipient must have exactly one of: " + ", ".join(k.value for k in RecipientKind)
        )
    ((key, text),) = value.items()
    try:
        kind = RecipientKind(key)
    except ValueError:
        raise InvalidRequest(f"recipient: unknown field {str(key)[:32]!r}") from None
    if not isinstance(text, str) or len(text) > 512:
        raise InvalidRequest(f"recipient {kind.value} must be a string")
    return RecipientRef(kind=kind, value=text)


async def create_share(call: Call) -> web.StreamResponse:
    share = await call.services.shares.create(
        call.account,
        serial=call.serial,
        recipient=_recipient(call.body["recipient"]),
        permissions=parse_matrix(call.body["permissions"]),
        remark=call.body.get("remark"),
    )
    return json_response({"result": "shared", "share": render.owner_share(share)}, status=201)


async def device_shares(call: Call) -> web.StreamResponse:
    shares = await call.services.shares.device_shares(call.account, call.serial)
    return json_response(render.device_shares(shares))


async def revoke_several(call: Call) -> web.StreamResponse:
    ended = await call.services.shares.revoke_accounts(
        call.account, call.serial, call.body["account_ids"]
    )
    return json_response({"revoked": ended})


async def disable_sharing(call: Call) -> web.StreamResponse:
    ended = await call.services.shares.revoke_accounts(call.account, call.serial, None)
    return json_response({"revoked": ended})


async def my_shared_devices(call: Call) -> web.StreamResponse:
    page = await call.services.shares.list_for_owner(
        call.account, limit=query_limit(call.query("limit")), cursor=call.query("cursor")
    )
    return json_response(render.page(page, render.device_shares))


async def update_share(call: Call) -> web.StreamResponse:
    kwargs: dict[str, object] = {}
    if "permissions" in call.body:
        kwargs["permissions"] = parse_matrix(call.body["permissions"])
    if "remark" in call.body:
        kwargs["remark"] = call.body["remark"]
    share_id = call.path("share_id")
    shares = call.services.shares
    share = await shares.update(call.account, share_id, **kwargs)  # type: ignore[arg-type]
    return json_response(render.owner_share(share))


async def revoke_share(call: Call) -> web.StreamResponse:
    await call.services.shares.revoke(call.account, call.path("share_id"))
    return no_content()


async def share_history(call: Call) -> web.StreamResponse:
    page = await call.services.shares.history(
        call.account, limit=query_limit(call.query("limit")), cursor=call.query("cursor")
    )
    return json_response(render.page(page, render.history_entry))


async def delete_recipient(call: Call) -> web.StreamResponse:
    ended = await call.services.shares.delete_recipient(call.account, call.path("account_id"))
    return json_response({"revoked": ended})


# --- shares: recipient ---------------------------------------------------------


async def shared_with_me(call: Call) -> web.StreamResponse:
    state_text = call.query("state")
    try:
        state = ShareState(state_text) if state_text is not None else None
    except ValueError:
        raise InvalidRequest("state must be pending, accepted or rejected") from None
    page = await call.services.shares.list_received(
        call.account,
        state=state,
        limit=query_limit(call.query("limit")),
        cursor=call.query("cursor"),
    )
    return json_response(render.page(page, render.received_share))


async def pending_count(call: Call) -> web.StreamResponse:
    count = await call.services.shares.pending_count(call.account)
    return json_response({"count": count, "message": f"you have {count} new sharings"})


async def accept_share(call: Call) -> web.StreamResponse:
    await call.services.shares.accept(call.account, call.path("share_id"))
    return no_content()


async def reject_share(call: Call) -> web.StreamResponse:
    await call.services.shares.reject(call.account, call.path("share_id"))
    return no_content()


async def rename_received(call: Call) -> web.StreamResponse:
    await call.services.shares.rename_received(
        call.account, call.path("share_id"), call.body["alias"]
    )
    return no_content()


async def delete_received(call: Call) -> web.StreamResponse:
    await call.services.shares.delete_received(call.account, call.path("share_id"))
    return no_content()


async def health(call: Call) -> web.StreamResponse:
    return json_response({"status": "ok"})
