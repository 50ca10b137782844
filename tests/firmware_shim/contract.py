"""The backend contract: one test suite every firmware_shim backend must pass.

To plug a backend in, subclass `RecorderContract` in a `test_*.py` module and
define an async fixture `target` that yields a `ContractTarget` with an
*opened* recorder and the hooks to drive its device:

    class TestMyBackend(RecorderContract):
        @pytest.fixture
        async def target(self) -> AsyncIterator[ContractTarget]:
            async with open_recorder(config) as recorder:
                yield ContractTarget(recorder=recorder, serial="...", channel_count=2,
                                     trigger_motion=..., ...)

Tests for functions outside `recorder.capabilities` are skipped, apart from
`test_undeclared_functions_raise_not_supported`, which checks the declaration
is honest.  Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from nvrshare.firmware_shim import (
    AlarmEvent,
    AlarmKind,
    Capability,
    DeviceBusy,
    NoSuchChannel,
    NotFound,
    NotSupported,
    PtzVector,
    Recorder,
    StreamKind,
)

__all__ = ["ContractTarget", "RecorderContract"]

WAIT = 5.0


@dataclass(kw_only=True)
class ContractTarget:
    """An opened recorder plus the hooks the contract needs to drive its device.

    trigger_motion(channel, active): make the device raise/clear motion.
    talk_received(channel): bytes the device's speaker has received so far.
    recording_window: a window known to hold recordings on `recording_channel`.
    """

    recorder: Recorder
    serial: str
    channel_count: int
    trigger_motion: Callable[[int, bool], Awaitable[None]] | None = None
    ptz_channel: int = 1
    talk_channel: int = 1
    talk_received: Callable[[int], bytes] | None = None
    recording_channel: int = 1
    recording_window: tuple[datetime, datetime] | None = None


def _require(target: ContractTarget, capability: Capability) -> None:
    if capability not in target.recorder.capabilities:
        pytest.skip(f"{target.recorder.backend_name} does not support {capability}")


async def _eventually(check: Callable[[], Awaitable[bool]], within: float = WAIT) -> None:
    """Poll `check` (device state has no change notification) until true or timeout."""
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110 - polling a remote device
            await asyncio.sleep(0.05)


class RecorderContract:
    """Behaviour every backend shares. Subclasses provide the `target` fixture."""

    async def test_device_info(self, target: ContractTarget) -> None:
        info = await target.recorder.device_info()
        assert info.serial == target.serial
        assert info.model
        assert info.firmware_version

    async def test_channels_are_numbered_in_order(self, target: ContractTarget) -> None:
        channels = await target.recorder.channels()
        assert [c.number for c in channels] == list(range(1, target.channel_count + 1))
        assert all(c.name for c in channels)
        assert all(c.capabilities <= target.recorder.capabilities for c in channels)

    async def test_live_sources(self, target: ContractTarget) -> None:
        _require(target, Capability.LIVE)
        main = await target.recorder.live_source(1, StreamKind.MAIN)
        sub = await target.recorder.live_source(1, StreamKind.SUB)
        assert main.url.startswith("rtsp://")
        assert sub.url.startswith("rtsp://")
        assert main.url != sub.url

    async def test_unknown_channel_is_refused(self, target: ContractTarget) -> None:
        with pytest.raises(NoSuchChannel):
            await target.recorder.live_source(target.channel_count + 1)

    async def test_ptz_move_changes_status_and_stop_stops(self, target: ContractTarget) -> None:
        _require(target, Capability.PTZ)
        recorder, ch = target.recorder, target.ptz_channel
        before = await recorder.ptz_status(ch)
        direction = -1.0 if before.position.pan > 0.5 else 1.0
        await recorder.ptz_move(ch, PtzVector(pan=direction))

        async def moved() -> bool:
            now = await recorder.ptz_status(ch)
            return abs(now.position.pan - before.position.pan) > 0.02

        await _eventually(moved)
        await recorder.ptz_stop(ch)
        stopped = await recorder.ptz_status(ch)
        assert not stopped.moving
        await asyncio.sleep(0.2)
        later = await recorder.ptz_status(ch)
        assert abs(later.position.pan - stopped.position.pan) < 0.02

    async def test_ptz_presets_round_trip(self, target: ContractTarget) -> None:
        _require(target, Capability.PTZ_PRESETS)
        recorder, ch = target.recorder, target.ptz_channel
        await recorder.ptz_stop(ch)
        home = (await recorder.ptz_status(ch)).position
        await recorder.ptz_set_preset(ch, 7, "door")
        assert 7 in [p.number for p in await recorder.ptz_presets(ch)]
        await recorder.ptz_move(ch, PtzVector(tilt=1.0 if home.tilt < 0.5 else -1.0))

        async def away() -> bool:
            status = await recorder.ptz_status(ch)
            return abs(status.position.tilt - home.tilt) > 0.05

        await _eventually(away)
        await recorder.ptz_stop(ch)
        await recorder.ptz_goto_preset(ch, 7)

        async def back() -> bool:
            status = await recorder.ptz_status(ch)
            return abs(status.position.tilt - home.tilt) < 0.02

        await _eventually(back)

    async def test_ptz_goto_unset_preset_is_not_found(self, target: ContractTarget) -> None:
        _require(target, Capability.PTZ_PRESETS)
        with pytest.raises(NotFound):
            await target.recorder.ptz_goto_preset(target.ptz_channel, 199)

    async def test_motion_alarm_arrives(self, target: ContractTarget) -> None:
        _require(target, Capability.ALARMS)
        assert target.trigger_motion is not None
        trigger = target.trigger_motion
        events = target.recorder.alarm_events()
        got: asyncio.Future[AlarmEvent] = asyncio.get_running_loop().create_future()

        async def consume() -> None:
            async for event in events:
                if event.kind is AlarmKind.MOTION and event.active and not got.done():
                    got.set_result(event)
                    return

        async def keep_triggering() -> None:
            # The subscription connects asynchronously: trigger until it is heard.
            while not got.done():
                await trigger(1, True)
                await asyncio.sleep(0.2)

        try:
            async with asyncio.timeout(WAIT * 2), asyncio.TaskGroup() as tg:
                tg.create_task(consume())
                tg.create_task(keep_triggering())
        finally:
            with contextlib.suppress(Exception):
                await events.aclose()  # type: ignore[attr-defined]
        event = got.result()
        assert event.channel == 1
        assert event.at.tzinfo is not None
        await trigger(1, False)

    async def test_recordings_search_and_playback(self, target: ContractTarget) -> None:
        _require(target, Capability.RECORDINGS)
        assert target.recording_window is not None
        start, end = target.recording_window
        ch = target.recording_channel
        segments = await target.recorder.search_recordings(ch, start, end)
        assert segments
        assert all(s.channel == ch and s.start < end and s.end > start for s in segments)
        assert [s.start for s in segments] == sorted(s.start for s in segments)
        first = segments[0]
        source = await target.recorder.playback_source(ch, first.start, first.end)
        assert source.url.startswith("rtsp://")
        future = datetime.now(UTC) + timedelta(days=30)
        later = future + timedelta(hours=1)
        assert await target.recorder.search_recordings(ch, future, later) == []
        limited = await target.recorder.search_recordings(ch, start, end, limit=1)
        assert len(limited) == 1

    async def test_two_way_audio(self, target: ContractTarget) -> None:
        _require(target, Capability.TALK)
        assert target.talk_received is not None
        received = target.talk_received
        ch = target.talk_channel
        already = len(received(ch))
        sent = bytes(range(256)) * 8
        async with asyncio.timeout(WAIT * 2):
            async with await target.recorder.open_talk(ch) as talk:
                with pytest.raises(DeviceBusy):
                    await target.recorder.open_talk(ch)
                await talk.write(sent)
                mic = await talk.read()
                assert mic

                async def arrived() -> bool:
                    return len(received(ch)) >= already + len(sent)

                await _eventually(arrived)
            assert received(ch)[already : already + len(sent)] == sent
            # Closed means released: the device accepts a new session.
            again = await target.recorder.open_talk(ch)
            await again.close()

    async def test_undeclared_functions_raise_not_supported(self, target: ContractTarget) -> None:
        recorder = target.recorder
        now = datetime.now(UTC)
        probes: dict[Capability, Callable[[], Awaitable[object]]] = {
            Capability.RECORDINGS: lambda: recorder.search_recordings(1, now, now),
            Capability.PTZ: lambda: recorder.ptz_stop(1),
            Capability.PTZ_PRESETS: lambda: recorder.ptz_presets(1),
            Capability.TALK: lambda: recorder.open_talk(1),
        }
        for capability, probe in probes.items():
            if capability not in recorder.capabilities:
                with pytest.raises(NotSupported):
                    await probe()
