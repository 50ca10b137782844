from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nvrshare.relay.broker import TopicAcl
from nvrshare.relay.broker.mosquitto_conf import find_dynsec_plugin
from tests.support.mosquitto import MosquittoProcess, MosquittoSetup

ROOT = "nvrshare/v1"

if shutil.which("mosquitto", path="/usr/sbin:/usr/bin:/usr/local/sbin") is None or (
    find_dynsec_plugin() is None
):
    pytest.skip("mosquitto with the dynamic-security plugin is required", allow_module_level=True)


def device_acl(serial: str) -> TopicAcl:
    base = f"{ROOT}/dev/{serial}"
    return TopicAcl(publish=(f"{base}/up/#", f"{base}/state"), subscribe=(f"{base}/down/#",))


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[MosquittoProcess]:
    async with MosquittoProcess(MosquittoSetup(), tmp_path) as running:
        yield running
