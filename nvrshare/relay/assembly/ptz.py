"""`POST /api/v1/devices/{serial}/ptz`: a PTZ order, forwarded to the device over MQTT.

The relay does not decide: it issues the caller a share token (exactly as
`POST .../token` would, so an account without a relation to the device is
refused here), wraps it into a `PtzCommand` on the device's `down/ptz` topic,
and waits (bounded) for the agent's `PtzResult` on `up/session`.  The agent
checks the token and its own synced grant set and answers; a refusal comes
back as 403 with the agent's typed reason as the error code (e.g.
`permission_denied`), no answer in time as 504 `device_timeout`.

Body: `{"channel": N, "action": "continuous_move"|"stop"|"goto_preset"|
"set_preset", "pan"/"tilt"/"zoom": -1..1, "preset": N}`; unknown keys refused.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
from collections.abc import Callable
from typing import Any

from aiohttp import web

from nvrshare.protocol.codec import Message, encode
from nvrshare.protocol.errors import ProtocolError
from nvrshare.protocol.messages import AlarmEvent, PtzAction, PtzCommand, PtzResult
from nvrshare.protocol.tokens import token_from_text
from nvrshare.protocol.topics import TopicKind
from nvrshare.protocol.validation import is_valid_serial
from nvrshare.relay.api.app import OPENAPI_DOCUMENT, SERVICES
from nvrshare.relay.api.bodies import decode_json
from nvrshare.relay.api.openapi import ERROR_RESPONSE, add_operation
from nvrshare.relay.errors import (
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RelayError,
    Unauthorized,
)
from nvrshare.relay.registry import Registry

__all__ = ["PTZ_OPERATION", "PTZ_PATH", "DeviceTimeout", "PtzGateway"]

PTZ_PATH = "/api/v1/devices/{serial}/ptz"
MAX_BODY = 1024
MAX_PENDING = 1024  # PTZ orders waiting for their device at once, relay-wide
_BODY_KEYS = frozenset({"channel", "action", "pan", "tilt", "zoom", "preset"})


_SPEED = {"type": "number", "minimum": -1, "maximum": 1, "default": 0}
# How the route reads in /api/openapi.json; keep it in step with `parse_command`.
PTZ_OPERATION: dict[str, Any] = {
    "operationId": "ptz_command",
    "summary": "move a PTZ camera: the device checks your token and its own grants",
    "tags": ["devices"],
    "parameters": [
        {"name": "serial", "in": "path", "required": True, "schema": {"type": "string"}}
    ],
    "security": [{"bearer": []}],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["action", "channel"],
                    "maxProperties": len(_BODY_KEYS),
                    "properties": {
                        "channel": {"type": "integer", "minimum": 1, "maximum": 512},
                        "action": {"enum": [a.value for a in PtzAction]},
                        "pan": _SPEED,
                        "tilt": _SPEED,
                        "zoom": _SPEED,
                        "preset": {"type": "integer", "minimum": 1, "maximum": 1024},
                    },
                }
            }
        },
    },
    "responses": {
        "200": {
            "description": "the device carried out the order",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["action", "ok"],
                        "properties": {
                            "ok": {"const": True},
                            "action": {"enum": [a.value for a in PtzAction]},
                        },
                    }
                }
            },
        },
        "default": {
            **ERROR_RESPONSE,
            "description": "an error: 403 with the device's reason as the code, "
            "504 device_timeout, 503 device_unavailable, 413 over 1 KiB",
        },
    },
}


class DeviceTimeout(RelayError):
    code = "device_timeout"
    status = 504


class DeviceUnavailable(RelayError):
    code = "device_unavailable"
    status = 503


def _number(body: dict[str, Any], key: str) -> float:
    value = body.get(key, 0.0)
    if type(value) not in (int, float) or not math.isfinite(value) or not -1 <= value <= 1:
        raise InvalidRequest(f"{key} must be a number in [-1, 1]")
    return float(value)


def parse_command(body: object, token: bytes) -> PtzCommand:
    """The `PtzCommand` a request body asks for; `InvalidRequest` if it is malformed."""
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    unknown = sorted(set(body) - _BODY_KEYS)
    if unknown:
        raise InvalidRequest(f"unknown field {unknown[0]!r}")
    channel, preset = body.get("channel"), body.get("preset")
    if type(channel) is not int or not 1 <= channel <= 512:
        raise InvalidRequest("channel must be an integer in 1..512")
    if preset is not None and (type(preset) is not int or not 1 <= preset <= 1024):
        raise InvalidRequest("preset must be an integer in 1..1024")
    actions = {a.value: a for a in PtzAction}
    action = actions.get(body["action"]) if isinstance(body.get("action"), str) else None
    if action is None:
        raise InvalidRequest(f"action must be one of {', '.join(actions)}")
    try:
        return PtzCommand(
            request_id=secrets.token_bytes(16),
            token=token,
            channel=channel,
            action=action,
            pan=_number(body, "pan"),
            tilt=_number(body, "tilt"),
            zoom=_number(body, "zoom"),
            preset=preset,
        )
    except ProtocolError as exc:
        raise InvalidRequest(str(exc)) from None


class PtzGateway:
    """The PTZ endpoint and the uplink handler that receives its answers.

    `registry` returns the running registry (None while the device plane is
    down).  Pass the gateway as the device plane's `uplink`, and `install` it
    on the API application before the relay starts serving.
    """

    def __init__(
        self,
        registry: Callable[[], Registry | None],
        *,
        timeout: float = 5.0,
        logger: logging.Logger | None = None,
    ) -> None:
        self._registry = registry
        self._timeout = timeout
        self._log = logger or logging.getLogger("nvrshare.relay.ptz")
        self._pending: dict[bytes, tuple[str, asyncio.Future[PtzResult]]] = {}

    # -- uplink (called by the registry for up/alarm and up/session) -------------

    async def on_alarm(self, serial: str, event: AlarmEvent) -> None:
        del serial, event  # alarms reach recipients through their alarm sessions

    async def on_session_message(self, serial: str, message: Message) -> None:
        if not isinstance(message, PtzResult):
            return
        waiting = self._pending.get(message.request_id)
        # Only the device the order went to can answer it.
        if waiting is not None and waiting[0] == serial and not waiting[1].done():
            waiting[1].set_result(message)

    # -- HTTP ---------------------------------------------------------------------

    def install(self, _relay: Any, app: web.Application) -> None:
        """A `Relay` app hook: serves the route and describes it in the OpenAPI document."""
        app.router.add_post(PTZ_PATH, self._handle)
        add_operation(app[OPENAPI_DOCUMENT], "POST", PTZ_PATH, PTZ_OPERATION)

    async def _handle(self, request: web.Request) -> web.Response:
        services = request.app[SERVICES]
        scheme, _, bearer = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not bearer.strip():
            raise Unauthorized(
                "missing bearer token: log in and send Authorization: Bearer <token>"
            )
        account = await services.accounts.authenticate(bearer.strip())
        serial = request.match_info["serial"]
        if not is_valid_serial(serial):
            raise NotFound("no such device")
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise PayloadTooLarge(f"the body exceeds {MAX_BODY} bytes")
        if request.content_type != "application/json":
            raise InvalidRequest("send the body as application/json")
        raw = await request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            raise PayloadTooLarge(f"the body exceeds {MAX_BODY} bytes")
        body = decode_json(raw)
        issued = await services.tokens.issue(account, serial)  # no relation → 404/403 here
        command = parse_command(body, token_from_text(issued.token))
        result = await self.send(serial, command)
        if not result.ok:
            raise Forbidden(f"the device refused: {result.reason}", code=result.reason or "refused")
        return web.json_response({"ok": True, "action": command.action.value})

    async def send(self, serial: str, command: PtzCommand) -> PtzResult:
        """Publish `command` to the device and wait for its result (bounded)."""
        registry = self._registry()
        if registry is None:
            raise DeviceUnavailable("the device plane is not running", retry_after=5)
        if len(self._pending) >= MAX_PENDING:
            raise DeviceUnavailable("too many PTZ orders in flight", retry_after=1)
        future: asyncio.Future[PtzResult] = asyncio.get_running_loop().create_future()
        self._pending[command.request_id] = (serial, future)
        try:
            try:
                await registry.publish(serial, TopicKind.DOWN_PTZ, encode(command), retain=False)
            except Exception as exc:  # the MQTT client is foreign code: any failure is "busy"
                self._log.warning("PTZ order for %s not delivered: %r", serial, exc)
                raise DeviceUnavailable("the device could not be reached", retry_after=5) from None
            try:
                async with asyncio.timeout(self._timeout):
                    return await future
            except TimeoutError:
                raise DeviceTimeout("the device did not answer in time") from None
        finally:
            del self._pending[command.request_id]
