"""The relay's device registry: registrations and presence in, grant sets out.

`async with Registry(config, directory=..., keys=..., events=...) as registry:`
connects to the broker with the relay's credential and consumes, through an
MQTT 5 shared subscription (so several relay processes split the load), what
devices publish:

- `up/register`: a `DeviceRegistration` signed by the device key it carries
  (`codec.decode_registration`), fresh (±5 min) and for the serial of its
  topic, goes to `DeviceService.apply_registration`, which pins the key on
  first sight and refuses another key or a domain held by another serial.
  The answer goes back as a `RegistrationResult` on `down/control`; a key
  mismatch is logged as an ALERT.  Accepted: the grant set is republished
  unless the broker is known to retain the current one (`GrantPublisher.ensure`).
- `state` (retained; the device's last will sets it offline) and
  `up/heartbeat`: presence and last-seen.
- `up/alarm`, `up/session`: handed to an optional `UplinkHandler`.

Anything malformed is logged and dropped; the loop never dies of a payload.
Work is spread over `workers` queues keyed by serial, so one device's
messages are handled in order while devices proceed in parallel.  A worker
takes what waits in its queue (up to `batch_size`) at once and applies the
registrations and presence updates among it in one transaction each, when
the directory offers that (`apply_registrations`, `set_presence`); each
device still gets its own verdict and its messages keep their order.  A lost
broker connection is retried with capped, jittered backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import ssl
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, Self

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from nvrshare.protocol.codec import Message, decode, decode_registration, encode
from nvrshare.protocol.errors import ProtocolError
from nvrshare.protocol.messages import (
    AlarmEvent,
    DeviceRegistration,
    DeviceState,
    Heartbeat,
    PtzResult,
    RegistrationResult,
    SessionAccept,
    SessionClose,
    SessionOffer,
    SessionRefuse,
)
from nvrshare.protocol.topics import (
    DEFAULT_ROOT,
    TopicKind,
    device_topic,
    parse_device_topic,
    relay_subscriptions,
)
from nvrshare.protocol.wire import WireLimits
from nvrshare.relay.registry.batch import Batch, Presence, merged_presence
from nvrshare.relay.registry.grant_publisher import GrantPublisher, raise_if_cancelling
from nvrshare.relay.registry.interfaces import DeviceDirectory, EventSource, RelayKeys

__all__ = ["Registry", "RegistryConfig", "UplinkHandler"]

MAX_PAYLOAD = 64 * 1024
UP_LIMITS = WireLimits(max_size=MAX_PAYLOAD, max_string=4096, max_items=512, max_depth=6)
REGISTRATION_MAX_SKEW = 300
STALE = "stale registration"
MAX_TRACKED_DEVICES = 1_000_000
_UPLINK_SESSION = (SessionAccept, SessionRefuse, SessionClose, PtzResult)
# paho leaves Nagle on: an answer waiting behind a delayed ACK costs up to 40 ms.
MQTT_SOCKET_OPTIONS = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
# The grant-set mirror: retained sets as the broker has them, never our own echo.
MIRROR_OPTIONS = SubscribeOptions(qos=0, noLocal=True, retainAsPublished=True)


class UplinkHandler(Protocol):
    """Receives what devices send that the registry itself does not handle."""

    async def on_alarm(self, serial: str, event: AlarmEvent) -> None: ...

    async def on_session_message(self, serial: str, message: Message) -> None: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class RegistryConfig:
    """The broker and the relay's account there; `share_group` names the relays' group.

    workers/queue_size: per-serial ordered work queues and their bound (a full
    queue drops, and counts, the message); batch_size: at most this many
    waiting messages handled together; last_seen_interval: at most one "last
    seen" write per device per this many seconds from heartbeats, states and
    unchanged re-registrations of a device already online.
    """

    host: str
    port: int
    username: str | None
    password: str | None = field(repr=False)
    client_id: str
    topic_root: str = DEFAULT_ROOT
    share_group: str = "relay"
    keepalive: int = 30
    workers: int = 8
    grant_workers: int = 4
    queue_size: int = 2000
    batch_size: int = 100
    reconnect_max: float = 10.0
    last_seen_interval: float = 60.0
    tls_context: ssl.SSLContext | None = None


@dataclass(slots=True)
class RegistryStats:
    registrations: int = 0
    refused: int = 0
    dropped: int = 0
    state_updates: int = 0
    batches: int = 0


class Registry:
    """See the module docstring."""

    def __init__(
        self,
        config: RegistryConfig,
        *,
        directory: DeviceDirectory,
        keys: RelayKeys,
        events: EventSource | None = None,
        uplink: UplinkHandler | None = None,
        clock: Callable[[], float] = time.time,
        logger: logging.Logger | None = None,
    ) -> None:
        self._config = config
        self._directory = directory
        self._events = events
        self._uplink = uplink
        self._clock = clock
        self._log = logger or logging.getLogger("nvrshare.relay.registry")
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._queues = [
            asyncio.Queue[tuple[str, TopicKind, bytes]](config.queue_size)
            for _ in range(config.workers)
        ]
        self.grants = GrantPublisher(directory, keys, self.publish, clock=clock, logger=self._log)
        self.stats = RegistryStats()
        self._last_seen_written: dict[str, float] = {}
        self._runner: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._runner = asyncio.create_task(self._run(), name="relay.registry")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner

    async def wait_connected(self) -> None:
        """Wait until the registry is subscribed (for start-up ordering and tests)."""
        await self._connected.wait()

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for index, queue in enumerate(self._queues):
                group.create_task(self._work(queue), name=f"relay.registry.worker[{index}]")
            for index in range(self._config.grant_workers):
                group.create_task(self.grants.run(), name=f"relay.registry.grants[{index}]")
            if self._events is not None:
                group.create_task(self.grants.watch(self._events), name="relay.registry.events")
            group.create_task(self._consume_forever(), name="relay.registry.mqtt")

    # -- outbound ------------------------------------------------------------------

    async def publish(self, serial: str, kind: TopicKind, payload: bytes, retain: bool) -> None:
        """Publish to a device's down topic (QoS 1); raises `aiomqtt.MqttError` if offline."""
        client = self._client
        if client is None:
            raise aiomqtt.MqttError("the registry is not connected to the broker")
        topic = device_topic(serial, kind, root=self._config.topic_root)
        await client.publish(topic, payload, qos=1, retain=retain)

    async def send(self, serial: str, kind: TopicKind, message: Message) -> None:
        """Encode and publish `message` to a device (QoS 1, not retained)."""
        await self.publish(serial, kind, encode(message), False)

    async def publish_offer(self, offer: SessionOffer) -> None:
        """The data plane's `OfferPublisher`: deliver `offer` to its device.

        The MQTT 5 message expiry matches the offer's, so a device that
        reconnects late never receives a stale offer from the broker.
        Raises `aiomqtt.MqttError` when the broker is unreachable.
        """
        client = self._client
        if client is None:
            raise aiomqtt.MqttError("the registry is not connected to the broker")
        ttl = max(1, int(offer.expires_at - self._clock()))
        properties = Properties(PacketTypes.PUBLISH)
        properties.MessageExpiryInterval = ttl
        topic = device_topic(
            offer.request.device_serial, TopicKind.DOWN_SESSION, root=self._config.topic_root
        )
        await client.publish(topic, encode(offer), qos=1, properties=properties)

    # -- inbound -------------------------------------------------------------------

    async def _consume_forever(self) -> None:
        attempt = 0
        config = self._config
        while True:
            client = aiomqtt.Client(
                config.host,
                config.port,
                username=config.username,
                password=config.password,
                identifier=config.client_id,
                protocol=aiomqtt.ProtocolVersion.V5,
                keepalive=config.keepalive,
                timeout=10,
                socket_options=MQTT_SOCKET_OPTIONS,
                tls_context=config.tls_context,
                logger=self._log,
            )
            try:
                async with client:
                    self.grants.broker_connected()
                    # First the mirror: the broker sends every retained grant
                    # set before anything of the later subscriptions, so the
                    # mirror is complete when the first registration is handled.
                    mirror = f"{config.topic_root}/dev/+/{TopicKind.DOWN_GRANTS.value}"
                    await client.subscribe(mirror, options=MIRROR_OPTIONS)
                    for topic in relay_subscriptions(config.share_group, root=config.topic_root):
                        await client.subscribe(topic, qos=1)
                    self._client = client
                    self._connected.set()
                    attempt = 0
                    self._log.info("registry consuming device topics on %s", config.host)
                    async for message in client.messages:
                        self._enqueue(str(message.topic), message.payload, message.retain)
            except aiomqtt.MqttError as exc:
                self._log.warning("registry lost the broker: %s", exc)
            finally:
                self._client = None
                self._connected.clear()
            window = min(config.reconnect_max, 0.2 * 2**attempt)
            attempt = min(attempt + 1, 16)
            await asyncio.sleep(random.uniform(0, window))  # noqa: S311 - jitter

    def _enqueue(self, topic: str, payload: object, retain: bool = False) -> None:
        try:
            serial, kind = parse_device_topic(topic, root=self._config.topic_root)
        except ProtocolError as exc:
            self._drop(topic, str(exc))
            return
        if kind is TopicKind.DOWN_GRANTS:
            # The mirror; a live copy is a relay's retained publish as well.
            if retain and isinstance(payload, bytes | bytearray) and len(payload) <= MAX_PAYLOAD:
                self.grants.note_retained(serial, bytes(payload))
            return
        if kind is TopicKind.STATE and payload in (b"", bytearray()):
            return  # a cleared retained state
        if not isinstance(payload, bytes | bytearray) or len(payload) > MAX_PAYLOAD:
            self._drop(topic, "payload missing or too large")
            return
        queue = self._queues[zlib.crc32(serial.encode()) % len(self._queues)]
        try:
            queue.put_nowait((serial, kind, bytes(payload)))
        except asyncio.QueueFull:
            self._drop(topic, "registry overloaded")

    def _drop(self, topic: str, why: str) -> None:
        self.stats.dropped += 1
        self._log.warning("dropped message on %.120r: %s", topic, why)

    async def _work(self, queue: asyncio.Queue[tuple[str, TopicKind, bytes]]) -> None:
        limit = max(1, self._config.batch_size)
        while True:
            raise_if_cancelling()
            chunk = [await queue.get()]
            while len(chunk) < limit and not queue.empty():
                chunk.append(queue.get_nowait())
            await self._handle_chunk(chunk)

    async def _handle_chunk(self, chunk: list[tuple[str, TopicKind, bytes]]) -> None:
        """Handle messages in order, registrations and presence batched (see `Batch`)."""
        batch = Batch()
        for serial, kind, payload in chunk:
            try:
                now = self._clock()
                if kind is TopicKind.UP_REGISTER:
                    registration = self._registration(serial, payload)
                    if serial in batch.registrations:
                        batch = await self._flush(batch)
                    if registration.is_fresh(now, max_skew=REGISTRATION_MAX_SKEW):
                        batch.register(registration, now)
                        continue
                    if serial in batch.serials:
                        batch = await self._flush(batch)
                    await self._answer(serial, accepted=False, reason=STALE, version=0)
                elif kind is TopicKind.STATE:
                    state = decode(payload, limits=UP_LIMITS, accept=(DeviceState,))
                    assert isinstance(state, DeviceState)
                    if state.serial != serial:
                        raise _mismatch(serial, state.serial)
                    self.stats.state_updates += 1
                    batch.presence(serial, state.online, now)
                elif kind is TopicKind.UP_HEARTBEAT:
                    if self._heartbeat(serial, payload, now):
                        batch.presence(serial, True, now)
                else:
                    if serial in batch.serials:
                        batch = await self._flush(batch)
                    await self._handle(serial, kind, payload)
            except ProtocolError as exc:
                self._drop(f"{serial}/{kind.value}", f"bad payload: {exc}")
            except asyncio.CancelledError:
                raise
            except Exception:
                # A store outage or a bug must not stop the worker: log, move on.
                self.stats.dropped += 1
                self._log.exception("failed to handle %s from %s", kind.value, serial)
        await self._flush(batch)

    def _registration(self, serial: str, payload: bytes) -> DeviceRegistration:
        registration, _key_id = decode_registration(payload, limits=UP_LIMITS)
        if registration.serial != serial:
            raise _mismatch(serial, registration.serial)
        return registration

    def _heartbeat(self, serial: str, payload: bytes, now: float) -> bool:
        """Whether this heartbeat is due to refresh "last seen"."""
        beat = decode(payload, limits=UP_LIMITS, accept=(Heartbeat,))
        assert isinstance(beat, Heartbeat)
        if beat.serial != serial:
            raise _mismatch(serial, beat.serial)
        # Presence itself comes from the retained state and the will; a
        # heartbeat only refreshes "last seen", so one write a while is plenty.
        if now - self._last_seen_written.get(serial, float("-inf")) < (
            self._config.last_seen_interval
        ):
            return False
        if len(self._last_seen_written) >= MAX_TRACKED_DEVICES:
            self._last_seen_written.clear()
        self._last_seen_written[serial] = now
        return True

    async def _handle(self, serial: str, kind: TopicKind, payload: bytes) -> None:
        """A message that is not batched: alarms and session messages."""
        if kind is TopicKind.UP_ALARM:
            alarm = decode(payload, limits=UP_LIMITS, accept=(AlarmEvent,))
            assert isinstance(alarm, AlarmEvent)
            if alarm.device_serial != serial:
                raise _mismatch(serial, alarm.device_serial)
            if self._uplink is not None:
                await self._uplink.on_alarm(serial, alarm)
        elif kind is TopicKind.UP_SESSION:
            message = decode(payload, limits=UP_LIMITS, accept=_UPLINK_SESSION)
            if self._uplink is not None:
                await self._uplink.on_session_message(serial, message)
        else:
            self._drop(f"{serial}/{kind.value}", "devices do not publish here")

    async def _flush(self, batch: Batch) -> Batch:
        """Apply `batch` (registrations, then presence); answer each device; a fresh batch."""
        if not batch.serials:
            return batch
        self.stats.batches += 1
        accepted: set[str] = set()
        try:
            if batch.registrations:
                accepted = await self._apply_registrations(batch)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A store outage must not stop the worker; the devices send again.
            self.stats.dropped += len(batch.registrations)
            self._log.exception("failed to apply %d registrations", len(batch.registrations))
        # Presence from before an accepted registration is superseded by it.
        presence = {s: p for s, p in batch.before.items() if s not in accepted}
        for serial, (online, seen) in batch.after.items():
            presence[serial] = merged_presence(presence.get(serial), online, seen)
        try:
            if presence:
                await self._set_presence(presence)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.stats.dropped += len(presence)
            self._log.exception("failed to record the presence of %d devices", len(presence))
        return Batch()

    async def _apply_registrations(self, batch: Batch) -> set[str]:
        arguments: list[dict[str, Any]] = [
            {
                "serial": serial,
                "domain": registration.domain,
                "model": registration.model,
                "firmware_version": registration.firmware_version,
                "channels": [(c.number, c.name) for c in registration.channels],
                "ip": registration.ip,
                "port": registration.port,
                "public_key": registration.public_key,
                "now": now,
            }
            for serial, (registration, now) in batch.registrations.items()
        ]
        outcomes = await self._directory.apply_registrations(
            arguments, fresh_for=self._config.last_seen_interval
        )
        accepted: set[str] = set()
        answers = []
        for (serial, (registration, _now)), outcome in zip(
            batch.registrations.items(), outcomes, strict=True
        ):
            if outcome.accepted:
                accepted.add(serial)
                self.stats.registrations += 1
                self.grants.ensure(serial, outcome.grant_version)
            else:
                self.stats.refused += 1
                reason = getattr(outcome.reason, "value", str(outcome.reason))
                if reason == "key_mismatch":
                    self._log.error(
                        "ALERT: registration for %s from %s signed by another key: refused",
                        serial,
                        registration.ip,
                    )
                else:
                    self._log.warning("registration of %s refused: %s", serial, outcome.message)
            answers.append(
                self._answer(
                    serial,
                    accepted=outcome.accepted,
                    reason="" if outcome.accepted else (outcome.message or str(reason))[:256],
                    version=outcome.grant_version,
                )
            )
        # One device per answer: they may go out together.  The registrations are
        # committed by now, so a failed answer must not count them as dropped.
        for failure in await asyncio.gather(*answers, return_exceptions=True):
            if isinstance(failure, asyncio.CancelledError):
                raise failure
            if isinstance(failure, Exception):
                self._log.error("could not answer a registration: %r", failure)
        return accepted

    async def _set_presence(self, presence: Mapping[str, Presence]) -> None:
        await self._directory.set_presence(presence, fresh_for=self._config.last_seen_interval)

    async def _answer(self, serial: str, *, accepted: bool, reason: str, version: int) -> None:
        result = RegistrationResult(
            serial=serial, accepted=accepted, reason=reason, grant_set_version=version
        )
        try:
            await self.send(serial, TopicKind.DOWN_CONTROL, result)
        except aiomqtt.MqttError as exc:
            self._log.warning("could not answer %s's registration: %s", serial, exc)


def _mismatch(topic_serial: str, message_serial: str) -> ProtocolError:
    return ProtocolError(f"message for {message_serial!r:.70} on {topic_serial}'s topic")
