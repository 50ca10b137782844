"""The agent as a real process: last will on a crash, config errors, offline reboot."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from nvrshare.agent.app import Agent
from nvrshare.relay.broker.mosquitto_conf import find_dynsec_plugin
from nvrshare.relay.broker.process import find_mosquitto
from tests.relay.registry.harness import CODE, RelaySide, eventually, relay_side

pytestmark = [
    pytest.mark.mosquitto,
    pytest.mark.skipif(
        find_mosquitto() is None or find_dynsec_plugin() is None,
        reason="mosquitto with the dynamic-security plugin is required",
    ),
]

KEEPALIVE = 2


@pytest.fixture
async def relay(tmp_path: Path):
    async with relay_side(tmp_path) as side:
        yield side


def _toml(relay: RelaySide, serial: str, state_dir: Path) -> str:
    return f"""
serial = "{serial}"
domain = "{serial.lower()}"
verification_code = "{CODE}"
state_dir = "{state_dir}"
keepalive = {KEEPALIVE}
heartbeat_interval = 0.5

[relay]
broker_url = "{relay.broker.url}"
provisioning_url = "{relay.provisioning_url}"

[recorder]
backend = "sim"
[recorder.settings]
channels = "2"

[backoff]
initial = 0.05
maximum = 0.5
"""


@pytest.mark.parametrize(
    ("serial", "how"),
    [("DEVK1", signal.SIGKILL), ("DEVK2", signal.SIGSTOP)],
    ids=["killed", "hung"],
)
async def test_dead_agent_goes_offline_through_its_last_will(
    relay: RelaySide, tmp_path: Path, serial: str, how: signal.Signals
) -> None:
    """SIGKILL closes the socket (the will is immediate); SIGSTOP leaves it open,
    so only the broker's keep-alive check (1.5x) can notice."""
    config = tmp_path / "agent.toml"
    config.write_text(_toml(relay, serial, tmp_path / "agent-state"))
    # stderr to a file, not a pipe nobody reads (a full pipe would block the agent).
    with (tmp_path / "agent.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "nvrshare", "agent", "--config", str(config),
            stdout=asyncio.subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    try:

        async def online() -> bool:
            device = await relay.device(serial)
            return device is not None and device.online and len(device.channels) == 2

        await eventually(online, 15)
        process.send_signal(how)

        async def offline() -> bool:
            device = await relay.device(serial)
            return device is not None and not device.online

        took = await eventually(offline, 15)
        if how is signal.SIGKILL:
            # The socket closes with the process: the will is published at once.
            assert took <= 1.5 * KEEPALIVE
        else:
            # Only the keep-alive check can notice.  Mosquitto 2.0.11 runs it
            # coarsely: measured 7-9 s for a 2 s keep-alive (about 2x plus its
            # timer granularity), so this bounds it loosely; see the report.
            assert took <= 4 * KEEPALIVE + 5
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGCONT)
            process.kill()
            await process.wait()


async def test_bad_config_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('serial = "a/b"\n')
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nvrshare", "agent", "--config", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert b"serial" in err
    assert str(config).encode() in err


async def test_reboot_without_network_still_enforces_the_last_grants(
    relay: RelaySide,
) -> None:
    services = relay.services
    config = relay.agent_config("DEVR1")
    async with Agent(config) as agent:
        async with asyncio.timeout(15):
            await agent.control.status.registered.wait()
        owner = await services.accounts.register(password="pw-owner-1", email="r@example.com")
        await services.devices.bind(owner, serial="DEVR1", verification_code=CODE, source="t")
        await eventually(lambda: agent.grants.grant_for(owner.id, time.time()) is not None, 10)
        version = agent.grants.version
    await relay.broker.stop()
    async with Agent(config) as rebooted:
        # No broker: the control loop keeps retrying, the grants are in force.
        assert rebooted.grants.version == version
        assert rebooted.grants.grant_for(owner.id, time.time()) is not None
        await asyncio.sleep(0.3)
        assert not rebooted.control.status.connected.is_set()
    assert os.stat(config.state_dir / "grants.bin").st_mode & 0o777 == 0o600
