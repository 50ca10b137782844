"""Device X's broker account cannot touch device Y's topics (paho, aiomqtt, mosquitto_*)."""

from __future__ import annotations

import asyncio
import subprocess
import threading

import aiomqtt
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties

from nvrshare.relay.broker import (
    BrokerCredential,
    BrokerUnavailable,
    ProvisioningError,
    relay_acl,
)
from tests.relay.broker.conftest import ROOT, device_acl
from tests.support.mosquitto import MosquittoProcess

pytestmark = pytest.mark.mosquitto


def _client(broker: MosquittoProcess, cred: BrokerCredential, client_id: str | None = None):
    return aiomqtt.Client(
        broker.host,
        broker.port,
        username=cred.username,
        password=cred.password,
        identifier=client_id or cred.client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        timeout=15,
    )


def _paho_attempt(broker: MosquittoProcess, cred: BrokerCredential, other: str) -> dict:
    """With plain paho (own thread loop): subscribe to / publish on `other`'s topics."""
    result: dict = {}
    done = threading.Event()
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=cred.client_id, protocol=paho.MQTTv5
    )
    client.username_pw_set(cred.username, cred.password)

    def on_connect(c, _u, _f, reason, _p):
        result["connect"] = reason.is_failure
        c.subscribe(f"{ROOT}/dev/{other}/down/#", qos=1)

    def on_subscribe(c, _u, _mid, reasons, _p):
        result["subscribe"] = [r.is_failure for r in reasons]
        info = c.publish(f"{ROOT}/dev/{other}/up/register", b"spoof", qos=1)
        result["publish_mid"] = info.mid

    def on_publish(_c, _u, _mid, reason, _p):
        result["publish_failed"] = reason.is_failure
        done.set()

    client.on_connect, client.on_subscribe, client.on_publish = on_connect, on_subscribe, on_publish
    client.connect(broker.host, broker.port, keepalive=10, properties=Properties(1))
    client.loop_start()
    try:
        assert done.wait(15), f"no publish acknowledgement; got {result}"
    finally:
        client.disconnect()
        client.loop_stop()
    return result


async def test_device_cannot_use_another_devices_topics(broker: MosquittoProcess) -> None:
    x = await broker.create_account("DEVX1", device_acl("DEVX1"))
    await broker.create_account("DEVY1", device_acl("DEVY1"))
    relay = await broker.create_account(
        "relay:t", relay_acl(ROOT), client_id="relay-t", service=True
    )
    async with _client(broker, relay) as relay_client, _client(broker, x) as x_client:
        await relay_client.subscribe(f"$share/relay/{ROOT}/dev/+/up/#", qos=1)
        await relay_client.subscribe(f"{ROOT}/dev/+/state", qos=1)
        granted = await x_client.subscribe(f"{ROOT}/dev/DEVX1/down/#", qos=1)
        assert not granted[0].is_failure
        for topic in (f"{ROOT}/dev/DEVY1/down/#", "#", f"{ROOT}/dev/+/down/#", f"{ROOT}/#"):
            refused = await x_client.subscribe(topic, qos=1)
            assert refused[0].is_failure, topic
        await x_client.publish(f"{ROOT}/dev/DEVY1/up/register", b"spoof", qos=1)
        await x_client.publish(f"{ROOT}/dev/DEVY1/state", b"spoof", qos=1, retain=True)
        await x_client.publish(f"{ROOT}/dev/DEVX1/up/register", b"own", qos=1)
        received = []
        async with asyncio.timeout(10):
            async for message in relay_client.messages:
                received.append((str(message.topic), message.payload))
                if message.payload == b"own":
                    break
        assert received == [(f"{ROOT}/dev/DEVX1/up/register", b"own")]

    paho_result = await asyncio.to_thread(_paho_attempt, broker, x, "DEVY1")
    assert paho_result["connect"] is False
    assert paho_result["subscribe"] == [True]
    assert paho_result["publish_failed"] is True


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


