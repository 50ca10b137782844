"""A claimed serial can never name (or replace) the relay's own broker accounts.

Regression for the review finding: with trust_first_claim on, claiming the
serial `relay-1` (the relay's old default client id) took over the relay's
MQTT session, and claiming `nvrshare-admin` deleted the dynsec admin.  These
run against the real embedded mosquitto, including a data dir made by the
old code (admin named `nvrshare-admin`) and a relay configured with a client
id in the serial alphabet.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from types import SimpleNamespace

import aiomqtt
import pytest

from nvrshare.agent.bootstrap import build_claim
from nvrshare.protocol.signing import SigningKey
from nvrshare.relay.broker import (
    BrokerCredential,
    BrokerSettings,
    ProvisioningRefused,
    TopicAcl,
    open_broker,
    relay_acl,
)
from nvrshare.relay.registry import ClaimRefused, ProvisioningConfig, ProvisioningService
from tests.support.mosquitto import MosquittoProcess, MosquittoSetup

pytestmark = pytest.mark.mosquitto


class _Directory:
    async def apply_registration(self, **_: object) -> SimpleNamespace:
        return SimpleNamespace(accepted=True, reason=None, message="")


def _legacy_admin(data_dir: Path) -> dict[str, str]:
    """An admin.json as the old code wrote it (username in the serial alphabet)."""
    workdir = data_dir / "broker"
    workdir.mkdir(mode=0o700)
    admin = {"username": "nvrshare-admin", "password": "pw-" + "x" * 30, "client_id": "adm-1"}
    fd = os.open(workdir / "admin.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(admin, file)
    return admin


async def _claim(service: ProvisioningService, serial: str, source: str) -> BrokerCredential:
    now = time.time()
    body = build_claim(
        serial=serial, verification_code="code1234", key=SigningKey.generate(), now=now
    )
    return await service.claim(body, source=source, now=now)


def _mqtt(host: str, port: int, cred: BrokerCredential) -> aiomqtt.Client:
    return aiomqtt.Client(
        host,
        port,
        username=cred.username,
        password=cred.password,
        identifier=cred.client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        timeout=15,
    )


async def test_claims_naming_the_relay_or_its_admin_are_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    admin = _legacy_admin(tmp_path)
    settings = BrokerSettings(client_id="relay-1")
    async with open_broker(settings, tmp_path, logging.getLogger("t")) as broker:
        assert broker.provisioner is not None
        assert broker.credential is not None
        service = ProvisioningService(
            ProvisioningConfig(trust_first_claim=True),
            directory=_Directory(),
            broker=broker.provisioner,
            hash_code=lambda _code: None,
        )
        relay = broker.credential
        async with _mqtt(broker.host, broker.port, relay) as relay_client:
            await relay_client.subscribe("nvrshare/v1/dev/+/up/#", qos=1)
            for i, serial in enumerate(("relay-1", "nvrshare-admin", "adm-1")):
                with pytest.raises(ClaimRefused) as refused:
                    await _claim(service, serial, f"203.0.113.{i}")
                assert refused.value.status == 409
            # The relay's session is still its own, and the admin still works.
            await relay_client.publish("nvrshare/v1/dev/x/down/control", b"x", qos=1, timeout=15)
        assert "ALERT" in caplog.text
        assert {"nvrshare-admin", relay.username} <= set(await broker.provisioner.list_clients())
        # A legitimate device is still provisioned (the admin account survived).
        device = await _claim(service, "DEVOK1", "198.51.100.1")
        again = await _claim(service, "DEVOK1", "198.51.100.1")
        async with _mqtt(broker.host, broker.port, again):
            pass
        assert device.password != again.password
    assert admin["username"] == "nvrshare-admin"


async def test_provision_device_never_replaces_a_non_device_account(tmp_path: Path) -> None:
    async with open_broker(BrokerSettings(), tmp_path) as broker:
        provisioner = broker.provisioner
        assert provisioner is not None
        assert broker.credential is not None
        # New relays keep their own names out of the serial alphabet.
        assert ":" in broker.credential.username
        assert ":" in broker.credential.client_id
        admin = json.loads((tmp_path / "broker" / "admin.json").read_text())
        assert ":" in admin["username"]
        assert ":" in admin["client_id"]
        # A service account whose name a serial could have (another relay, say).
        other = BrokerCredential(username="relay-2", password="pw-12345678", client_id="relay-2")
        await provisioner.provision_service(other, relay_acl())
        acl = TopicAcl(publish=("nvrshare/v1/dev/relay-2/up/#",))
        attacker = BrokerCredential(username="relay-2", password="pw-87654321", client_id="relay-2")
        with pytest.raises(ProvisioningRefused, match="non-device"):
            await provisioner.provision_device(attacker, acl)
        async with _mqtt(broker.host, broker.port, other):
            pass  # untouched: the old password still logs in
        for bad in ("relay:1", broker.credential.client_id, "x:y"):
            with pytest.raises(ProvisioningRefused):
                await provisioner.provision_device(
                    BrokerCredential(username="DEVZ", password="pw-123456", client_id=bad), acl
                )


async def test_an_external_broker_reserves_the_configured_relay_names(tmp_path: Path) -> None:
    async with MosquittoProcess(MosquittoSetup(), tmp_path) as mosquitto:
        assert mosquitto.admin is not None
        relay = await mosquitto.create_account(
            "relay-x", relay_acl(), client_id="relay-x-conn", service=True
        )
        settings = BrokerSettings(
            url=f"mqtt://{relay.username}:{relay.password}@127.0.0.1:{mosquitto.port}",
            client_id=relay.client_id,
            admin_username=mosquitto.admin.username,
            admin_password=mosquitto.admin.password,
            admin_client_id=mosquitto.admin.client_id,
        )
        async with open_broker(settings, tmp_path / "relay") as broker:
            provisioner = broker.provisioner
            assert provisioner is not None
            acl = TopicAcl(publish=("nvrshare/v1/dev/x/up/#",))
            for name in ("relay-x", "relay-x-conn", mosquitto.admin.username):
                with pytest.raises(ProvisioningRefused):
                    await provisioner.provision_device(
                        BrokerCredential(username=name, password="pw-123456", client_id=name), acl
                    )
            async with _mqtt(broker.host, broker.port, relay):
                pass  # the relay's account is untouched
