"""Fixtures for the session tests: a simulated recorder with a real RTSP/H.264 server."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from nvrshare.firmware_shim.backends.sim import SimRecorder
from nvrshare.simulators.recorder import RecorderSimConfig, RecorderSimulator

RECORDER_PASSWORD = "rec-secret-1"


@pytest.fixture
async def recorder_sim() -> AsyncIterator[RecorderSimulator]:
    config = RecorderSimConfig(channels=2, password=RECORDER_PASSWORD, heartbeat=60.0)
    async with RecorderSimulator(config) as sim:
        yield sim


@pytest.fixture
async def recorder(recorder_sim: RecorderSimulator) -> AsyncIterator[SimRecorder]:
    backend = SimRecorder(
        recorder_sim.device,
        rtsp_base=recorder_sim.rtsp.url(""),
        username="admin",
        password=RECORDER_PASSWORD,
        logger=logging.getLogger("test.recorder"),
    )
    async with backend:
        yield backend