async def test_mosquitto_clients_are_isolated_too(broker: MosquittoProcess) -> None:
    x = await broker.create_account("DEVX2", device_acl("DEVX2"))
    common = ("-h", broker.host, "-p", str(broker.port), "-V", "5")
    login = ("-u", x.username, "-P", x.password, "-i", x.client_id)
    sub = await asyncio.to_thread(
        _run,
        "mosquitto_sub",
        *common,
        *login,
        "-t",
        f"{ROOT}/dev/DEVY2/down/#",
        "-C",
        "1",
        "-W",
        "10",
    )
    assert "denied" in sub.stderr
    assert sub.stdout == ""
    pub = await asyncio.to_thread(
        _run, "mosquitto_pub", *common, *login, "-q", "1", "-t", f"{ROOT}/dev/DEVY2/up/x", "-m", "m"
    )
    assert "Not authorized" in pub.stderr
    own = await asyncio.to_thread(
        _run, "mosquitto_pub", *common, *login, "-q", "1", "-t", f"{ROOT}/dev/DEVX2/up/x", "-m", "m"
    )
    assert own.returncode == 0, own.stderr
    assert own.stderr == ""


@pytest.mark.parametrize("client_id", ["OTHER", "DEVX3#", "DEVX3/", "+", "$DEVX3", "DEVX3 "])
async def test_client_id_must_match_the_credential(
    broker: MosquittoProcess, client_id: str
) -> None:
    x = await broker.create_account("DEVX3", device_acl("DEVX3"))
    with pytest.raises(aiomqtt.MqttError, match="Not authorized"):
        async with _client(broker, x, client_id):
            pass


async def test_anonymous_and_wrong_password_are_refused(broker: MosquittoProcess) -> None:
    x = await broker.create_account("DEVX4", device_acl("DEVX4"))
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(broker.host, broker.port, identifier="anon", timeout=15):
            pass
    wrong = BrokerCredential(username=x.username, password="not-it", client_id=x.client_id)
    with pytest.raises(aiomqtt.MqttError, match="Not authorized"):
        async with _client(broker, wrong):
            pass


async def test_reprovisioning_replaces_the_password_and_removal_locks_out(
    broker: MosquittoProcess,
) -> None:
    old = await broker.create_account("DEVX5", device_acl("DEVX5"))
    new = await broker.create_account("DEVX5", device_acl("DEVX5"))
    with pytest.raises(aiomqtt.MqttError):
        async with _client(broker, old):
            pass
    async with _client(broker, new):
        pass
    await broker.provisioner().remove_account("DEVX5")
    await broker.provisioner().remove_account("DEVX5")  # idempotent
    assert "DEVX5" not in await broker.provisioner().list_clients()
    with pytest.raises(aiomqtt.MqttError):
        async with _client(broker, new):
            pass


async def test_accounts_survive_a_broker_restart(broker: MosquittoProcess) -> None:
    x = await broker.create_account("DEVX6", device_acl("DEVX6"))
    await broker.restart()
    async with _client(broker, x):
        pass
    # The provisioner's admin connection died with the broker; it reconnects.
    await broker.create_account("DEVY6", device_acl("DEVY6"))


async def test_an_unreachable_broker_is_reported_as_unavailable(
    broker: MosquittoProcess,
) -> None:
    provisioner = broker.provisioner()
    await broker.create_account("DEVX7", device_acl("DEVX7"))
    await broker.stop()
    with pytest.raises(BrokerUnavailable):
        await provisioner.remove_account("DEVX7")
    await broker.start()
    await provisioner.remove_account("DEVX7")  # reconnects by itself
    assert "DEVX7" not in await provisioner.list_clients()


async def test_a_refused_command_raises_provisioning_error(broker: MosquittoProcess) -> None:
    with pytest.raises(ProvisioningError, match="setClientPassword"):
        await broker.provisioner().set_password("NOSUCHDEVICE", "pw")
