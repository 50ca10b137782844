"""The sim backend against the shared contract, plus its own specifics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from nvrshare.firmware_shim import (
    AlarmKind,
    ConfigError,
    DeviceUnreachable,
    PtzVector,
    RecorderConfig,
    open_recorder,
)
from nvrshare.firmware_shim.backends.sim import SimRecorder, create
from nvrshare.firmware_shim.simdevice import SimDevice, SimDeviceConfig
from tests.firmware_shim.contract import ContractTarget, RecorderContract


class TestSimContract(RecorderContract):
    @pytest.fixture
    async def target(self) -> AsyncIterator[ContractTarget]:
        config = RecorderConfig(backend="sim", settings={"channels": "3", "serial": "SIMX1"})
        async with open_recorder(config) as recorder:
            assert isinstance(recorder, SimRecorder)
            device = recorder.device

            async def trigger(channel: int, active: bool) -> None:
                device.trigger_alarm(AlarmKind.MOTION, channel=channel, active=active)

            now = datetime.now(UTC)
            yield ContractTarget(
                recorder=recorder,
                serial="SIMX1",
                channel_count=3,
                trigger_motion=trigger,
                talk_received=device.talk_received,
                recording_window=(now - timedelta(hours=3), now),
            )


def test_bad_settings_are_config_errors() -> None:
    log = logging.getLogger("test")
    with pytest.raises(ConfigError):
        create(RecorderConfig(backend="sim", settings={"channels": "x"}), logger=log)
    with pytest.raises(ConfigError):
        create(RecorderConfig(backend="sim", settings={"channels": "0"}), logger=log)


async def test_unreachable_knob() -> None:
    recorder = SimRecorder()
    recorder.unreachable = True
    with pytest.raises(DeviceUnreachable):
        async with recorder:
            pass


def test_ptz_integrates_velocity_over_the_injected_clock() -> None:
    clock = [100.0]
    device = SimDevice(monotonic=lambda: clock[0])
    device.ptz_move(1, PtzVector(pan=1.0, zoom=-0.5))
    clock[0] += 1.0
    status = device.ptz_status(1)
    assert status.moving
    assert status.position.pan == pytest.approx(0.5)
    assert status.position.zoom == pytest.approx(-0.25)
    clock[0] += 10.0
    assert device.ptz_status(1).position.pan == 1.0  # clamped at the end stop


def test_recordings_are_aligned_and_clipped() -> None:
    now = datetime(2026, 3, 1, 12, 10, tzinfo=UTC)
    device = SimDevice(SimDeviceConfig(recording_days=1), wall=lambda: now)
    found = device.search_recordings(1, now - timedelta(hours=1), now + timedelta(hours=1))
    eleven = datetime(2026, 3, 1, 11, 0, tzinfo=UTC)
    assert found[0] == (eleven, eleven + timedelta(minutes=20))
    assert found[-1] == (datetime(2026, 3, 1, 12, 0, tzinfo=UTC), now)  # still recording
    assert device.search_recordings(1, now - timedelta(days=5), now - timedelta(days=4)) == []


async def test_delay_knob_slows_every_call() -> None:
    recorder = SimRecorder()
    recorder.delay = 0.2
    loop = asyncio.get_running_loop()
    async with recorder:
        started = loop.time()
        await recorder.device_info()
        assert loop.time() - started >= 0.2


async def test_closing_the_recorder_releases_open_talk() -> None:
    recorder = SimRecorder()
    async with recorder:
        await recorder.open_talk(1)
    assert not recorder.device.talk_is_open(1)
