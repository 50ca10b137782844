"""The onvif backend against the ONVIF camera simulator: the shared contract plus its specifics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from nvrshare.firmware_shim import (
    AlarmEvent,
    AlarmKind,
    AuthFailed,
    BadResponse,
    Capability,
    ConfigError,
    DeviceUnreachable,
    NotSupported,
    PtzVector,
    RecorderConfig,
    ShimUsageError,
    StreamKind,
    open_recorder,
)
from nvrshare.firmware_shim.backends.onvif import OnvifRecorder, create
from nvrshare.firmware_shim.simdevice import SimDevice, SimDeviceConfig
from nvrshare.simulators.onvif import (
    MotionTopic,
    OnvifCameraServer,
    OnvifCameraState,
    OnvifDeviceInfo,
    OnvifProfile,
    OnvifSimulatorConfig,
    RecordingArchive,
    default_profiles,
)
from nvrshare.simulators.onvif.pullpoint import PullPointBroker
from tests.firmware_shim.contract import ContractTarget, RecorderContract
from tests.support.net import free_port

USER, PASSWORD = "viewer", "s3cret-pw"
SERIAL = "ONVIF-SIM-0042"


def archive_of(device: SimDevice) -> RecordingArchive:
    """Edge storage over a SimDevice's recordings index: VideoSource_<n> is channel n."""

    def channel(video_source: str) -> int:
        return int(video_source.rsplit("_", 1)[1])

    def segments(video_source: str) -> list[tuple[datetime, datetime]]:
        now = datetime.now(UTC)
        days = device.config.recording_days
        return device.search_recordings(
            channel(video_source), now - timedelta(days=days), now, limit=10_000
        )

    def replay_uri(video_source: str, start: datetime, end: datetime) -> str:
        return f"rtsp://127.0.0.1:8554/Streaming/tracks/{channel(video_source)}01"

    return RecordingArchive(segments=segments, replay_uri=replay_uri)


def _state(*, recordings: bool = True) -> OnvifCameraState:
    profiles = (
        *default_profiles("rtsp://127.0.0.1:8554/ch1/main", "rtsp://127.0.0.1:8554/ch1/sub"),
        # Listed before its main profile on purpose: main/sub come from resolution, not order.
        OnvifProfile(
            token="ch2_sub",
            name="ch2 sub",
            video_source="VideoSource_2",
            stream_uri="rtsp://127.0.0.1:8554/ch2/sub",
            width=704,
            height=576,
            ptz=False,
        ),
        OnvifProfile(
            token="ch2_main",
            name="ch2 main",
            video_source="VideoSource_2",
            stream_uri="rtsp://127.0.0.1:8554/ch2/main",
            width=2560,
            height=1440,
            ptz=False,
        ),
        OnvifProfile(  # not H.264: ignored
            token="ch1_mjpeg",
            name="mjpeg",
            video_source="VideoSource_1",
            stream_uri="rtsp://127.0.0.1:8554/ch1/mjpeg",
            encoding="JPEG",
            width=3840,
            height=2160,
        ),
    )
    storage = SimDevice(SimDeviceConfig(serial=SERIAL, channels=2, recording_days=1))
    return OnvifCameraState(
        profiles=profiles,
        device=OnvifDeviceInfo(serial_number=SERIAL),
        recordings=archive_of(storage) if recordings else None,
    )


def _config(port: int, password: str = PASSWORD, **settings: str) -> RecorderConfig:
    return RecorderConfig(
        backend="onvif",
        host="127.0.0.1",
        port=port,
        username=USER,
        password=password,
        timeout=5.0,
        settings={"pull_timeout": "1", "subscription_seconds": "10", **settings},
    )


@pytest.fixture
async def camera() -> AsyncIterator[OnvifCameraServer]:
    config = OnvifSimulatorConfig(username=USER, password=PASSWORD, max_pull_timeout=5.0)
    async with OnvifCameraServer(_state(), config) as server:
        yield server


class TestOnvifContract(RecorderContract):
    @pytest.fixture
    async def target(self, camera: OnvifCameraServer) -> AsyncIterator[ContractTarget]:
        async def trigger(channel: int, active: bool) -> None:
            camera.state.trigger_motion(active, video_source=f"VideoSource_{channel}")

        now = datetime.now(UTC)
        async with open_recorder(_config(camera.port)) as recorder:
            yield ContractTarget(
                recorder=recorder,
                serial=SERIAL,
                channel_count=2,
                trigger_motion=trigger,
                recording_channel=2,  # found through its video source, not by position
                recording_window=(now - timedelta(hours=6), now),
            )


