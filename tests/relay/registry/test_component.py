"""The device plane inside a real `Relay`: embedded mosquitto, registry, provisioning."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import quote

import pytest

from nvrshare.agent.app import Agent
from nvrshare.agent.config import config_from_mapping
from nvrshare.relay.app import Relay
from nvrshare.relay.broker import BrokerError, relay_acl
from nvrshare.relay.config import RelayConfig, ScryptParams
from nvrshare.relay.registry import DevicePlane, settings_from_mapping
from nvrshare.relay.services.context import load_device
from tests.relay.registry.harness import eventually
from tests.support.mosquitto import MosquittoProcess, MosquittoSetup
from tests.support.net import held_port, wait_for_port
from tests.support.tls import tls_files

pytestmark = pytest.mark.mosquitto


async def test_relay_with_no_broker_configured_runs_its_own(tmp_path: Path) -> None:
    settings = settings_from_mapping({"devices": {"trust_first_claim": True}})
    plane = DevicePlane(settings)
    config = RelayConfig(
        data_dir=tmp_path / "relay", http_port=0, scrypt=ScryptParams(n=16, r=1, p=1)
    )
    async with Relay(config, components=[plane]) as relay:
        running = plane.running
        assert running is not None
        assert running.broker.embedded
        agent_config = config_from_mapping(
            {
                "serial": "DEVR7",
                "domain": "lobby",
                "verification_code": "ABCDEF",
                "state_dir": str(tmp_path / "agent"),
                "keepalive": 5,
                "relay": {
                    "broker_url": running.broker_url,
                    "provisioning_url": running.provisioning_url,
                },
                "recorder": {"backend": "sim", "settings": {"channels": "3"}},
                "backoff": {"initial": 0.05, "maximum": 0.5},
            }
        )
        async with Agent(agent_config) as agent:
            async with asyncio.timeout(15):
                await agent.control.status.registered.wait()

            async def registered() -> bool:
                async with relay.services.context.store.transaction() as conn:
                    device = await load_device(conn, "DEVR7")
                return device is not None and device.online and len(device.channels) == 3

            await eventually(registered, 15)
            await eventually(lambda: agent.grants.current is not None, 15)
    assert (tmp_path / "relay" / "broker" / "mosquitto.conf").exists()


def test_settings_are_validated() -> None:
    assert settings_from_mapping({}).broker.url is None
    parsed = settings_from_mapping({"broker": {"url": "mqtt://u:p@broker:1884"}})
    assert parsed.broker.url == "mqtt://u:p@broker:1884"
    for bad in (
        {"broker": {"prot": 1}},
        {"broker": {"port": "1"}},
        {"broker": {"url": "http://x"}},
        {"devices": {"trust_first_claim": "yes"}},
        {"broker": []},
    ):
        with pytest.raises(BrokerError):
            settings_from_mapping(bad)


async def test_relay_with_a_broker_url_uses_that_broker(tmp_path: Path) -> None:
    async with MosquittoProcess(MosquittoSetup(), tmp_path) as broker:
        relay_cred = await broker.create_account(
            "relay:ext", relay_acl("nvrshare/v1"), client_id="relay-ext", service=True
        )
        assert broker.admin is not None
        settings = settings_from_mapping(
            {
                "broker": {
                    "url": f"mqtt://{quote(relay_cred.username)}:{relay_cred.password}"
                    f"@{broker.host}:{broker.port}",
                    "client_id": "relay-ext",
                    "admin_username": broker.admin.username,
                    "admin_password": broker.admin.password,
                    "admin_client_id": broker.admin.client_id,
                },
                "devices": {"trust_first_claim": True},
            }
        )
        plane = DevicePlane(settings)
        config = RelayConfig(
            data_dir=tmp_path / "relay", http_port=0, scrypt=ScryptParams(n=16, r=1, p=1)
        )
        async with Relay(config, components=[plane]):
            running = plane.running
            assert running is not None
            assert not running.broker.embedded
            assert running.broker_url == broker.url
            async with asyncio.timeout(15):
                await running.registry.wait_connected()
            agent_config = config_from_mapping(
                {
                    "serial": "DEVX9",
                    "domain": "ext",
                    "verification_code": "ABCDEF",
                    "state_dir": str(tmp_path / "agent"),
                    "relay": {
                        "broker_url": broker.url,
                        "provisioning_url": running.provisioning_url,
                    },
                    "recorder": {"backend": "sim"},
                    "backoff": {"initial": 0.05, "maximum": 0.5},
                }
            )
            async with Agent(agent_config) as agent:
                async with asyncio.timeout(15):
                    await agent.control.status.registered.wait()
        assert not (tmp_path / "relay" / "broker").exists()


@pytest.mark.filterwarnings("ignore::ResourceWarning")
async def test_relay_reaches_an_external_broker_over_tls(tmp_path: Path) -> None:
    ca, cert, key = tls_files(tmp_path)
    # The TLS port stays bound while the broker picks its own port, so the two
    # cannot be the same.
    with held_port() as tls_port:
        setup = MosquittoSetup(
            extra=(f"listener {tls_port} 127.0.0.1", f"certfile {cert}", f"keyfile {key}")
        )
        broker_process = MosquittoProcess(setup, tmp_path)
    async with broker_process as broker:
        wait_for_port(tls_port, timeout=15)
        relay_cred = await broker.create_account(
            "relay:tls", relay_acl("nvrshare/v1"), client_id="relay-tls", service=True
        )
        assert broker.admin is not None
        settings = settings_from_mapping(
            {
                "broker": {
                    "url": f"mqtts://{quote(relay_cred.username)}:{relay_cred.password}"
                    f"@127.0.0.1:{tls_port}",
                    "client_id": "relay-tls",
                    "ca_file": str(ca),
                    "admin_username": broker.admin.username,
                    "admin_password": broker.admin.password,
                    "admin_client_id": broker.admin.client_id,
                },
                "devices": {"trust_first_claim": True},
            }
        )
        plane = DevicePlane(settings)
        config = RelayConfig(
            data_dir=tmp_path / "relay", http_port=0, scrypt=ScryptParams(n=16, r=1, p=1)
        )
        async with Relay(config, components=[plane]):
            running = plane.running
            assert running is not None
            assert running.broker_url == f"mqtts://127.0.0.1:{tls_port}"
            async with asyncio.timeout(15):
                await running.registry.wait_connected()
            agent_config = config_from_mapping(
                {
                    "serial": "DEVTLS2",
                    "domain": "tls2",
                    "verification_code": "ABCDEF",
                    "state_dir": str(tmp_path / "agent"),
                    "relay": {
                        "broker_url": running.broker_url,
                        "provisioning_url": running.provisioning_url,
                        "ca_file": str(ca),
                    },
                    "recorder": {"backend": "sim"},
                    "backoff": {"initial": 0.05, "maximum": 0.5},
                }
            )
            async with Agent(agent_config) as agent:
                async with asyncio.timeout(15):
                    await agent.control.status.registered.wait()
