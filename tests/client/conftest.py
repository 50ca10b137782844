"""Client fixtures: a real relay (in-process, SQLite, loopback, port 0)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nvrshare.relay.app import Relay
from nvrshare.relay.config import RelayConfig, ScryptParams
from nvrshare.relay.services import Services
from nvrshare.relay.services.secrets_hash import hash_secret

CHEAP_SCRYPT = ScryptParams(n=16, r=1, p=1)
PASSWORD = "correct horse battery"


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Relay]:
    config = RelayConfig(data_dir=tmp_path / "relay", http_port=0, scrypt=CHEAP_SCRYPT)
    async with Relay(config) as running:
        yield running


async def register_device(
    services: Services, serial: str, *, code: str = "CODE42", channels: int = 2
) -> None:
    outcome = await services.devices.apply_registration(
        serial=serial,
        domain=f"dom-{serial.lower()}",
        model="DS-7604NI",
        firmware_version="V4",
        channels=[(n, f"Cam {n}") for n in range(1, channels + 1)],
        ip="192.0.2.20",
        port=8000,
        public_key=secrets.token_bytes(32),
        verification_code_hash=hash_secret(code, services.context.config.scrypt),
        now=services.context.clock(),
    )
    assert outcome.accepted
