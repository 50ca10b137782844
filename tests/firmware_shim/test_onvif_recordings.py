"""The onvif backend's Profile G recordings: search paging and bounds, playback, absence."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import zeep.exceptions
from onvif import ONVIFCamera

from nvrshare.firmware_shim import (
    BadResponse,
    Capability,
    ConfigError,
    DeviceError,
    DeviceTimeout,
    NoSuchChannel,
    NotFound,
    NotSupported,
    RecorderConfig,
    ShimUsageError,
    open_recorder,
)
from nvrshare.firmware_shim.backends.onvif import create
from nvrshare.firmware_shim.backends.onvif._errors import to_shim
from nvrshare.firmware_shim.backends.onvif.recordings import (
    SearchBounds,
    find_recordings,
    recordings_from_results,
)
from nvrshare.firmware_shim.simdevice import SimDevice, SimDeviceConfig
from nvrshare.simulators.onvif import (
    OnvifCameraServer,
    OnvifSimulatorConfig,
    RecordingArchive,
)
from tests.firmware_shim.test_onvif_backend import PASSWORD, SERIAL, USER, _config, _state

DAY = timedelta(days=1)


def _device() -> SimDevice:
    return SimDevice(SimDeviceConfig(serial=SERIAL, channels=2, recording_days=1))


@pytest.fixture
async def camera() -> AsyncIterator[OnvifCameraServer]:
    config = OnvifSimulatorConfig(username=USER, password=PASSWORD)
    async with OnvifCameraServer(_state(), config) as server:
        yield server


async def test_search_reads_every_page_and_maps_sources_to_channels(
    camera: OnvifCameraServer,
) -> None:
    now = datetime.now(UTC)
    # Two channels x one day of 30-minute blocks: more than one 100-result page, and
    # channel 2's recordings come after all of channel 1's.
    expected = _device().search_recordings(2, now - 2 * DAY, now + DAY, limit=1000)
    assert len(expected) > 40
    async with open_recorder(_config(camera.port)) as recorder:
        segments = await recorder.search_recordings(2, now - 2 * DAY, now + DAY, limit=1000)

        # A segment still being recorded ends "now", which moves between the two
        # reads (and goes over the wire in whole seconds): compare the finished ones.
        def finished(found: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
            return [(a, b) for a, b in found if b < now - timedelta(seconds=5)]

        assert finished([(s.start, s.end) for s in segments]) == finished(expected)
        assert len(segments) >= len(finished(expected))
        assert {s.channel for s in segments} == {2}
        assert len(await recorder.search_recordings(2, now - 2 * DAY, now, limit=3)) == 3
        channels = await recorder.channels()
        assert all(Capability.RECORDINGS in c.capabilities for c in channels)
    assert len(camera.state.searches) == 0  # every search job was ended


async def test_search_window_and_empty_results(camera: OnvifCameraServer) -> None:
    now = datetime.now(UTC)
    async with open_recorder(_config(camera.port)) as recorder:
        hour = await recorder.search_recordings(1, now - timedelta(hours=3), now)
        assert hour
        assert all(s.start < now and s.end > now - timedelta(hours=3) for s in hour)
        assert await recorder.search_recordings(1, now + DAY, now + 2 * DAY) == []
        assert await recorder.search_recordings(1, now, now - DAY) == []  # empty window
        with pytest.raises(NotFound):
            await recorder.playback_source(1, now + DAY, now + 2 * DAY)
        with pytest.raises(ShimUsageError):
            await recorder.search_recordings(1, now.replace(tzinfo=None), now)
        with pytest.raises(ShimUsageError):
            await recorder.playback_source(1, now, now - DAY)
        with pytest.raises(NoSuchChannel):
            await recorder.search_recordings(3, now - DAY, now)


async def test_max_recordings_bounds_the_search(camera: OnvifCameraServer) -> None:
    now = datetime.now(UTC)
    async with open_recorder(_config(camera.port, max_recordings="10")) as recorder:
        segments = await recorder.search_recordings(1, now - 2 * DAY, now, limit=1000)
        assert 0 < len(segments) <= 10
        # Channel 2's recordings are listed after channel 1's: beyond the bound.
        assert await recorder.search_recordings(2, now - 2 * DAY, now, limit=1000) == []
    assert len(camera.state.searches) == 0
    with pytest.raises(ConfigError):
        create(
            RecorderConfig(backend="onvif", host="x", settings={"max_recordings": "0"}),
            logger=__import__("logging").getLogger("t"),
        )


async def test_playback_source_carries_the_window(camera: OnvifCameraServer) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    async with open_recorder(
        _config(
            camera.port,
        )
    ) as recorder:
        first = (await recorder.search_recordings(2, now - DAY, now))[0]
        start, end = first.start + timedelta(minutes=1), first.start + timedelta(minutes=2)
        source = await recorder.playback_source(2, start, end)
    parts = urlsplit(source.url)
    assert parts.path == "/Streaming/tracks/201"
    assert parse_qs(parts.query) == {
        "starttime": [start.strftime("%Y%m%dT%H%M%SZ")],
        "endtime": [end.strftime("%Y%m%dT%H%M%SZ")],
    }
    assert (source.username, source.password) == (USER, PASSWORD)
    # ONVIF replay is bounded by `Range: clock=` on PLAY: the agent's gate must send it.
    assert source.seeks_by_clock
    config = _config(camera.port)
    override = RecorderConfig(
        backend="onvif",
        host=config.host,
        port=config.port,
        username=USER,
        password=PASSWORD,
        rtsp_port=10554,
        timeout=config.timeout,
    )
    async with open_recorder(override) as recorder:
        moved = await recorder.playback_source(2, start, end)
    assert urlsplit(moved.url).port == 10554


async def test_device_without_storage_declares_and_refuses() -> None:
    config = OnvifSimulatorConfig(username=USER, password=PASSWORD)
    now = datetime.now(UTC)
    async with (
        OnvifCameraServer(_state(recordings=False), config) as server,
        open_recorder(_config(server.port)) as recorder,
    ):
        assert Capability.RECORDINGS not in recorder.capabilities
        assert all(Capability.RECORDINGS not in c.capabilities for c in await recorder.channels())
        with pytest.raises(NotSupported):
            await recorder.search_recordings(1, now - DAY, now)
        with pytest.raises(NotSupported):
            await recorder.playback_source(1, now - DAY, now)


async def test_empty_archive_finds_nothing() -> None:
    empty = RecordingArchive(segments=lambda _source: [], replay_uri=lambda *_: "rtsp://x/y")
    state = _state()
    state.recordings = empty
    config = OnvifSimulatorConfig(username=USER, password=PASSWORD)
    now = datetime.now(UTC)
    async with (
        OnvifCameraServer(state, config) as server,
        open_recorder(_config(server.port)) as recorder,
    ):
        assert Capability.RECORDINGS in recorder.capabilities
        assert await recorder.search_recordings(1, now - DAY, now) == []
        with pytest.raises(NotFound):
            await recorder.playback_source(1, now - DAY, now)


async def test_replay_faults_are_mapped(camera: OnvifCameraServer) -> None:
    client = ONVIFCamera("127.0.0.1", camera.port, USER, PASSWORD, no_cache=True)
    try:
        await client.update_xaddrs()
        replay = await client.create_replay_service()
        with pytest.raises(zeep.exceptions.Fault) as caught:
            await replay.GetReplayUri(
                {
                    "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
                    "RecordingToken": "REC_VideoSource_1_1",
                }
            )
    finally:
        await client.close()
    assert isinstance(to_shim(caught.value, "GetReplayUri"), NotFound)


# --- the search driver against a scripted device ---------------------------------------


class _Info:
    """A RecordingInformation as zeep hands it over (only the fields read)."""

    def __init__(self, token: str, source: str, start: datetime, end: datetime) -> None:
        self.RecordingToken = token
        self.Source = type("Source", (), {"SourceId": source})()
        self.EarliestRecording, self.LatestRecording = start, end
        self.Track = [type("Track", (), {"TrackType": "Video", "DataFrom": start, "DataTo": end})()]


class _Script:
    """Answers FindRecordings / GetRecordingSearchResults / EndSearch and records the calls."""

    def __init__(self, pages: list[list[_Info]], *, completes: bool = True) -> None:
        self.pages, self.completes = pages, completes
        self.calls: list[tuple[str, Any]] = []

    async def __call__(self, service: str, operation: str, params: Any) -> Any:
        self.calls.append((operation, params))
        if operation == "FindRecordings":
            return "job-1"
        if operation == "EndSearch":
            raise DeviceError("already ended")  # must not surface
        index = sum(1 for op, _ in self.calls if op == "GetRecordingSearchResults") - 1
        page = self.pages[index] if index < len(self.pages) else []
        done = self.completes and index >= len(self.pages) - 1
        return type("R", (), {"SearchState": "Completed" if done else "Searching",
                              "RecordingInformation": page})()  # fmt: skip


def _infos(count: int, base: datetime) -> list[_Info]:
    starts = [base + i * timedelta(hours=1) for i in range(count)]
    return [
        _Info(f"r{i}", "VideoSource_1", s, s + timedelta(minutes=30)) for i, s in enumerate(starts)
    ]


async def test_find_recordings_pages_until_completed_and_ends_the_job() -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    script = _Script([_infos(3, base), _infos(2, base + 10 * DAY)])
    found = await find_recordings(script, SearchBounds(page_size=3, keep_alive=12))
    assert len(found) == 5
    operations = [op for op, _ in script.calls]
    assert operations == [
        "FindRecordings",
        "GetRecordingSearchResults",
        "GetRecordingSearchResults",
        "EndSearch",
    ]
    find = script.calls[0][1]
    assert (find["MaxMatches"], find["KeepAliveTime"]) == (1000, "PT12S")
    assert script.calls[1][1]["MaxResults"] == 3


async def test_find_recordings_is_bounded_when_the_device_never_completes() -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    never = _Script([_infos(2, base)] * 100, completes=False)
    found = await find_recordings(never, SearchBounds(max_pages=4))
    assert len(found) == 8
    assert [op for op, _ in never.calls].count("GetRecordingSearchResults") == 4
    assert never.calls[-1][0] == "EndSearch"
    capped = _Script([_infos(5, base)] * 10, completes=False)
    assert len(await find_recordings(capped, SearchBounds(max_matches=7))) == 7


async def test_find_recordings_ends_the_job_when_a_page_fails() -> None:
    class Failing(_Script):
        async def __call__(self, service: str, operation: str, params: Any) -> Any:
            if operation == "GetRecordingSearchResults":
                self.calls.append((operation, params))
                raise BadResponse("garbage")
            return await super().__call__(service, operation, params)

    failing = Failing([])
    with pytest.raises(BadResponse):
        await find_recordings(failing, SearchBounds())
    assert failing.calls[-1][0] == "EndSearch"


def test_recordings_without_a_usable_span_are_skipped() -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    good = _Info("ok", "VideoSource_1", base, base + DAY)
    backwards = _Info("back", "VideoSource_1", base + DAY, base)
    no_token = _Info("", "VideoSource_1", base, base + DAY)
    naive = _Info(
        "naive", "VideoSource_1", base.replace(tzinfo=None), (base + DAY).replace(tzinfo=None)
    )
    naive.Track = []
    found = recordings_from_results([good, backwards, no_token, naive])
    assert [r.token for r in found] == ["ok", "naive"]
    assert found[1].start.tzinfo is not None


async def test_odd_search_replies_are_bad_responses(
    camera: OnvifCameraServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    async with open_recorder(_config(camera.port)) as recorder:

        async def odd(*_args: Any) -> Any:
            return object()  # no SearchState, no RecordingInformation

        monkeypatch.setattr(recorder, "_call", odd)
        with pytest.raises(BadResponse):
            await recorder.search_recordings(1, now - DAY, now)


async def test_a_search_that_drags_on_times_out_and_still_ends_the_job() -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)

    class _Slow(_Script):
        async def __call__(self, service: str, operation: str, params: Any) -> Any:
            if operation == "GetRecordingSearchResults":
                await asyncio.sleep(0.05)  # each page answers, but slowly, forever
            return await super().__call__(service, operation, params)

    slow = _Slow([_infos(1, base)] * 1000, completes=False)
    with pytest.raises(DeviceTimeout, match="recordings search"):
        await find_recordings(slow, SearchBounds(max_pages=1000, deadline=0.3))
    assert slow.calls[-1][0] == "EndSearch"
