"""The registry's workers: batches of registrations and presence, order kept per device.

Unit tests without a broker: messages go straight to `_handle_chunk` (what a
worker does with what waits in its queue), answers and grant sets are
captured instead of published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from nvrshare.agent.registration import DeviceFacts, signed_registration
from nvrshare.protocol.codec import encode, encode_signed
from nvrshare.protocol.messages import (
    DeviceState,
    GrantSet,
    Heartbeat,
    RegistrationResult,
)
from nvrshare.protocol.signing import CONTEXT_GRANT_SET, KeyRing, SigningKey
from nvrshare.protocol.topics import TopicKind, device_topic
from nvrshare.relay.registry import Registry, RegistryConfig
from tests.relay.registry.harness import eventually

NOW = 1_800_000_000.0
DEVICE_KEYS = {serial: SigningKey.generate() for serial in ("SNA", "SNB", "SNC")}


class Keys:
    signing_key = SigningKey.generate()
    key_ring = KeyRing([signing_key.public_key])


@dataclass
class Outcome:
    accepted: bool
    reason: Any = None
    message: str = ""
    grant_version: int = 3


class BatchDirectory:
    """Records calls; refuses serials in `refuse` with the given reason."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.refuse: dict[str, str] = {}

    def _outcome(self, serial: str) -> Outcome:
        reason = self.refuse.get(serial)
        if reason is None:
            return Outcome(accepted=True)
        return Outcome(accepted=False, reason=SimpleNamespace(value=reason), message=reason)

    async def apply_registrations(self, registrations: list[dict], *, fresh_for: float) -> list:
        self.calls.append(("register", [r["serial"] for r in registrations]))
        return [self._outcome(r["serial"]) for r in registrations]

    async def set_presence(self, presence: dict, *, fresh_for: float) -> None:
        self.calls.append(("presence", dict(presence)))

    async def grant_set_for(self, serial: str, *, now: float | None = None) -> None:
        return None


def _registry(directory: Any) -> tuple[Registry, list[tuple[str, RegistrationResult]]]:
    config = RegistryConfig(host="127.0.0.1", port=1, username=None, password=None, client_id="t")
    registry = Registry(config, directory=directory, keys=Keys(), clock=lambda: NOW)
    answers: list[tuple[str, RegistrationResult]] = []

    async def send(serial: str, kind: TopicKind, message: Any) -> None:
        assert kind is TopicKind.DOWN_CONTROL
        answers.append((serial, message))

    registry.send = send  # type: ignore[method-assign]
    return registry, answers


def _register(serial: str, *, now: float = NOW) -> tuple[str, TopicKind, bytes]:
    payload = signed_registration(
        key=DEVICE_KEYS[serial],
        serial=serial,
        domain=serial.lower(),
        facts=DeviceFacts(model="M", firmware_version="1", channels=()),
        ip="192.0.2.1",
        port=80,
        now=now,
    )
    return serial, TopicKind.UP_REGISTER, payload


def _device_state(serial: str, online: bool) -> DeviceState:
    return DeviceState(serial=serial, online=online, timestamp=int(NOW), ip="192.0.2.1", port=80)


def _state(serial: str, online: bool) -> tuple[str, TopicKind, bytes]:
    return serial, TopicKind.STATE, encode(_device_state(serial, online))


def _beat(serial: str) -> tuple[str, TopicKind, bytes]:
    return serial, TopicKind.UP_HEARTBEAT, encode(Heartbeat(serial=serial, timestamp=int(NOW)))


async def test_a_chunk_is_one_batch_and_each_device_keeps_its_order() -> None:
    directory = BatchDirectory()
    registry, answers = _registry(directory)
    await registry._handle_chunk(
        [
            _state("SNA", True),
            _register("SNA"),
            _state("SNB", True),
            _register("SNB"),
            _state("SNA", False),  # after SNA's registration: written after it
            _beat("SNC"),
            _register("SNA"),  # SNA again: the batch so far goes first
        ]
    )
    assert directory.calls == [
        ("register", ["SNA", "SNB"]),
        # Presence from before an accepted registration is superseded by it.
        ("presence", {"SNA": (False, None), "SNC": (True, NOW)}),
        ("register", ["SNA"]),
    ]
    assert [(s, a.accepted, a.grant_set_version) for s, a in answers] == [
        ("SNA", True, 3),
        ("SNB", True, 3),
        ("SNA", True, 3),
    ]
    assert registry.stats.registrations == 3
    assert registry.stats.batches == 2