async def test_capabilities_channels_and_streams(camera: OnvifCameraServer) -> None:
    async with open_recorder(_config(camera.port)) as recorder:
        assert recorder.capabilities == {
            Capability.LIVE,
            Capability.PTZ,
            Capability.PTZ_PRESETS,
            Capability.ALARMS,
            Capability.RECORDINGS,
        }
        info = await recorder.device_info()
        assert info.manufacturer == "nvrshare"
        assert info.mac == "02:00:5e:00:00:01"
        first, second = await recorder.channels()
        assert Capability.PTZ in first.capabilities
        assert Capability.PTZ not in second.capabilities
        main = await recorder.live_source(2, StreamKind.MAIN)
        sub = await recorder.live_source(2, StreamKind.SUB)
        assert (main.url, sub.url) == (
            "rtsp://127.0.0.1:8554/ch2/main",
            "rtsp://127.0.0.1:8554/ch2/sub",
        )
        assert (main.username, main.password) == (USER, PASSWORD)
        assert (await recorder.live_source(1)).url.endswith("/ch1/main")  # not the MJPEG one
        with pytest.raises(NotSupported):
            await recorder.ptz_move(2, PtzVector(pan=0.5))
        with pytest.raises(ShimUsageError):
            await recorder.live_source(0)


async def test_rtsp_port_override(camera: OnvifCameraServer) -> None:
    config = RecorderConfig(
        backend="onvif",
        host="127.0.0.1",
        port=camera.port,
        username=USER,
        password=PASSWORD,
        rtsp_port=10554,
    )
    async with open_recorder(config) as recorder:
        assert (await recorder.live_source(1)).url == "rtsp://127.0.0.1:10554/ch1/main"


async def test_ptz_speed_maps_to_velocity_and_zero_stops(camera: OnvifCameraServer) -> None:
    async with open_recorder(_config(camera.port)) as recorder:
        await recorder.ptz_move(1, PtzVector(pan=-1.0, zoom=0.5))
        await asyncio.sleep(0.2)
        status = await recorder.ptz_status(1)
        assert status.moving
        assert status.position.pan < -0.05
        assert status.position.zoom > 0.02
        await recorder.ptz_move(1, PtzVector())
        assert not (await recorder.ptz_status(1)).moving
        await recorder.ptz_set_preset(1, 3)
        assert [(p.number, p.name) for p in await recorder.ptz_presets(1)] == [(3, "Preset 3")]


async def test_cell_motion_payload_maps_to_its_channel(camera: OnvifCameraServer) -> None:
    async with open_recorder(_config(camera.port)) as recorder:
        events = recorder.alarm_events()
        got: list[AlarmEvent] = []

        async def consume() -> None:
            async for event in events:
                got.append(event)
                if not event.active:
                    return

        async def trigger() -> None:
            await _subscription_id(camera.state)
            camera.state.trigger_motion(video_source="VideoSource_2", topic=MotionTopic.CELL_MOTION)
            camera.state.trigger_motion(False, video_source="VideoSource_2")

        try:
            async with asyncio.timeout(10), asyncio.TaskGroup() as tg:
                tg.create_task(consume())
                tg.create_task(trigger())
        finally:
            with contextlib.suppress(Exception):
                await events.aclose()  # type: ignore[attr-defined]
        assert [(e.kind, e.active, e.channel) for e in got] == [
            (AlarmKind.MOTION, True, 2),
            (AlarmKind.MOTION, False, 2),
        ]
        assert got[0].vendor_type == "tns1:RuleEngine/CellMotionDetector/Motion"
    # Closing the iterator unsubscribed.
    assert len(camera.state.broker) == 0


async def _subscription_id(state: OnvifCameraState, *, not_: str = "") -> str:
    """The id of the one live subscription once it exists (and differs from `not_`)."""
    while True:
        ids = [sid for sid in state.broker._subscriptions if sid != not_]
        if ids:
            return ids[0]
        await asyncio.sleep(0.02)


async def _close(events: AsyncIterator[AlarmEvent], pending: asyncio.Future[AlarmEvent]) -> None:
    pending.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await pending
    await events.aclose()  # type: ignore[attr-defined]


