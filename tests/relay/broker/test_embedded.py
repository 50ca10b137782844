"""The relay's embedded broker: generated config, persisted admin, supervision."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
from pathlib import Path

import aiomqtt
import pytest

from nvrshare.relay.broker import (
    BrokerCredential,
    BrokerError,
    BrokerSettings,
    ProvisioningRefused,
    TopicAcl,
    open_broker,
    parse_broker_url,
)
from tests.relay.broker.conftest import ROOT, device_acl

pytestmark = pytest.mark.mosquitto


async def test_embedded_broker_runs_supervised_with_auth_on(tmp_path: Path) -> None:
    async with open_broker(BrokerSettings(client_id="relay-a"), tmp_path) as broker:
        assert broker.embedded
        assert broker.provisioner is not None
        assert broker.credential
        conf = (tmp_path / "broker" / "mosquitto.conf").read_text()
        assert "allow_anonymous false" in conf
        assert f"listener {broker.port} 127.0.0.1" in conf
        admin_file = tmp_path / "broker" / "admin.json"
        assert stat.S_IMODE(admin_file.stat().st_mode) == 0o600
        device = BrokerCredential(username="DEVE1", password="pw-1234567", client_id="DEVE1")
        await broker.provisioner.provision_device(device, device_acl("DEVE1"))
        relay = broker.credential
        async with aiomqtt.Client(
            broker.host,
            broker.port,
            username=relay.username,
            password=relay.password,
            identifier=relay.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
        ) as client:
            granted = await client.subscribe(f"$share/relay/{ROOT}/dev/+/up/#", qos=1)
            assert not granted[0].is_failure
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client(broker.host, broker.port, identifier="anon"):
                pass
        # A crashed broker is restarted by the supervisor, on the same port.
        assert broker.process is not None
        assert broker.process.pid is not None
        pid = broker.process.pid
        os.kill(pid, signal.SIGKILL)
        # Restart delay 0.2 s, then up to 10 s for the new process to listen.
        # The broker may accept clients a poll interval before the supervisor
        # sees its port open and counts the restart: wait for both.
        async with asyncio.timeout(20):
            while True:
                try:
                    async with aiomqtt.Client(
                        broker.host,
                        broker.port,
                        username=device.username,
                        password=device.password,
                        identifier=device.client_id,
                        timeout=5,
                    ):
                        pass
                except aiomqtt.MqttError:
                    await asyncio.sleep(0.1)
                    continue
                if broker.process.restarts > 0:
                    break
                await asyncio.sleep(0.02)
        assert broker.process.restarts == 1
    # Second start: same admin, the device account persisted in the dynsec state.
    async with open_broker(BrokerSettings(client_id="relay-a"), tmp_path) as again:
        client = aiomqtt.Client(
            again.host,
            again.port,
            username=device.username,
            password=device.password,
            identifier=device.client_id,
        )
        async with client:
            pass


def test_names_and_urls_are_validated() -> None:
    for bad in ("", "a/b", "a+b", "a#", "$SYS", "x" * 65, "a b", "é"):
        with pytest.raises(ProvisioningRefused):
            BrokerCredential(username=bad, password="p", client_id="ok")
        with pytest.raises(ProvisioningRefused):
            BrokerCredential(username="ok", password="p", client_id=bad)
    with pytest.raises(ProvisioningRefused):
        TopicAcl(subscribe=("$SYS/#",))
    with pytest.raises(ProvisioningRefused):
        BrokerSettings(client_id="a/b")
    assert parse_broker_url("mqtt://u:p%40@h:1884") == ("h", 1884, "u", "p@")
    assert parse_broker_url("mqtts://h") == ("h", 8883, None, None)
    for bad_url in ("http://h", "mqtt://", "mqtt://h:99999"):
        with pytest.raises(BrokerError):
            parse_broker_url(bad_url)
