"""The camera simulator: one RTSP server (main + sub H.264) plus ONVIF SOAP services.

`async with CameraSimulator(CameraSimConfig()) as cam:` serves
`rtsp://…/Streaming/Channels/101` (main) and `/102` (sub) with Digest auth, and
the ONVIF device/media/PTZ/events services built by `nvrshare.simulators.onvif`
whose profiles point at those RTSP URLs.  `cam.onvif_state.trigger_motion()`
raises motion; `cam.rtsp.faults` / `cam.rtsp.drop_streams()` are the fault knobs.
Edge storage (ONVIF Profile G search / replay, `recordings=True`): the recordings
index of a one-channel `SimDevice` (`cam.storage`, the same the ISAPI recorder
serves), replayed at `/Streaming/tracks/101?starttime=…&endtime=…`.  With
`replay_window_in_url=False` the replay URIs carry no time window
(`/replay?recording=<token>`, any starttime/endtime there is ignored), like a
device that bounds replay only by `Range: clock=` on PLAY: without one it plays
the whole recording.  Every replay seeks by `Range: clock=` (see `rtsp_session`);
`replay_ignores_clock_end=True` makes a faulty device that plays on past the
range's end to the recording's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self
from urllib.parse import urlencode

from nvrshare.firmware_shim.simdevice import SimDevice, SimDeviceConfig
from nvrshare.simulators.h264clip import clip
from nvrshare.simulators.onvif import (
    OnvifCameraServer,
    OnvifCameraState,
    OnvifDeviceInfo,
    OnvifProfile,
    OnvifSimulatorConfig,
    RecordingArchive,
    default_profiles,
)
from nvrshare.simulators.onvif.recordings import RecordedSegment
from nvrshare.simulators.rtsp_server import RtspServer, RtspServerConfig, StreamSpec

__all__ = ["CameraSimConfig", "CameraSimulator"]

MAIN_PATH = "/Streaming/Channels/101"
SUB_PATH = "/Streaming/Channels/102"
TRACK_PATH = "/Streaming/tracks/101"
REPLAY_PATH = "/replay"
MAX_PLAYBACK = 3600.0


def _track_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _parse_track_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


@dataclass(frozen=True, kw_only=True, slots=True)
class CameraSimConfig:
    """Settings of one simulated camera; port 0 = pick a free one."""

    host: str = "127.0.0.1"
    rtsp_port: int = 0
    onvif_port: int = 0
    username: str = "admin"
    password: str = field(default="", repr=False)
    serial: str = "SIMCAM0001"
    main_size: tuple[int, int] = (640, 360)
    sub_size: tuple[int, int] = (320, 180)
    fps: int = 25
    onvif: bool = True
    recordings: bool = True  # edge storage: ONVIF search / replay and the tracks path
    recording_days: int = 2
    # False: replay URIs name only the recording; PLAY's `Range: clock=` bounds it.
    replay_window_in_url: bool = True
    # True: a faulty device that plays on past a clock range's end (to the recording's).
    replay_ignores_clock_end: bool = False


class CameraSimulator:
    """A simulated IP camera; see the module docstring."""

    def __init__(self, config: CameraSimConfig, *, logger: logging.Logger | None = None) -> None:
        self.config = config
        self._log = logger or logging.getLogger(__name__)
        self._main = clip(*config.main_size, fps=config.fps)
        self._sub = clip(*config.sub_size, fps=config.fps)
        self.rtsp = RtspServer(
            RtspServerConfig(
                host=config.host,
                port=config.rtsp_port,
                username=config.username,
                password=config.password,
                realm="IP Camera(sim)",
            ),
            self._resolve,
            logger=self._log,
        )
        self.storage = SimDevice(
            SimDeviceConfig(
                serial=config.serial,
                channels=1,
                recording_days=config.recording_days,
                ptz_channels=frozenset(),
                talk_channels=frozenset(),
            )
        )
        self.onvif_state: OnvifCameraState | None = None
        self.onvif: OnvifCameraServer | None = None

    def _resolve(self, path: str, query: Mapping[str, str]) -> StreamSpec | None:
        if path == MAIN_PATH:
            return StreamSpec(clip=self._main)
        if path == SUB_PATH:
            return StreamSpec(clip=self._sub)
        if path == TRACK_PATH and self.config.recordings:
            return self._playback(query)
        if path == REPLAY_PATH and self.config.recordings:
            return self._recording(query.get("recording", ""))
        return None

    def _playback(self, query: Mapping[str, str]) -> StreamSpec | None:
        try:
            start = _parse_track_time(query["starttime"])
            end = _parse_track_time(query["endtime"]) if "endtime" in query else None
        except (KeyError, ValueError):
            return None
        end = end or start + timedelta(hours=1)
        if end <= start or not self.storage.search_recordings(1, start, end, limit=1):
            return None
        duration = min((end - start).total_seconds(), MAX_PLAYBACK)
        return StreamSpec(
            clip=self._main,
            duration=duration,
            origin=start,
            ignores_clock_end=self.config.replay_ignores_clock_end,
        )

    def _recording(self, token: str) -> StreamSpec | None:
        """A whole recording, by token: where it plays is up to PLAY's `Range: clock=`."""
        if self.onvif_state is None:
            return None
        segment = self._archive().find(token[:128], self.onvif_state.video_sources)
        if segment is None:
            return None
        duration = min((segment.end - segment.start).total_seconds(), MAX_PLAYBACK)
        return StreamSpec(
            clip=self._main,
            duration=duration,
            origin=segment.start,
            ignores_clock_end=self.config.replay_ignores_clock_end,
        )

    def replay_url(self, start: datetime, end: datetime) -> str:
        """The RTSP URL replaying [start, end) of the recordings."""
        query = f"starttime={_track_time(start)}&endtime={_track_time(end)}"
        return self.rtsp.url(f"{TRACK_PATH}?{query}")

    def _replay_uri(self, video_source: str, start: datetime, end: datetime) -> str:
        """What GetReplayUri answers for the recording [start, end) of `video_source`."""
        if self.config.replay_window_in_url:
            return self.replay_url(start, end)
        token = RecordedSegment(video_source=video_source, start=start, end=end).token
        return self.rtsp.url(f"{REPLAY_PATH}?{urlencode({'recording': token})}")

    def _archive(self) -> RecordingArchive:
        def segments(_video_source: str) -> list[tuple[datetime, datetime]]:
            now = datetime.now(UTC)
            oldest = now - timedelta(days=self.config.recording_days)
            return self.storage.search_recordings(1, oldest, now, limit=10_000)

        return RecordingArchive(segments=segments, replay_uri=self._replay_uri)

    @property
    def main_url(self) -> str:
        return self.rtsp.url(MAIN_PATH)

    @property
    def sub_url(self) -> str:
        return self.rtsp.url(SUB_PATH)

    @property
    def onvif_url(self) -> str | None:
        return self.onvif.device_service_url if self.onvif is not None else None

    def _profiles(self) -> tuple[OnvifProfile, OnvifProfile]:
        main, sub = default_profiles(self.main_url, self.sub_url)
        (mw, mh), (sw, sh), fps = self.config.main_size, self.config.sub_size, self.config.fps
        return (
            replace(main, width=mw, height=mh, framerate=fps),
            replace(sub, width=sw, height=sh, framerate=fps),
        )

    async def __aenter__(self) -> Self:
        await self.rtsp.__aenter__()
        if not self.config.onvif:
            return self
        try:
            self.onvif_state = OnvifCameraState(
                profiles=self._profiles(),
                device=OnvifDeviceInfo(serial_number=self.config.serial),
                recordings=self._archive() if self.config.recordings else None,
            )
            self.onvif = OnvifCameraServer(
                self.onvif_state,
                OnvifSimulatorConfig(
                    username=self.config.username, password=self.config.password
                ),
                host=self.config.host,
                port=self.config.onvif_port,
                logger=self._log,
            )
            await self.onvif.__aenter__()
        except BaseException:
            self.onvif = None
            await self.rtsp.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self.onvif is not None:
                await self.onvif.__aexit__(exc_type, exc, tb)
        finally:
            await self.rtsp.__aexit__(exc_type, exc, tb)
