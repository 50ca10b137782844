"""The isapi backend against the recorder simulator, over loopback HTTP Digest."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from nvrshare.firmware_shim import AlarmKind, RecorderConfig, open_recorder
from nvrshare.simulators.recorder import RecorderSimConfig, RecorderSimulator
from tests.firmware_shim.contract import ContractTarget, RecorderContract

PASSWORD = "s3cret-pw"


@pytest.fixture
async def nvr() -> AsyncIterator[RecorderSimulator]:
    config = RecorderSimConfig(channels=3, password=PASSWORD, heartbeat=0.5)
    async with RecorderSimulator(config) as simulator:
        yield simulator


def isapi_config(nvr: RecorderSimulator, **settings: str) -> RecorderConfig:
    return RecorderConfig(
        backend="isapi",
        host="127.0.0.1",
        port=nvr.http_port,
        username="admin",
        password=PASSWORD,
        timeout=5.0,
        settings={"alarm_watchdog": "3", **settings},
    )


class TestIsapiContract(RecorderContract):
    @pytest.fixture
    async def target(self, nvr: RecorderSimulator) -> AsyncIterator[ContractTarget]:
        async with open_recorder(isapi_config(nvr)) as recorder:

            async def trigger(channel: int, active: bool) -> None:
                nvr.device.trigger_alarm(AlarmKind.MOTION, channel=channel, active=active)

            now = datetime.now(UTC)
            yield ContractTarget(
                recorder=recorder,
                serial=nvr.config.serial,
                channel_count=3,
                trigger_motion=trigger,
                talk_received=nvr.talk_received,
                recording_window=(now - timedelta(hours=3), now),
            )
