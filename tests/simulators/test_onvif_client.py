"""The ONVIF simulator against the real, unmodified onvif-zeep-async client over loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import pytest
import zeep.exceptions
from onvif import ONVIFCamera
from onvif.util import is_auth_error

from nvrshare.simulators.onvif import (
    MotionTopic,
    OnvifCameraServer,
    OnvifCameraState,
    OnvifDeviceInfo,
    OnvifProfile,
    OnvifSimulatorConfig,
    default_profiles,
)
from tests.simulators.onvif_client import connected_camera

USER, PASSWORD = "operator", "p4ss-w0rd"
MAIN, SUB = "rtsp://127.0.0.1:8554/cam/main", "rtsp://127.0.0.1:8554/cam/sub"


@pytest.fixture
def state() -> OnvifCameraState:
    profiles = (
        *default_profiles(MAIN, SUB),
        OnvifProfile(
            token="Profile_mjpeg",
            name="mjpeg",
            video_source="VideoSource_1",
            stream_uri="rtsp://127.0.0.1:8554/cam/mjpeg",
            encoding="JPEG",
            width=640,
            height=360,
        ),
    )
    return OnvifCameraState(
        profiles=profiles,
        device=OnvifDeviceInfo(serial_number="ONVIFSIM42", mac="02:00:00:aa:bb:cc"),
    )


@pytest.fixture
async def server(state: OnvifCameraState) -> AsyncIterator[OnvifCameraServer]:
    config = OnvifSimulatorConfig(username=USER, password=PASSWORD, max_pull_timeout=5.0)
    async with OnvifCameraServer(state, config) as running:
        yield running


@pytest.fixture
async def camera(server: OnvifCameraServer) -> AsyncIterator[ONVIFCamera]:
    async with connected_camera(server.port, USER, PASSWORD) as cam:
        yield cam


async def test_xaddrs_are_absolute_and_reachable(
    camera: ONVIFCamera, server: OnvifCameraServer
) -> None:
    assert camera.xaddrs["http://www.onvif.org/ver10/media/wsdl"] == (
        f"{server.base_url}/onvif/media_service"
    )
    capabilities = await camera.get_capabilities()
    assert capabilities is not None
    assert capabilities["PTZ"]["XAddr"] == f"{server.base_url}/onvif/ptz_service"
    assert capabilities["Events"]["WSPullPointSupport"] is True


async def test_device_information_and_network(camera: ONVIFCamera) -> None:
    device = await camera.create_devicemgmt_service()
    info = await device.GetDeviceInformation()
    assert info.SerialNumber == "ONVIFSIM42"
    assert info.Manufacturer == "nvrshare"
    interfaces = await device.GetNetworkInterfaces()
    assert interfaces[0].Info.HwAddress == "02:00:00:aa:bb:cc"
    clock = await device.authless_GetSystemDateAndTime()
    assert clock.UTCDateTime.Date.Year >= 2024


async def test_profiles_and_stream_uri(camera: ONVIFCamera) -> None:
    media = await camera.create_media_service()
    profiles = await media.GetProfiles()
    assert [p.token for p in profiles] == ["Profile_1", "Profile_2", "Profile_mjpeg"]
    main = profiles[0]
    assert main.VideoEncoderConfiguration.Encoding == "H264"
    assert main.VideoEncoderConfiguration.Resolution.Width == 1920
    assert main.VideoSourceConfiguration.SourceToken == "VideoSource_1"
    assert main.PTZConfiguration.DefaultContinuousPanTiltVelocitySpace.endswith(
        "VelocityGenericSpace"
    )
    request = media.create_type("GetStreamUri")
    request.ProfileToken = "Profile_2"
    request.StreamSetup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
    uri = await media.GetStreamUri(request)
    assert uri.Uri == SUB
    capabilities = await media.GetServiceCapabilities()
    assert capabilities.StreamingCapabilities.RTP_RTSP_TCP is True
    with pytest.raises(zeep.exceptions.Fault):
        await media.GetStreamUri({"ProfileToken": "nope", "StreamSetup": request.StreamSetup})


async def test_ptz_moves_and_status_follows(camera: ONVIFCamera) -> None:
    ptz = await camera.create_ptz_service()
    token = {"ProfileToken": "Profile_1"}
    start = await ptz.GetStatus(token)
    assert start.Position.PanTilt.x == 0
    await ptz.ContinuousMove({**token, "Velocity": {"PanTilt": {"x": 1.0, "y": -0.5}}})
    await asyncio.sleep(0.2)
    moving = await ptz.GetStatus(token)
    assert moving.MoveStatus.PanTilt == "MOVING"
    assert moving.Position.PanTilt.x > 0.05
    assert moving.Position.PanTilt.y < -0.02
    await ptz.Stop({**token, "PanTilt": True, "Zoom": True})
    stopped = await ptz.GetStatus(token)
    assert stopped.MoveStatus.PanTilt == "IDLE"
    await asyncio.sleep(0.1)
    assert (await ptz.GetStatus(token)).Position.PanTilt.x == stopped.Position.PanTilt.x

    preset = await ptz.SetPreset({**token, "PresetName": "gate"})
    await ptz.AbsoluteMove({**token, "Position": {"PanTilt": {"x": -0.8, "y": 0.4}}})
    assert (await ptz.GetStatus(token)).Position.PanTilt.x == pytest.approx(-0.8)
    presets = await ptz.GetPresets(token)
    assert [(p.token, p.Name) for p in presets] == [(preset, "gate")]
    await ptz.GotoPreset({**token, "PresetToken": preset})
    back = await ptz.GetStatus(token)
    assert back.Position.PanTilt.x == pytest.approx(stopped.Position.PanTilt.x)
    # The sub stream looks through the same head.
    sub = await ptz.GetStatus({"ProfileToken": "Profile_2"})
    assert sub.Position.PanTilt.x == back.Position.PanTilt.x
    with pytest.raises(zeep.exceptions.Fault):
        await ptz.GotoPreset({**token, "PresetToken": "99"})
    # A vector in a space the camera does not offer is refused, not misread.
    degrees = "http://www.onvif.org/ver10/tptz/PanTiltSpaces/VelocitySpaceDegrees"
    with pytest.raises(zeep.exceptions.Fault):
        await ptz.ContinuousMove(
            {**token, "Velocity": {"PanTilt": {"x": 30, "y": 0, "space": degrees}}}
        )


async def test_motion_event_through_pullpoint_manager(
    camera: ONVIFCamera, state: OnvifCameraState
) -> None:
    lost: list[bool] = []
    manager = await camera.create_pullpoint_manager(
        dt.timedelta(seconds=60), lambda: lost.append(True)
    )
    try:
        service = manager.get_service()
        initial = await service.PullMessages({"MessageLimit": 10, "Timeout": "PT1S"})
        assert [m.Message._value_1.PropertyOperation for m in initial.NotificationMessage] == [
            "Initialized"
        ]
        loop = asyncio.get_running_loop()
        loop.call_later(0.1, state.trigger_motion)
        started = loop.time()
        pulled = await service.PullMessages({"MessageLimit": 10, "Timeout": "PT5S"})
        # Woken by the trigger, not the 5 s timeout (slack for slow zeep round trips).
        assert loop.time() - started < 4.0
        (message,) = pulled.NotificationMessage
        assert message.Topic._value_1 == "tns1:VideoSource/MotionAlarm"
        payload = message.Message._value_1
        assert payload.Source.SimpleItem[0].Name == "Source"
        assert payload.Source.SimpleItem[0].Value == "VideoSource_1"
        assert (payload.Data.SimpleItem[0].Name, payload.Data.SimpleItem[0].Value) == (
            "State",
            "true",
        )
        state.trigger_motion(False, topic=MotionTopic.CELL_MOTION)
        pulled = await service.PullMessages({"MessageLimit": 10, "Timeout": "PT1S"})
        (message,) = pulled.NotificationMessage
        assert message.Topic._value_1 == "tns1:RuleEngine/CellMotionDetector/Motion"
        assert message.Message._value_1.Data.SimpleItem[0].Value == "false"
        # Renew through the manager's own path, then check the new termination time.
        await manager._call_subscription_renew()
        assert not lost
    finally:
        await manager.shutdown()
    assert len(state.broker) == 0  # Unsubscribe removed it


async def test_empty_pull_waits_for_its_timeout(camera: ONVIFCamera) -> None:
    events = await camera.create_events_service()
    result = await events.CreatePullPointSubscription({"InitialTerminationTime": "PT10S"})
    assert (result.TerminationTime - result.CurrentTime).total_seconds() == pytest.approx(10, abs=1)
    camera.xaddrs["http://www.onvif.org/ver10/events/wsdl/PullPointSubscription"] = (
        result.SubscriptionReference.Address._value_1
    )
    pullpoint = await camera.create_pullpoint_service()
    await pullpoint.PullMessages({"MessageLimit": 10, "Timeout": "PT0S"})  # drain Initialized
    loop = asyncio.get_running_loop()
    started = loop.time()
    empty = await pullpoint.PullMessages({"MessageLimit": 10, "Timeout": "PT0.3S"})
    assert 0.25 < loop.time() - started < 5.0  # the upper bound only catches a hang
    assert empty.NotificationMessage == []
    subscription = await camera.create_subscription_service("PullPointSubscription")
    await subscription.Unsubscribe()
    with pytest.raises(zeep.exceptions.Fault):
        await pullpoint.PullMessages({"MessageLimit": 10, "Timeout": "PT0S"})


async def test_wrong_password_is_not_authorized(server: OnvifCameraServer) -> None:
    intruder = ONVIFCamera("127.0.0.1", server.port, USER, "guess", no_cache=True)
    try:
        device = await intruder.create_devicemgmt_service()
        # The clock is public: clients need it before they can sign anything.
        assert (await device.GetSystemDateAndTime()).UTCDateTime is not None
        with pytest.raises(zeep.exceptions.Fault) as caught:
            await device.GetDeviceInformation()
        assert is_auth_error(caught.value)
        with pytest.raises(zeep.exceptions.Fault):
            await device.authless_GetDeviceInformation()
    finally:
        await intruder.close()


async def test_camera_with_a_skewed_clock_still_authenticates() -> None:
    """adjust_time: the client signs with the camera's clock, read without auth first."""
    skew = dt.timedelta(hours=3)
    state = OnvifCameraState(
        profiles=default_profiles(MAIN, SUB),
        wall_clock=lambda: dt.datetime.now(dt.UTC) + skew,
    )
    config = OnvifSimulatorConfig(username=USER, password=PASSWORD, clock_skew=30.0)
    async with OnvifCameraServer(state, config) as server:
        naive = ONVIFCamera("127.0.0.1", server.port, USER, PASSWORD, no_cache=True)
        adjusted = ONVIFCamera(
            "127.0.0.1", server.port, USER, PASSWORD, no_cache=True, adjust_time=True
        )
        try:
            device = await naive.create_devicemgmt_service()
            with pytest.raises(zeep.exceptions.Fault):
                await device.GetDeviceInformation()
            await adjusted.update_xaddrs()
            device = await adjusted.create_devicemgmt_service()
            assert (await device.GetDeviceInformation()).Model
        finally:
            await naive.close()
            await adjusted.close()


async def test_restarted_camera_forgets_subscriptions(state: OnvifCameraState) -> None:
    config = OnvifSimulatorConfig(username=USER, password=PASSWORD)
    async with OnvifCameraServer(state, config):
        state.broker.create(state.clock(), seconds=60.0)
        assert len(state.broker) == 1
    async with OnvifCameraServer(state, config):
        assert len(state.broker) == 0
        state.broker.create(state.clock(), seconds=60.0)
