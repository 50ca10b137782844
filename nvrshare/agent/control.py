"""The agent's MQTT control channel: presence, registration, heartbeat, downlink.

One connection at a time, forever: connect (client id = serial, last will =
retained `DeviceState(online=False)`), subscribe to `down/#`, publish the
retained online state and a signed registration, then heartbeat and dispatch
what arrives.  Any connection failure is retried after a capped, full-jitter
backoff; the state and registration are published again after *every*
reconnect, because a broker restart may have lost retained messages.

Downlink dispatch: `down/grants` → `GrantStore.apply`; `down/control` →
registration results and errors (logged); `down/session` → `SessionOffer`
and `down/ptz` → `PtzCommand`, both handed to a `DownlinkHandler` (the
session and PTZ code plugs in there) in their own tasks, so a slow session
never stalls the control loop.  Every payload is hostile: bad ones are
logged and dropped, and the loop keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import aiomqtt

from nvrshare.agent.backoff import Backoff
from nvrshare.agent.config import AgentConfig, BrokerEndpoint, tls_context
from nvrshare.agent.errors import GrantRejected
from nvrshare.agent.grants import GrantStore
from nvrshare.protocol.codec import Message, decode, encode
from nvrshare.protocol.errors import ProtocolError
from nvrshare.protocol.messages import (
    DeviceState,
    ErrorMessage,
    Heartbeat,
    PtzCommand,
    PtzResult,
    RegistrationResult,
    SessionOffer,
    SessionRefuse,
)
from nvrshare.protocol.reasons import RefusalReason
from nvrshare.protocol.topics import (
    TopicKind,
    device_subscription,
    device_topic,
    parse_device_topic,
)
from nvrshare.protocol.wire import WireLimits

__all__ = ["ControlChannel", "ControlStatus", "DownlinkHandler", "RefusingDownlink", "Uplink"]

MAX_DOWN_PAYLOAD = 512 * 1024
DOWN_LIMITS = WireLimits(max_size=MAX_DOWN_PAYLOAD, max_string=8192, max_items=512, max_depth=6)
MAX_HANDLER_TASKS = 64
REGISTRATION_RETRY_INITIAL = 2.0
REGISTRATION_RETRY_MAX = 120.0
# paho leaves Nagle on: a PUBACK still waiting for the broker's delayed ACK
# would hold back our next small packet by up to 40 ms.
MQTT_SOCKET_OPTIONS = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)


class Uplink(Protocol):
    """Sends a message on one of this device's `up/*` topics."""

    async def send(self, kind: TopicKind, message: Message) -> None: ...


class DownlinkHandler(Protocol):
    """Where session offers and PTZ commands go (the session code implements it)."""

    async def on_session_offer(self, offer: SessionOffer, uplink: Uplink) -> None: ...

    async def on_ptz_command(self, command: PtzCommand, uplink: Uplink) -> None: ...


class RefusingDownlink:
    """The handler until sessions are wired in: refuses everything, explicitly."""

    async def on_session_offer(self, offer: SessionOffer, uplink: Uplink) -> None:
        refusal = SessionRefuse(session_id=offer.session_id, reason=RefusalReason.INTERNAL)
        await uplink.send(TopicKind.UP_SESSION, refusal)

    async def on_ptz_command(self, command: PtzCommand, uplink: Uplink) -> None:
        result = PtzResult(request_id=command.request_id, ok=False, reason="not supported")
        await uplink.send(TopicKind.UP_SESSION, result)


@dataclass(slots=True)
class ControlStatus:
    """Counters and events for operators and tests."""

    connected: asyncio.Event
    registered: asyncio.Event
    connects: int = 0
    registrations_accepted: int = 0
    registration_refused: str | None = None
    dropped: int = 0
    grant_rejections: int = 0


Registration = Callable[[], Awaitable[bytes]]


