"""The assembled product as real processes: recorder simulator, relay (with its mosquitto), agent.

`product` starts `nvrshare sim recorder`, `nvrshare relay` and `nvrshare
agent` (the same functions `nvrshare demo` uses), registers an owner and a
recipient over HTTP, binds the recorder and shares channel 1 (live view +
PTZ) and channel 2 (playback) with the recipient, who accepts.  Every
process is stopped when the test ends (SIGTERM to its process group, then
SIGKILL after a bounded wait), whatever the outcome.
"""

from __future__ import annotations

import io
import os
import secrets
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nvrshare.client.sdk import RelayClient
from nvrshare.demo import DemoRun, Story, start_agent, start_recorder, start_relay
from nvrshare.demo_processes import Child, Children
from nvrshare.relay.broker.mosquitto_conf import find_dynsec_plugin
from nvrshare.relay.broker.process import find_mosquitto

NEEDS_TOOLS = pytest.mark.skipif(
    find_mosquitto() is None or find_dynsec_plugin() is None or shutil.which("ffprobe") is None,
    reason="mosquitto with the dynamic-security plugin and ffprobe are required",
)
# Starting the product (recorder, relay with its mosquitto, agent) and stopping each
# process within its grace can take more than pytest's default 60 s on a loaded machine.
SLOW_PROCESSES = pytest.mark.timeout(180)


@dataclass
class Product:
    run: DemoRun
    children: Children
    story: Story
    agent: Child
    tmp_path: Path

    @property
    def serial(self) -> str:
        return self.run.serial

    @property
    def relay_data_dir(self) -> Path:
        return self.tmp_path / "relay"

    def cli_env(self, who: str) -> dict[str, str]:
        """Environment for a CLI process logged in as `who` (see `login_cli`)."""
        return {"NVRSHARE_HOME": str(self.tmp_path / f"home-{who}")}

    async def login_cli(self, who: str) -> dict[str, str]:
        """`nvrshare account login` as a real process; returns the env to use after it."""
        env = dict(self.cli_env(who), NVRSHARE_PASSWORD=self.story.password)
        child = await self.children.start(
            f"login-{who}", "account", "login", "--relay", str(self.run.status["api"]), who,
            env=env,
        )  # fmt: skip
        assert await child.wait(within=20) == 0, child.log_tail()
        return self.cli_env(who)


@pytest.fixture
async def product(tmp_path: Path) -> AsyncIterator[Product]:
    run = DemoRun(tmp_path, out=io.StringIO())
    code = secrets.token_hex(4).upper()
    # Children inherit this environment: keep the developer's own login out of it.
    env = {k: v for k, v in os.environ.items() if k not in ("NVRSHARE_HOME", "NVRSHARE_DATA")}
    async with Children(tmp_path, env=env) as children:
        await start_recorder(run, children)
        await start_relay(run, children, code)
        agent = await start_agent(run, children, code)
        api = str(run.status["api"])
        async with RelayClient(api) as owner, RelayClient(api) as friend:
            story = Story(run, owner, friend, code)
            await story.accounts()
            await story.bind()
            await story.share()
            await story.wait_for_grant()
            yield Product(run=run, children=children, story=story, agent=agent, tmp_path=tmp_path)