async def test_subscription_is_renewed_before_it_expires() -> None:
    # The device grants only 5 s whatever we ask: the backend must renew, not resubscribe.
    # It renews at 80 % less a second, checked between 1 s pulls: about 3 s in, which
    # leaves ~2 s of slack for a slow machine before the grant runs out.
    state = _state()
    state.broker = PullPointBroker(max_termination=5.0)
    config = OnvifSimulatorConfig(username=USER, password=PASSWORD, max_pull_timeout=5.0)
    async with (
        OnvifCameraServer(state, config) as camera,
        open_recorder(_config(camera.port)) as recorder,
    ):
        events = recorder.alarm_events()
        pending = asyncio.ensure_future(anext(events))
        try:
            async with asyncio.timeout(20):
                subscription_id = await _subscription_id(state)
                first_expiry = state.broker.get(subscription_id, state.clock()).expires_at
                await asyncio.sleep(6.0)  # longer than the granted lifetime
                subscription = state.broker.get(subscription_id, state.clock())
                assert subscription.expires_at > first_expiry
                state.trigger_motion()
                event = await pending
                assert (event.kind, event.active, event.channel) == (AlarmKind.MOTION, True, 1)
        finally:
            await _close(events, pending)


async def test_lost_subscription_is_recreated(camera: OnvifCameraServer) -> None:
    state = camera.state
    async with open_recorder(_config(camera.port)) as recorder:
        assert isinstance(recorder, OnvifRecorder)
        events = recorder.alarm_events()
        pending = asyncio.ensure_future(anext(events))
        try:
            async with asyncio.timeout(10):
                first_id = await _subscription_id(state)
                # As if the device rebooted: the subscription is gone.
                state.broker.unsubscribe(first_id, state.clock())
                second_id = await _subscription_id(state, not_=first_id)
                assert second_id != first_id
                state.trigger_motion()
                event = await pending
                assert (event.kind, event.active, event.channel) == (AlarmKind.MOTION, True, 1)
        finally:
            await _close(events, pending)


async def test_wrong_password_is_auth_failed(camera: OnvifCameraServer) -> None:
    with pytest.raises(AuthFailed):
        async with open_recorder(_config(camera.port, password="guess")):
            pass


async def test_nobody_listening_is_unreachable() -> None:
    with pytest.raises(DeviceUnreachable):
        async with open_recorder(_config(free_port())):
            pass


async def test_not_connected_is_a_usage_error() -> None:
    recorder = create(_config(free_port()), logger=logging.getLogger("test"))
    with pytest.raises(ShimUsageError):
        await recorder.device_info()


@pytest.mark.parametrize("settings", [{"pull_timeout": "x"}, {"subscription_seconds": "1"}])
def test_bad_settings_are_config_errors(settings: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        create(_config(80, **settings), logger=logging.getLogger("test"))


async def test_empty_serial_falls_back_to_the_mac() -> None:
    state = OnvifCameraState(
        profiles=default_profiles("rtsp://127.0.0.1/a", "rtsp://127.0.0.1/b"),
        device=OnvifDeviceInfo(serial_number="", mac="02:00:5e:aa:bb:cc"),
    )
    config = OnvifSimulatorConfig(username=USER, password=PASSWORD)
    async with (
        OnvifCameraServer(state, config) as camera,
        open_recorder(_config(camera.port)) as recorder,
    ):
        assert (await recorder.device_info()).serial == "02005EAABBCC"


async def test_hostile_stream_uri_is_a_bad_response() -> None:
    state = OnvifCameraState(profiles=default_profiles("http://elsewhere/x", "rtsp://127.0.0.1/b"))
    config = OnvifSimulatorConfig(username=USER, password=PASSWORD)
    async with (
        OnvifCameraServer(state, config) as camera,
        open_recorder(_config(camera.port)) as recorder,
    ):
        with pytest.raises(BadResponse):
            await recorder.live_source(1, StreamKind.MAIN)
        state.set_stream_uri("Profile_1", "rtsp://127.0.0.1/" + "a" * 5000)
        with pytest.raises(BadResponse):
            await recorder.live_source(1, StreamKind.MAIN)
        assert (await recorder.live_source(1, StreamKind.SUB)).url == "rtsp://127.0.0.1/b"