async def test_a_refused_device_does_not_affect_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    directory = BatchDirectory()
    directory.refuse = {"SNB": "key_mismatch", "SNC": "domain_taken"}
    registry, answers = _registry(directory)
    with caplog.at_level(logging.WARNING):
        await registry._handle_chunk(
            [_state("SNB", True), _register("SNA"), _register("SNB"), _register("SNC")]
        )
    assert [(s, a.accepted, a.reason) for s, a in answers] == [
        ("SNA", True, ""),
        ("SNB", False, "key_mismatch"),
        ("SNC", False, "domain_taken"),
    ]
    # A refused registration does not mark the device online: its state still counts.
    assert directory.calls[1] == ("presence", {"SNB": (True, NOW)})
    assert "ALERT: registration for SNB" in caplog.text
    assert (registry.stats.registrations, registry.stats.refused) == (1, 2)


async def test_stale_bad_and_misaddressed_messages_are_answered_or_dropped() -> None:
    directory = BatchDirectory()
    registry, answers = _registry(directory)
    await registry._handle_chunk(
        [
            _register("SNA"),
            _register("SNA", now=NOW - 3600),  # stale: after SNA's batch, refused
            ("SNB", TopicKind.UP_REGISTER, b"garbage"),
            ("SNC", TopicKind.STATE, encode(_device_state("SNB", True))),
            ("SNC", TopicKind.DOWN_CONTROL, b""),  # devices do not publish here
        ]
    )
    assert directory.calls == [("register", ["SNA"])]
    assert [(s, a.accepted, a.reason) for s, a in answers] == [
        ("SNA", True, ""),
        ("SNA", False, "stale registration"),
    ]
    assert registry.stats.dropped == 3


async def test_heartbeats_refresh_last_seen_once_a_while() -> None:
    directory = BatchDirectory()
    registry, _answers = _registry(directory)
    await registry._handle_chunk([_beat("SNA"), _beat("SNA")])
    await registry._handle_chunk([_beat("SNA")])
    assert directory.calls == [("presence", {"SNA": (True, NOW)})]


async def test_grant_sets_are_republished_only_when_the_broker_may_lack_them() -> None:
    registry, _answers = _registry(BatchDirectory())
    grants = registry.grants
    requested: list[str] = []
    grants.request = requested.append  # type: ignore[method-assign]
    await registry._handle_chunk([_register("SNA")])
    assert requested == ["SNA"]  # nothing known about the broker yet

    def retained(serial: str, version: int, key: SigningKey = Keys.signing_key) -> bytes:
        grant_set = GrantSet(
            device_serial=serial, version=version, share_epoch=1, issued_at=int(NOW),
            service_enabled=True, grants=(), revoked_token_ids=(), revoked_accounts=(),
            relay_public_keys=tuple(Keys.key_ring.raw_keys()),
        )  # fmt: skip
        return encode_signed(grant_set, key, CONTEXT_GRANT_SET)

    topic = device_topic("SNA", TopicKind.DOWN_GRANTS)
    registry._enqueue(topic, retained("SNA", 3), retain=True)
    await registry._handle_chunk([_register("SNA")])
    assert requested == ["SNA"]  # the broker holds version 3: skipped
    assert grants.skipped == 1
    registry._enqueue(topic, retained("SNA", 2), retain=True)  # another relay, older
    registry._enqueue(topic, retained("SNA", 3), retain=False)  # not retained: ignored
    await registry._handle_chunk([_register("SNA")])
    assert requested == ["SNA", "SNA"]
    for payload in (retained("SNB", 3), retained("SNA", 3, SigningKey.generate()), b"junk"):
        registry._enqueue(topic, payload, retain=True)  # wrong serial, unknown key, garbage
        await registry._handle_chunk([_register("SNA")])
    assert requested == ["SNA"] * 5
    registry._enqueue(topic, retained("SNA", 3), retain=True)
    grants.broker_connected()  # a new broker connection: retained sets may be gone
    await registry._handle_chunk([_register("SNA")])
    registry._enqueue(topic, b"", retain=True)  # cleared
    await registry._handle_chunk([_register("SNA")])
    assert requested == ["SNA"] * 7


