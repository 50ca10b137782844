"""isapi backend specifics: failures mapped to shim errors, reconnects, paging, takeover."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web

from nvrshare.firmware_shim import (
    AlarmEvent,
    AlarmKind,
    AuthFailed,
    BadResponse,
    ConfigError,
    DeviceBusy,
    DeviceError,
    DeviceTimeout,
    DeviceUnreachable,
    NoSuchChannel,
    NotSupported,
    PtzVector,
    Recorder,
    RecorderConfig,
    ShimUsageError,
    open_recorder,
)
from nvrshare.simulators.recorder import RecorderSimConfig, RecorderSimulator
from tests.support.net import free_port

PASSWORD = "backend-pw"


@pytest.fixture
async def nvr() -> AsyncIterator[RecorderSimulator]:
    config = RecorderSimConfig(channels=2, password=PASSWORD, heartbeat=0.3)
    async with RecorderSimulator(config) as simulator:
        yield simulator


def config(
    port: int, password: str = PASSWORD, *, timeout: float = 5.0, **settings: str
) -> RecorderConfig:
    # A generous per-request timeout: it bounds only success paths, except where a test
    # needs it to fire (and passes a shorter one).
    return RecorderConfig(
        backend="isapi",
        host="127.0.0.1",
        port=port,
        username="admin",
        password=password,
        timeout=timeout,
        settings={"alarm_watchdog": "1", **settings},
    )


async def until(condition: Callable[[], bool], what: str, within: float = 10.0) -> None:
    """Poll `condition` (the device and backend act asynchronously) with a generous deadline."""
    try:
        async with asyncio.timeout(within):
            while not condition():  # noqa: ASYNC110 - polling state we do not own
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"not within {within} s: {what}") from None


async def test_wrong_password_is_auth_failed(nvr: RecorderSimulator) -> None:
    with pytest.raises(AuthFailed):
        async with open_recorder(config(nvr.http_port, password="wrong")):
            pass


async def test_nothing_listening_is_unreachable() -> None:
    with pytest.raises(DeviceUnreachable):
        async with open_recorder(config(free_port())):
            pass


async def test_stalled_device_times_out(nvr: RecorderSimulator) -> None:
    # The timeout must fire here, so it is short; it still leaves slack for the success paths.
    async with open_recorder(config(nvr.http_port, timeout=3.0)) as recorder:
        nvr.isapi.faults.stall = True
        with pytest.raises(DeviceTimeout):
            await recorder.device_info()
        nvr.isapi.faults.stall = False
        assert (await recorder.device_info()).serial == nvr.config.serial


async def test_ptz_on_a_fixed_camera_is_not_supported(nvr: RecorderSimulator) -> None:
    async with open_recorder(config(nvr.http_port)) as recorder:
        with pytest.raises(NotSupported):
            await recorder.ptz_move(2, PtzVector(pan=0.5))


async def test_search_pages_through_many_results(nvr: RecorderSimulator) -> None:
    now = datetime.now(UTC)
    async with open_recorder(config(nvr.http_port)) as recorder:
        segments = await recorder.search_recordings(1, now - timedelta(days=3), now, limit=120)
    assert len(segments) == 120  # three pages of at most 50
    assert len({s.start for s in segments}) == 120
    assert segments == sorted(segments, key=lambda s: s.start)


@contextlib.asynccontextmanager
async def collecting(recorder: Recorder) -> AsyncIterator[asyncio.Queue[AlarmEvent]]:
    """Consume `alarm_events()` in a task (the watchdog runs only while someone reads)."""
    queue: asyncio.Queue[AlarmEvent] = asyncio.Queue()

    async def consume() -> None:
        async with contextlib.aclosing(recorder.alarm_events()) as events:  # type: ignore[type-var]
            async for event in events:
                queue.put_nowait(event)

    task = asyncio.create_task(consume())
    try:
        yield queue
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def next_motion(nvr: RecorderSimulator, queue: asyncio.Queue[AlarmEvent]) -> AlarmEvent:
    """Trigger motion until the backend reports it (connects are asynchronous)."""
    while not queue.empty():  # events left over from an earlier call are stale
        queue.get_nowait()
    async with asyncio.timeout(10):
        while True:
            nvr.device.trigger_alarm(AlarmKind.MOTION, channel=1)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):
                    event = await queue.get()
                    if event.kind is AlarmKind.MOTION:
                        return event


async def test_alert_stream_reconnects_after_a_drop_and_a_stall(
    nvr: RecorderSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="nvrshare.firmware_shim.isapi")

    def reconnects() -> int:
        return sum("reconnecting" in record.getMessage() for record in caplog.records)

    # A 2 s watchdog against 0.3 s heartbeats: a loaded machine does not trip it by accident.
    settings = {"alarm_watchdog": "2"}
    async with (
        open_recorder(config(nvr.http_port, **settings)) as recorder,
        collecting(recorder) as queue,
    ):
        await next_motion(nvr, queue)
        connections = nvr.isapi.alert_connections
        assert connections >= 1
        assert nvr.isapi.drop_alert_streams() == 1  # all subscribers share one stream
        await until(lambda: nvr.isapi.alert_connections > connections, "reconnect after the drop")
        await next_motion(nvr, queue)
        # A silent stream (no heartbeats) trips the watchdog; while stalled the device
        # also holds the reconnect, so release it once the backend has given up.
        connections, logged = nvr.isapi.alert_connections, reconnects()
        nvr.isapi.faults.stall = True
        await until(lambda: reconnects() > logged, "the watchdog gives up on the silent stream")
        nvr.isapi.faults.stall = False
        await until(lambda: nvr.isapi.alert_connections > connections, "reconnect after the stall")
        await next_motion(nvr, queue)


async def test_heartbeats_are_not_reported(nvr: RecorderSimulator) -> None:
    async with open_recorder(config(nvr.http_port)) as recorder, collecting(recorder) as queue:
        await asyncio.sleep(1.0)  # three heartbeats go by
        assert queue.empty()
        nvr.device.trigger_alarm(AlarmKind.VIDEO_LOSS, channel=2, active=True)
        nvr.device.trigger_alarm(AlarmKind.VIDEO_LOSS, channel=2, active=False)
        async with asyncio.timeout(10):
            first, second = await queue.get(), await queue.get()
        assert (first.kind, first.channel, first.active) == (AlarmKind.VIDEO_LOSS, 2, True)
        assert (second.channel, second.active) == (2, False)


async def test_talk_takes_over_a_stale_session_unless_told_not_to(nvr: RecorderSimulator) -> None:
    stale = nvr.device.talk_open(1)  # another client crashed with the session open
    async with open_recorder(config(nvr.http_port, talk_takeover="false")) as recorder:
        with pytest.raises(DeviceBusy):
            await recorder.open_talk(1)
    async with open_recorder(config(nvr.http_port)) as recorder:
        talk = await recorder.open_talk(1)
        assert stale.closed
        await talk.write(b"\xff" * 400)
        await talk.close()
        await talk.close()  # idempotent
        assert await talk.read() == b""
    await until(lambda: nvr.talk_received(1).endswith(b"\xff" * 400), "the talk audio arrives")
    assert not nvr.device.talk_is_open(1)


@contextlib.asynccontextmanager
async def fake_device(handler: web.RequestHandler) -> AsyncIterator[int]:  # type: ignore[type-arg]
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    "body",
    [
        b"<DeviceInfo><model>x</model>",  # truncated
        b'<!DOCTYPE d [<!ENTITY a "aaaa">]><DeviceInfo><serialNumber>&a;</serialNumber>'
        b"<model>m</model></DeviceInfo>",
        b"<DeviceInfo><model>m</model></DeviceInfo>",  # no serial
        b"<DeviceInfo>" + b"<x>y</x>" * 200_000 + b"</DeviceInfo>",  # over the size cap
    ],
)
async def test_hostile_device_answers_are_bad_responses(body: bytes) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/xml")

    async with fake_device(handler) as port:
        with pytest.raises(BadResponse):
            async with open_recorder(config(port)):
                pass


async def test_server_errors_are_device_errors() -> None:
    async def handler(request: web.Request) -> web.Response:
        raise web.HTTPInternalServerError

    async with fake_device(handler) as port:
        with pytest.raises(DeviceError) as caught:
            async with open_recorder(config(port)):
                pass
    assert "500" in str(caught.value)


async def test_subscribers_share_one_alert_connection(nvr: RecorderSimulator) -> None:
    # The default 30 s watchdog: no reconnect on a loaded machine muddies the count.
    async with open_recorder(config(nvr.http_port, alarm_watchdog="30")) as recorder:
        async with collecting(recorder) as first, collecting(recorder) as second:
            await next_motion(nvr, first)
            await next_motion(nvr, second)
            assert nvr.isapi.alert_connections == 1
        # The last subscriber left: the device's arming connection is released.
        await until(lambda: nvr.isapi.open_streams == 0, "the alert stream is closed")


async def test_bad_credentials_end_every_subscription(nvr: RecorderSimulator) -> None:
    async def drain(events: AsyncIterator[AlarmEvent]) -> None:
        async with asyncio.timeout(5):
            async for _event in events:
                pass

    async with open_recorder(config(nvr.http_port)) as recorder:
        nvr.change_password("rotated")
        with pytest.raises(AuthFailed):
            await drain(recorder.alarm_events())


async def test_absurd_windows_are_usage_errors(nvr: RecorderSimulator) -> None:
    async with open_recorder(config(nvr.http_port)) as recorder:
        with pytest.raises(ShimUsageError):
            await recorder.search_recordings(1, datetime.min.replace(tzinfo=UTC), datetime.now(UTC))
        with pytest.raises(ShimUsageError):
            await recorder.playback_source(1, datetime.now(UTC), datetime.max.replace(tzinfo=UTC))


async def test_closing_the_recorder_releases_open_talk(nvr: RecorderSimulator) -> None:
    async with open_recorder(config(nvr.http_port)) as recorder:
        talk = await recorder.open_talk(1)
        await talk.write(b"\x7f" * 160)
    assert not nvr.device.talk_is_open(1)
    assert await talk.read() == b""


class RequestLog:
    """Wraps a recorder's ISAPI `call` to list the paths it asks for."""

    def __init__(self, recorder: Recorder) -> None:
        self.paths: list[str] = []
        http = recorder._http  # type: ignore[attr-defined]
        original = http.call

        async def call(method: str, path: str, **kwargs: object) -> bytes:
            self.paths.append(path)
            return await original(method, path, **kwargs)

        http.call = call