class ControlChannel:
    """Runs the control connection; `run()` only returns by cancellation."""

    def __init__(
        self,
        config: AgentConfig,
        broker: BrokerEndpoint,
        *,
        grants: GrantStore,
        registration: Registration,
        address: tuple[str, int],
        handler: DownlinkHandler | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self._config = config
        self._broker = broker
        # Built once: loading the CA file is blocking I/O, not for every reconnect.
        self._tls = tls_context(config) if broker.tls else None
        self._grants = grants
        self._registration = registration
        self._address = address
        self._handler: DownlinkHandler = handler or RefusingDownlink()
        self._log = logger or logging.getLogger(f"nvrshare.agent[{config.serial}].control")
        self._client: aiomqtt.Client | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._answered = asyncio.Event()
        self._grant_queue: list[bytes] = []
        # Reset only once the relay accepted us: a broker that accepts and then
        # drops the connection (say, another client taking over our client id)
        # must not turn into a tight reconnect loop.
        self._backoff = Backoff(config.backoff)
        self.status = ControlStatus(connected=asyncio.Event(), registered=asyncio.Event())

    # -- Uplink ------------------------------------------------------------------

    async def send(self, kind: TopicKind, message: Message) -> None:
        """Publish `message` on this device's `kind` topic (QoS 1)."""
        client = self._client
        if client is None:
            raise aiomqtt.MqttError("not connected to the relay broker")
        await client.publish(self._topic(kind), encode(message), qos=1)

    # -- the loop ------------------------------------------------------------------

    async def run(self) -> None:
        backoff = self._backoff
        try:
            while True:
                try:
                    await self._connection()
                except aiomqtt.MqttError as exc:
                    self._log.warning("relay broker connection failed: %s", exc)
                except Exception:
                    # A bug in one connection must not end the device's only
                    # way home: log it, back off, connect again.
                    self._log.exception("control connection failed unexpectedly")
                delay = backoff.next_delay()
                self._log.info("reconnecting in %.2fs", delay)
                await asyncio.sleep(delay)
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    def _topic(self, kind: TopicKind) -> str:
        return device_topic(self._config.serial, kind, root=self._config.topic_root)

    def _state(self, online: bool) -> bytes:
        ip, port = self._address
        state = DeviceState(
            serial=self._config.serial, online=online, timestamp=int(time.time()), ip=ip, port=port
        )
        return encode(state)

    def _client_for(self) -> aiomqtt.Client:
        broker = self._broker
        return aiomqtt.Client(
            broker.host,
            broker.port,
            username=broker.username,
            password=broker.password,
            identifier=self._config.serial,
            protocol=aiomqtt.ProtocolVersion.V5,
            keepalive=self._config.keepalive,
            will=aiomqtt.Will(self._topic(TopicKind.STATE), self._state(False), qos=1, retain=True),
            timeout=10,
            socket_options=MQTT_SOCKET_OPTIONS,
            tls_context=self._tls,
            logger=self._log,
        )

    async def _connection(self) -> None:
        client = self._client_for()
        async with client:
            self._client = client
            try:
                self.status.connects += 1
                sub = device_subscription(self._config.serial, root=self._config.topic_root)
                await client.subscribe(sub, qos=1)
                await client.publish(
                    self._topic(TopicKind.STATE), self._state(True), qos=1, retain=True
                )
                self.status.connected.set()
                self._log.info("connected to the relay broker")
                serial = self._config.serial
                helpers = [
                    asyncio.create_task(self._heartbeat(client), name=f"agent[{serial}].heartbeat"),
                    asyncio.create_task(self._register(client), name=f"agent[{serial}].register"),
                ]
                try:
                    await self._receive(client)
                finally:
                    for helper in helpers:
                        helper.cancel()
                    for helper in helpers:
                        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                            await helper
            finally:
                self._client = None
                self.status.connected.clear()
                self.status.registered.clear()

    async def _register(self, client: aiomqtt.Client) -> None:
        # A registration published while no relay is subscribed (the relay
        # restarting with the broker) is lost: send it again until answered,
        # backing off so a crowd of devices does not hammer a recovering relay.
        self._answered.clear()
        window = REGISTRATION_RETRY_INITIAL
        while True:
            await client.publish(
                self._topic(TopicKind.UP_REGISTER), await self._registration(), qos=1
            )
            try:
                async with asyncio.timeout(random.uniform(window / 2, window)):  # noqa: S311
                    await self._answered.wait()
                return
            except TimeoutError:
                window = min(window * 2, REGISTRATION_RETRY_MAX)
                self._log.info("no answer to the registration yet; sending it again")

    async def _heartbeat(self, client: aiomqtt.Client) -> None:
        # A failed publish ends the heartbeat; the receive loop sees the broken
        # connection too and the whole connection is retried.
        topic = self._topic(TopicKind.UP_HEARTBEAT)
        while True:
            await asyncio.sleep(self._config.heartbeat_interval)
            beat = Heartbeat(serial=self._config.serial, timestamp=int(time.time()))
            await client.publish(topic, encode(beat), qos=0)

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            try:
                self._dispatch(str(message.topic), message.payload)
            except ProtocolError as exc:
                self._drop(str(message.topic), str(exc))
            # Grant sets are applied here, in order, one at a time: the
            # fsync runs in a thread so the loop keeps serving sessions.
            while self._grant_queue:
                await self._apply_grants(self._grant_queue.pop(0))

    def _drop(self, topic: str, why: str) -> None:
        self.status.dropped += 1
        self._log.warning("dropped message on %.120r: %s", topic, why)

    def _dispatch(self, topic: str, payload: object) -> None:
        serial, kind = parse_device_topic(topic, root=self._config.topic_root)
        if serial != self._config.serial:
            raise ProtocolError(f"message for another device ({serial})")
        if not isinstance(payload, bytes | bytearray) or len(payload) > MAX_DOWN_PAYLOAD:
            raise ProtocolError("payload missing or too large")
        data = bytes(payload)
        if kind is TopicKind.DOWN_GRANTS:
            if data:
                self._grant_queue.append(data)
        elif kind is TopicKind.DOWN_CONTROL:
            self._control(
                decode(data, limits=DOWN_LIMITS, accept=(RegistrationResult, ErrorMessage))
            )
        elif kind is TopicKind.DOWN_SESSION:
            offer = decode(data, limits=DOWN_LIMITS, accept=(SessionOffer,))
            assert isinstance(offer, SessionOffer)
            if offer.request.device_serial != self._config.serial:
                raise ProtocolError("session offer for another device")
            self._spawn(self._handler.on_session_offer(offer, self), "session-offer")
        elif kind is TopicKind.DOWN_PTZ:
            command = decode(data, limits=DOWN_LIMITS, accept=(PtzCommand,))
            assert isinstance(command, PtzCommand)
            self._spawn(self._handler.on_ptz_command(command, self), "ptz")
        else:
            raise ProtocolError(f"unexpected topic kind {kind.value}")

    async def _apply_grants(self, data: bytes) -> None:
        try:
            changed = await self._grants.apply_async(data)
        except GrantRejected as exc:
            self.status.grant_rejections += 1
            self._log.warning(
                "grant set refused (%s); keeping version %d", exc, self._grants.version
            )
            return
        if changed:
            self._log.info("grant set version %d in force", self._grants.version)

    def _control(self, message: Message) -> None:
        if isinstance(message, RegistrationResult):
            if message.serial != self._config.serial:
                raise ProtocolError("registration result for another device")
            self._answered.set()
            if message.accepted:
                self._backoff.reset()
                self.status.registrations_accepted += 1
                self.status.registration_refused = None
                self.status.registered.set()
            else:
                self.status.registration_refused = message.reason
                self._log.error("the relay refused this device's registration: %s", message.reason)
        else:
            assert isinstance(message, ErrorMessage)
            self._log.warning("relay error %s: %s", message.code, message.message)

    def _spawn(self, work: Awaitable[None], name: str) -> None:
        if len(self._tasks) >= MAX_HANDLER_TASKS:
            self._log.warning("too many %s handlers running; dropping one", name)
            with contextlib.suppress(AttributeError):
                work.close()  # type: ignore[attr-defined]
            return
        task = asyncio.ensure_future(self._guard(work, name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guard(self, work: Awaitable[None], name: str) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            self._log.exception("%s handler failed", name)
