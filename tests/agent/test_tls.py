"""The agent over mqtts:// against a TLS mosquitto, trusting the CA from `relay.ca_file`."""

from __future__ import annotations

import asyncio
import gc
import socket
from pathlib import Path

import pytest

from nvrshare.agent.app import Agent
from nvrshare.agent.config import config_from_mapping
from nvrshare.protocol.topics import device_topic_patterns
from nvrshare.relay.broker import TopicAcl
from nvrshare.relay.broker.mosquitto_conf import find_dynsec_plugin
from nvrshare.relay.broker.process import find_mosquitto
from tests.relay.registry.harness import eventually
from tests.support.mosquitto import MosquittoProcess, MosquittoSetup
from tests.support.net import wait_for_port
from tests.support.tls import tls_files

pytestmark = [
    pytest.mark.mosquitto,
    pytest.mark.skipif(
        find_mosquitto() is None or find_dynsec_plugin() is None,
        reason="mosquitto with the dynamic-security plugin is required",
    ),
]


# paho-mqtt 2.2 drops (without closing) the socket of a failed TLS handshake;
# the garbage collector closes it later with a ResourceWarning.  Not ours.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("trust_ca", [True, False], ids=["ca_file", "system-cas"])
async def test_agent_connects_over_tls_only_when_it_trusts_the_ca(
    tmp_path: Path, trust_ca: bool
) -> None:
    ca, cert, key = tls_files(tmp_path)
    # A second, TLS-only listener for devices; provisioning uses the plain one.  The TLS
    # port stays bound while the broker picks its own port, so the two cannot be the same.
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        tls_port = int(reserved.getsockname()[1])
        setup = MosquittoSetup(
            extra=(f"listener {tls_port} 127.0.0.1", f"certfile {cert}", f"keyfile {key}")
        )
        broker_process = MosquittoProcess(setup, tmp_path)
    async with broker_process as broker:
        wait_for_port(tls_port)
        patterns = device_topic_patterns("DEVTLS1")
        device = await broker.create_account(
            "DEVTLS1", TopicAcl(publish=patterns.publish, subscribe=patterns.subscribe)
        )
        relay: dict[str, object] = {
            "broker_url": f"mqtts://127.0.0.1:{tls_port}",
            "username": device.username,
            "password": device.password,
        }
        if trust_ca:
            relay["ca_file"] = str(ca)
        config = config_from_mapping(
            {
                "serial": "DEVTLS1",
                "domain": "tls",
                "verification_code": "ABCDEF",
                "state_dir": str(tmp_path / "agent"),
                "relay": relay,
                "recorder": {"backend": "sim"},
                "backoff": {"initial": 0.05, "maximum": 0.2},
            }
        )
        async with Agent(config) as agent:
            status = agent.control.status
            if trust_ca:
                await eventually(status.connected.is_set, 15)
            else:
                await asyncio.sleep(1.0)
                assert not status.connected.is_set()
                assert status.connects == 0
    # Collect paho's dropped sockets now, while this test's warning filter applies.
    gc.collect()