async def test_live_sources_reuse_a_fresh_channel_list(nvr: RecorderSimulator) -> None:
    now = [1000.0]
    async with open_recorder(config(nvr.http_port)) as recorder:
        recorder._clock = lambda: now[0]  # type: ignore[attr-defined]
        log = RequestLog(recorder)
        await recorder.live_source(1)  # first lookup: the list only, not the status
        assert log.paths == ["/ISAPI/ContentMgmt/InputProxy/channels"]
        await recorder.live_source(2)
        now[0] += 4.9
        await recorder.live_source(1)
        assert len(log.paths) == 1
        now[0] += 0.2  # older than channel_cache_seconds (5): asked again
        await recorder.live_source(1)
        assert len(log.paths) == 2
        await recorder.channels()  # always asks the device, and refreshes the list
        now[0] += 1
        await recorder.live_source(2)
        assert "/ISAPI/ContentMgmt/InputProxy/channels/status" in log.paths
        asked = len(log.paths)
        # A number missing from a fresh list is asked about again, every time.
        for _ in range(2):
            with pytest.raises(NoSuchChannel):
                await recorder.live_source(3)
        assert len(log.paths) == asked + 2


async def test_concurrent_lookups_share_one_request(nvr: RecorderSimulator) -> None:
    async with open_recorder(config(nvr.http_port)) as recorder:
        log = RequestLog(recorder)
        await asyncio.gather(*(recorder.live_source(1 + n % 2) for n in range(8)))
        assert len(log.paths) == 1


async def test_channel_cache_can_be_switched_off(nvr: RecorderSimulator) -> None:
    async with open_recorder(config(nvr.http_port, channel_cache_seconds="0")) as recorder:
        log = RequestLog(recorder)
        await recorder.live_source(1)
        await recorder.live_source(1)
        assert len(log.paths) == 2


@pytest.mark.parametrize("value", ["-1", "61", "soon"])
async def test_bad_channel_cache_setting_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError):
        async with open_recorder(config(free_port(), channel_cache_seconds=value)):
            pass
