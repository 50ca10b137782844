"""`BrokerProvisioner` for Mosquitto's dynamic-security plugin.

Commands go as JSON to `$CONTROL/dynamic-security/v1` and answers come back
on `.../v1/response`; each batch carries correlation data so concurrent calls
never read each other's answers.  The admin connection is opened lazily and
reopened after a failure; a call that gets no answer within `timeout` raises
`BrokerUnavailable`.

Each device gets its own role (`device:<serial>`) because Mosquitto 2.0's
dynsec has no `%u`/`%c` substitution; the device client is bound to one client
id, so the broker itself refuses a device connecting under any other id.

Device names come from a claim, so they are hostile: a device username or
client id may never contain ':' (the serial alphabet has none; the relay's
own names, `relay:<id>` and `nvrshare:admin`, always do), may never be one of
`DynsecConfig.reserved` or the admin's names, and re-provisioning only ever
deletes an existing client that carries the device tag (textname + its one
`device:` role).  Anything else is `ProvisioningRefused`, nothing changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import aiomqtt

from nvrshare.relay.broker.credentials import BrokerCredential, TopicAcl, validate_name
from nvrshare.relay.broker.errors import BrokerUnavailable, ProvisioningError, ProvisioningRefused

__all__ = ["DynsecConfig", "DynsecProvisioner", "device_role_for", "role_for"]

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = CONTROL_TOPIC + "/response"
MAX_RESPONSE_SIZE = 256 * 1024
# Errors that mean "already in the state you asked for" when deleting.
_ABSENT = ("not found", "Client not found", "Role not found")
DEVICE_TEXT = "nvrshare device"
SERVICE_TEXT = "nvrshare service"
# Device accounts made before the `device:` role existed carried `acct:<serial>`.
_LEGACY_PREFIX = "acct:"


def role_for(username: str) -> str:
    """The role of a service account."""
    return f"acct:{validate_name(username, 'username')}"


def device_role_for(serial: str) -> str:
    """The role of a device account: the tag that says this relay made it for a device."""
    return f"device:{validate_name(serial, 'username')}"


@dataclass(frozen=True, kw_only=True, slots=True)
class DynsecConfig:
    """Where the broker is and the admin account allowed to manage dynsec."""

    host: str
    port: int
    admin: BrokerCredential
    timeout: float = 5.0
    tls_context: ssl.SSLContext | None = None
    # Names a device may never get (the relay's username and client id): a
    # device bound to the relay's client id could take over its MQTT session.
    reserved: frozenset[str] = frozenset()


def _acl_entries(acl: TopicAcl) -> list[dict[str, object]]:
    entries: list[dict[str, object]] = []
    for topic in acl.publish:
        entries.append({"acltype": "publishClientSend", "topic": topic, "allow": True})
    for topic in acl.subscribe:
        entries.append({"acltype": "subscribePattern", "topic": topic, "allow": True})
        entries.append({"acltype": "publishClientReceive", "topic": topic, "allow": True})
        entries.append({"acltype": "unsubscribePattern", "topic": topic, "allow": True})
    return entries


def _is_device(client: Mapping[str, object], serial: str) -> bool:
    """Whether an existing dynsec client is a device account this relay created."""
    roles = client.get("roles")
    names = (
        [r.get("rolename") for r in roles if isinstance(r, Mapping)]
        if isinstance(roles, list)
        else []
    )
    return (
        client.get("textname") == DEVICE_TEXT
        and client.get("clientid") == serial
        and names in ([device_role_for(serial)], [_LEGACY_PREFIX + serial])
        and not client.get("groups")
    )


class DynsecProvisioner:
    """Manage broker accounts through the dynsec control topic.

    Use as `async with DynsecProvisioner(config) as provisioner:`.
    """

    def __init__(self, config: DynsecConfig, logger: logging.Logger | None = None) -> None:
        self._config = config
        self._log = logger or logging.getLogger("nvrshare.relay.broker.dynsec")
        self._client: aiomqtt.Client | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[str, asyncio.Future[list[dict[str, object]]]] = {}
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._disconnect()

    # -- the BrokerProvisioner interface ---------------------------------------

    async def provision_device(self, credential: BrokerCredential, acl: TopicAcl) -> None:
        self._check_device_names(credential)
        existing = await self._get_client(credential.username)
        if existing is not None and not _is_device(existing, credential.username):
            self._log.error(
                "ALERT: refusing to replace broker client %r with a device account",
                credential.username,
            )
            raise ProvisioningRefused(
                f"broker username {credential.username!r} belongs to a non-device account"
            )
        await self._replace_account(
            credential, acl, text=DEVICE_TEXT, role=device_role_for(credential.username)
        )

    async def provision_service(self, credential: BrokerCredential, acl: TopicAcl) -> None:
        await self._replace_account(
            credential, acl, text=SERVICE_TEXT, role=role_for(credential.username)
        )

    async def remove_account(self, username: str) -> None:
        await self._run(
            [
                {"command": "deleteClient", "username": username},
                {"command": "deleteRole", "rolename": role_for(username)},
                {"command": "deleteRole", "rolename": device_role_for(username)},
            ],
            tolerate_absent=True,
        )

    async def set_password(self, username: str, password: str) -> None:
        validate_name(username, "username")
        await self._run(
            [{"command": "setClientPassword", "username": username, "password": password}]
        )

    async def list_clients(self) -> list[str]:
        """Usernames of every dynsec client (for tests and operators)."""
        responses = await self._run([{"command": "listClients", "verbose": False}])
        data = responses[0].get("data")
        clients = data.get("clients") if isinstance(data, Mapping) else None
        return [c for c in clients or () if isinstance(c, str)]

    # -- internals -------------------------------------------------------------

    def _check_device_names(self, credential: BrokerCredential) -> None:
        admin = self._config.admin
        reserved = self._config.reserved | {admin.username, admin.client_id}
        for name in (credential.username, credential.client_id):
            if ":" in name or name in reserved:
                self._log.error("ALERT: refusing device account named %r (reserved)", name)
                raise ProvisioningRefused(f"{name!r} cannot name a device account")

    async def _get_client(self, username: str) -> Mapping[str, object] | None:
        responses = await self._run(
            [{"command": "getClient", "username": username}], tolerate_absent=True
        )
        answer = responses[0]
        if answer.get("error"):
            return None
        data = answer.get("data")
        client = data.get("client") if isinstance(data, Mapping) else None
        if not isinstance(client, Mapping):
            # An answer we cannot read is not proof that the name is free.
            raise ProvisioningError("getClient", "unreadable answer")
        return client

    async def _replace_account(
        self, credential: BrokerCredential, acl: TopicAcl, *, text: str, role: str
    ) -> None:
        # Delete-then-create makes the call idempotent and drops any session
        # still using an old password (dynsec kicks deleted clients).
        await self.remove_account(credential.username)
        await self._run(
            [
                {"command": "createRole", "rolename": role, "acls": _acl_entries(acl)},
                {
                    "command": "createClient",
                    "username": credential.username,
                    "password": credential.password,
                    "clientid": credential.client_id,
                    "textname": text,
                    "roles": [{"rolename": role}],
                },
            ]
        )

    async def _run(
        self, commands: Sequence[dict[str, object]], *, tolerate_absent: bool = False
    ) -> list[dict[str, object]]:
        correlation = secrets.token_hex(8)
        batch = [{**cmd, "correlationData": f"{correlation}.{i}"} for i, cmd in enumerate(commands)]
        loop = asyncio.get_running_loop()
        futures = {}
        for cmd in batch:
            key = str(cmd["correlationData"])
            futures[key] = self._pending[key] = loop.create_future()
        try:
            client = await self._connected()
            try:
                await client.publish(CONTROL_TOPIC, json.dumps({"commands": batch}), qos=1)
                async with asyncio.timeout(self._config.timeout):
                    answers = [(await fut)[0] for fut in futures.values()]
            except BrokerUnavailable:
                await self._disconnect()
                raise
            except (aiomqtt.MqttError, TimeoutError) as exc:
                await self._disconnect()
                raise BrokerUnavailable(f"dynsec command failed: {exc or 'timeout'}") from exc
        finally:
            for key in futures:
                self._pending.pop(key, None)
        for cmd, answer in zip(batch, answers, strict=True):
            error = answer.get("error")
            if error and not (tolerate_absent and any(a in str(error) for a in _ABSENT)):
                raise ProvisioningError(str(cmd["command"]), str(error))
        return answers

    async def _connected(self) -> aiomqtt.Client:
        async with self._lock:
            if self._client is not None and self._reader is not None and not self._reader.done():
                return self._client
            await self._disconnect()
            admin = self._config.admin
            client = aiomqtt.Client(
                self._config.host,
                self._config.port,
                username=admin.username,
                password=admin.password,
                identifier=admin.client_id,
                protocol=aiomqtt.ProtocolVersion.V5,
                timeout=self._config.timeout,
                keepalive=30,
                tls_context=self._config.tls_context,
                logger=self._log,
            )
            try:
                await client.__aenter__()
                await client.subscribe(RESPONSE_TOPIC, qos=1)
            except aiomqtt.MqttError as exc:
                with contextlib.suppress(Exception):
                    await client.__aexit__(None, None, None)
                raise BrokerUnavailable(f"cannot reach the broker's dynsec control: {exc}") from exc
            self._client = client
            self._reader = asyncio.create_task(self._read(client), name="dynsec.responses")
            return client

    async def _read(self, client: aiomqtt.Client) -> None:
        try:
            async for message in client.messages:
                self._dispatch(message.payload)
        except aiomqtt.MqttError as exc:
            self._log.warning("dynsec control connection lost: %s", exc)
        finally:
            # Wake every caller still waiting: their answers will never come.
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(BrokerUnavailable("dynsec control connection lost"))

    def _dispatch(self, payload: object) -> None:
        if not isinstance(payload, bytes | bytearray) or len(payload) > MAX_RESPONSE_SIZE:
            return
        try:
            body = json.loads(payload)
        except ValueError:
            self._log.warning("dropping a malformed dynsec response")
            return
        responses = body.get("responses") if isinstance(body, dict) else None
        for response in responses if isinstance(responses, list) else ():
            if not isinstance(response, dict):
                continue
            future = self._pending.get(str(response.get("correlationData")))
            if future is not None and not future.done():
                future.set_result([response])

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError, RuntimeError):
                await client.__aexit__(None, None, None)
