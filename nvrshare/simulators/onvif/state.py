"""What a simulated ONVIF camera knows: identity, profiles, PTZ heads, motion, subscriptions.

Whoever composes a camera (the `sim` verb, a test) builds an `OnvifCameraState`
with the RTSP URLs its stream server really serves, hands it to
`create_onvif_app`, and drives it: `trigger_motion()` raises or clears a motion
alarm that every PullPoint subscription receives.

With a `RecordingArchive` the camera also offers edge-storage search and replay
(see `recordings.py`).

Clocks are injected: `clock` (monotonic seconds) drives PTZ motion and
subscription expiry, `wall_clock` (aware UTC datetimes) stamps messages and
answers GetSystemDateAndTime; tests pass fakes to step time deterministically.
"""

from __future__ import annotations

import datetime as dt
import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from .ptz import PtzHead
from .pullpoint import EventMessage, PullPointBroker
from .recordings import RecordingArchive, SearchJobs


@dataclass(frozen=True, kw_only=True, slots=True)
class OnvifDeviceInfo:
    """GetDeviceInformation plus the network identity (the MAC is used as an id by clients)."""

    manufacturer: str = "nvrshare"
    model: str = "SimCam ONVIF"
    firmware_version: str = "1.0.0"
    serial_number: str = "SIMCAM0001"
    hardware_id: str = "simcam-hw1"
    mac: str = "02:00:5e:00:00:01"
    hostname: str = "simcam"


@dataclass(frozen=True, kw_only=True, slots=True)
class OnvifProfile:
    """One media profile. Profiles sharing a `video_source` are one channel's streams."""

    token: str
    name: str
    video_source: str
    stream_uri: str
    encoding: str = "H264"  # H264 | JPEG | H265, as tt:VideoEncoding spells them
    width: int = 1920
    height: int = 1080
    framerate: int = 25
    bitrate_kbps: int = 4096
    ptz: bool = True


class MotionTopic(enum.Enum):
    """The two motion payload shapes cameras commonly send."""

    VIDEO_SOURCE = "tns1:VideoSource/MotionAlarm"  # Data: State
    CELL_MOTION = "tns1:RuleEngine/CellMotionDetector/Motion"  # Data: IsMotion


def default_profiles(
    main_uri: str, sub_uri: str, *, video_source: str = "VideoSource_1"
) -> tuple[OnvifProfile, ...]:
    """A main (1080p) and a sub (360p) H.264 profile on one PTZ-capable video source."""
    return (
        OnvifProfile(
            token="Profile_1",  # noqa: S106 - a profile token, not a secret
            name="mainStream",
            video_source=video_source,
            stream_uri=main_uri,
        ),
        OnvifProfile(
            token="Profile_2",  # noqa: S106 - a profile token, not a secret
            name="subStream",
            video_source=video_source,
            stream_uri=sub_uri,
            width=640,
            height=360,
            bitrate_kbps=512,
        ),
    )


def source_configuration_token(video_source: str) -> str:
    """The token of the (one) VideoSourceConfiguration bound to a video source."""
    return f"VSC_{video_source}"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class OnvifCameraState:
    """Mutable state behind the SOAP services of one simulated camera."""

    def __init__(
        self,
        *,
        profiles: Sequence[OnvifProfile],
        device: OnvifDeviceInfo | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], dt.datetime] = _utcnow,
        ptz_rate: float = 0.5,
        max_presets: int = 32,
        broker: PullPointBroker | None = None,
        recordings: RecordingArchive | None = None,
    ) -> None:
        if not profiles:
            raise ValueError("a camera needs at least one profile")
        tokens = [profile.token for profile in profiles]
        if len(set(tokens)) != len(tokens):
            raise ValueError("profile tokens must be unique")
        self.device = device or OnvifDeviceInfo()
        self.clock = clock
        self.wall_clock = wall_clock
        self._profiles = {profile.token: profile for profile in profiles}
        # One PTZ node per video source: the main and sub streams look through the same lens.
        self._heads = {
            profile.video_source: PtzHead(rate=ptz_rate, max_presets=max_presets)
            for profile in profiles
            if profile.ptz
        }
        self._motion = {profile.video_source: False for profile in profiles}
        self.broker = broker or PullPointBroker()
        # Edge storage (Profile G): None = no Search / Replay / Recording services.
        self.recordings = recordings
        self.searches = SearchJobs()

    # --- media ---------------------------------------------------------------------

    @property
    def profiles(self) -> tuple[OnvifProfile, ...]:
        return tuple(self._profiles.values())

    @property
    def video_sources(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(profile.video_source for profile in self._profiles.values()))

    def profile(self, token: str) -> OnvifProfile:
        """The profile with `token`; KeyError when there is none."""
        return self._profiles[token]

    def set_stream_uri(self, token: str, uri: str) -> None:
        """Point a profile at another RTSP URL (e.g. once the stream server has its port)."""
        self._profiles[token] = replace(self._profiles[token], stream_uri=uri)

    # --- PTZ -------------------------------------------------------------------------

    def ptz_head(self, profile_token: str) -> PtzHead:
        """The PTZ head behind a profile; KeyError when the profile has no PTZ."""
        profile = self._profiles[profile_token]
        if not profile.ptz:
            raise KeyError(profile_token)
        return self._heads[profile.video_source]

    # --- events ----------------------------------------------------------------------

    def motion(self, video_source: str) -> bool:
        return self._motion[video_source]

    def trigger_motion(
        self,
        active: bool = True,
        *,
        video_source: str | None = None,
        topic: MotionTopic = MotionTopic.VIDEO_SOURCE,
    ) -> int:
        """Raise (or clear) motion on a video source (default: the first one).

        Every live PullPoint subscription gets a ``Changed`` message; returns how
        many subscriptions received it. KeyError for an unknown video source.
        """
        source = video_source or self.video_sources[0]
        if source not in self._motion:
            raise KeyError(source)
        self._motion[source] = active
        return self.broker.publish(self.motion_message(source, topic=topic), self.clock())

    def motion_message(
        self,
        video_source: str,
        *,
        topic: MotionTopic = MotionTopic.VIDEO_SOURCE,
        operation: str = "Changed",
    ) -> EventMessage:
        """The notification describing the current motion state of `video_source`."""
        state = "true" if self._motion[video_source] else "false"
        source: tuple[tuple[str, str], ...]
        if topic is MotionTopic.VIDEO_SOURCE:
            source = (("Source", video_source),)
            data = (("State", state),)
        else:
            # Cell motion names the configurations and rule, as Hikvision / Dahua do.
            source = (
                ("VideoSourceConfigurationToken", source_configuration_token(video_source)),
                ("VideoAnalyticsConfigurationToken", "VideoAnalyticsToken"),
                ("Rule", "MyMotionDetectorRule"),
            )
            data = (("IsMotion", state),)
        return EventMessage(
            topic=topic.value,
            utc_time=self.wall_clock(),
            operation=operation,
            source=source,
            data=data,
        )

    def initial_messages(self) -> list[EventMessage]:
        """What a new subscription (or SetSynchronizationPoint) reports: current states."""
        return [
            self.motion_message(source, operation="Initialized") for source in self.video_sources
        ]