async def test_a_published_set_is_mirrored_unless_the_connection_changed() -> None:
    published: list[str] = []

    class Directory(BatchDirectory):
        async def grant_set_for(self, serial: str, *, now: float | None = None) -> Any:
            return SimpleNamespace(
                device_serial=serial, version=3, share_epoch=1, accounts={}, revoked=()
            )

    registry, _answers = _registry(Directory())
    grants = registry.grants

    async def publish(serial: str, kind: TopicKind, payload: bytes, retain: bool) -> None:
        published.append(serial)
        if serial == "SNB":
            grants.broker_connected()  # the connection dropped meanwhile

    grants._publish = publish
    await grants.publish_now("SNB")
    await grants.publish_now("SNA")
    requested: list[str] = []
    grants.request = requested.append  # type: ignore[method-assign]
    grants.ensure("SNA", 3)
    grants.ensure("SNB", 3)
    assert requested == ["SNB"]
    # Asked again (a relay event), the same version is not published twice:
    # the device would refuse a copy with other bytes.
    assert await grants.publish_now("SNA") is None
    assert published == ["SNB", "SNA"]
    assert await grants.publish_now("SNB") is not None


async def test_a_store_outage_drops_the_batch_and_the_worker_goes_on() -> None:
    class Down(BatchDirectory):
        async def apply_registrations(self, registrations: list[dict], *, fresh_for: float) -> list:
            raise ConnectionError("store unavailable")

        async def set_presence(self, presence: dict, *, fresh_for: float) -> None:
            raise ConnectionError("store unavailable")

    registry, answers = _registry(Down())
    await registry._handle_chunk(
        [_state("SNA", True), _register("SNA"), _register("SNA"), _state("SNB", True)]
    )
    assert answers == []  # no verdict: the devices send their registrations again
    # Each registration once, then the presence of SNA and SNB: nothing applied twice.
    assert registry.stats.dropped == 4
    assert registry.stats.batches == 2


async def test_a_set_the_broker_lost_goes_out_again_byte_for_byte() -> None:
    versions = {"SNA": 3}

    class Directory(BatchDirectory):
        async def grant_set_for(self, serial: str, *, now: float | None = None) -> Any:
            return SimpleNamespace(
                device_serial=serial, version=versions[serial], share_epoch=1, accounts={},
                revoked=(),
            )  # fmt: skip

    clock = [NOW]
    registry, _answers = _registry(Directory())
    grants = registry.grants
    grants._clock = lambda: clock[0]
    payloads: list[bytes] = []

    async def publish(serial: str, kind: TopicKind, payload: bytes, retain: bool) -> None:
        payloads.append(payload)

    grants._publish = publish
    await grants.publish_now("SNA")
    grants.broker_connected()  # a restarted broker, which lost it
    clock[0] += 10  # another issued_at, were it signed again
    await grants.publish_now("SNA")
    versions["SNA"] = 4
    await grants.publish_now("SNA")
    assert payloads[0] == payloads[1] != payloads[2]


async def test_waiting_devices_are_read_together_and_published() -> None:
    reads: list[list[str]] = []

    class Directory(BatchDirectory):
        async def grant_sets_for(self, serials: list[str], *, now: float | None = None) -> dict:
            reads.append(list(serials))
            return {
                s: SimpleNamespace(device_serial=s, version=1, share_epoch=1, accounts={},
                                   revoked=())
                for s in serials
                if s != "GONE"
            }  # fmt: skip

    registry, _answers = _registry(Directory())
    grants = registry.grants
    published: list[str] = []
    failed = {"SN9"}

    async def publish(serial: str, kind: TopicKind, payload: bytes, retain: bool) -> None:
        if serial in failed:
            failed.clear()
            raise ConnectionError("broker gone")
        published.append(serial)

    grants._publish = publish
    serials = [f"SN{i}" for i in range(10)] + ["GONE"]
    for serial in serials:
        grants.request(serial)
    worker = asyncio.create_task(grants.run())
    try:
        await eventually(lambda: "SN9" in published, 15)
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
    assert reads[0] == serials  # one read for all that waited
    assert sorted(set(published)) == sorted(serials[:-1])


async def test_a_set_of_version_0_is_not_published() -> None:
    class Directory(BatchDirectory):
        async def grant_set_for(self, serial: str, *, now: float | None = None) -> Any:
            return SimpleNamespace(
                device_serial=serial, version=0, share_epoch=0, accounts={}, revoked=()
            )

    registry, _answers = _registry(Directory())
    published: list[str] = []

    async def publish(serial: str, kind: TopicKind, payload: bytes, retain: bool) -> None:
        published.append(serial)

    registry.grants._publish = publish
    assert await registry.grants.publish_now("SNA") is None
    assert published == []
