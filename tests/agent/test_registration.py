"""What the agent registers: facts from the recorder, sanitised; signed by the device key."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from nvrshare.agent.registration import FactsReader, local_address, signed_registration
from nvrshare.firmware_shim import Capability, DeviceUnreachable
from nvrshare.protocol.codec import decode_registration
from nvrshare.protocol.permissions import Permission
from nvrshare.protocol.signing import SigningKey


class QuirkyRecorder:
    def __init__(self) -> None:
        self.fail = False

    async def device_info(self) -> SimpleNamespace:
        if self.fail:
            raise DeviceUnreachable("gone")
        return SimpleNamespace(model="DS-7608\x00NI", firmware_version="")

    async def channels(self) -> list[SimpleNamespace]:
        def channel(number: int, name: str, caps: frozenset) -> SimpleNamespace:
            return SimpleNamespace(number=number, name=name, online=True, capabilities=caps)

        return [
            channel(2, "Yard\x07", frozenset({Capability.LIVE, Capability.PTZ})),
            channel(1, "Door", frozenset({Capability.LIVE, Capability.RECORDINGS})),
            channel(1, "Door again", frozenset()),
            channel(0, "bad", frozenset()),
            channel(999, "bad", frozenset()),
        ]


async def test_facts_are_sanitised_and_remembered() -> None:
    recorder = QuirkyRecorder()
    reader = FactsReader(recorder, logging.getLogger("test"))  # type: ignore[arg-type]
    facts = await reader.read()
    assert facts.model == "DS-7608NI"
    assert facts.firmware_version == "unknown"
    assert [(c.number, c.name) for c in facts.channels] == [(1, "Door"), (2, "Yard")]
    assert facts.channels[0].capabilities == Permission.LIVE_VIEW | Permission.PLAYBACK
    assert facts.channels[1].capabilities == Permission.LIVE_VIEW | Permission.PTZ
    recorder.fail = True
    assert await reader.read() == facts


def test_registration_is_signed_by_the_key_it_carries() -> None:
    key = SigningKey.generate()
    data = signed_registration(
        key=key,
        serial="DEV1",
        domain="door",
        facts=SimpleNamespace(model="m", firmware_version="f", channels=()),  # type: ignore[arg-type]
        ip=local_address("127.0.0.1", 1883),
        port=80,
        now=1_800_000_000,
    )
    registration, key_id = decode_registration(data)
    assert key_id == key.key_id
    assert registration.ip == "127.0.0.1"
    assert local_address("no-such-host.invalid", 1) == "0.0.0.0"
