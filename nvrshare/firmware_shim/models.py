"""What the shim and its callers exchange: frozen, kw-only, slotted values.

Every timestamp is a timezone-aware `datetime` (backends convert device-local
clocks); constructors validate their invariants and raise `ShimUsageError`, so a
value that exists is a value that is valid.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from datetime import datetime

from nvrshare.firmware_shim.errors import ShimUsageError

__all__ = [
    "MAX_CHANNEL",
    "MAX_PRESET",
    "AlarmEvent",
    "AlarmKind",
    "AudioCodec",
    "Capability",
    "Channel",
    "DeviceInfo",
    "PtzPreset",
    "PtzStatus",
    "PtzVector",
    "RecordingSegment",
    "StreamKind",
    "StreamSource",
    "check_aware",
    "check_channel",
    "check_preset",
]

# Real NVRs top out at 256 channels; anything larger is a parsing accident.
MAX_CHANNEL = 256
MAX_PRESET = 256


def check_channel(channel: int) -> int:
    """Return `channel` if it is a plausible channel number (1..MAX_CHANNEL)."""
    if isinstance(channel, bool) or not isinstance(channel, int):
        raise ShimUsageError(f"channel must be an int, not {type(channel).__name__}")
    if not 1 <= channel <= MAX_CHANNEL:
        raise ShimUsageError(f"channel {channel} out of range 1..{MAX_CHANNEL}")
    return channel


def check_preset(preset: int) -> int:
    """Return `preset` if it is a plausible preset number (1..MAX_PRESET)."""
    if isinstance(preset, bool) or not isinstance(preset, int):
        raise ShimUsageError(f"preset must be an int, not {type(preset).__name__}")
    if not 1 <= preset <= MAX_PRESET:
        raise ShimUsageError(f"preset {preset} out of range 1..{MAX_PRESET}")
    return preset


def check_aware(when: datetime, what: str = "time") -> datetime:
    """Return `when` if it carries a timezone (naive datetimes are ambiguous on NVRs)."""
    if not isinstance(when, datetime) or when.tzinfo is None or when.utcoffset() is None:
        raise ShimUsageError(f"{what} must be a timezone-aware datetime")
    return when


class Capability(enum.StrEnum):
    """A function a backend implements, or a channel offers."""

    LIVE = "live"
    RECORDINGS = "recordings"  # search + playback
    PTZ = "ptz"  # continuous move, stop, status
    PTZ_PRESETS = "ptz_presets"  # goto / set / list presets
    ALARMS = "alarms"
    TALK = "talk"  # two-way audio


class StreamKind(enum.StrEnum):
    """Which encoder of a channel: the full-resolution main stream or the sub stream."""

    MAIN = "main"
    SUB = "sub"


class AlarmKind(enum.StrEnum):
    """Normalised alarm types; vendor types that map to none of these are OTHER."""

    MOTION = "motion"
    VIDEO_LOSS = "video_loss"
    IO = "io"
    LINE_CROSSING = "line_crossing"
    INTRUSION = "intrusion"
    TAMPER = "tamper"
    OTHER = "other"


class AudioCodec(enum.StrEnum):
    """Two-way audio codecs (8 kHz, mono, 8-bit samples)."""

    G711_ULAW = "G.711ulaw"
    G711_ALAW = "G.711alaw"


@dataclass(frozen=True, kw_only=True, slots=True)
class DeviceInfo:
    """Identity of the recorder or camera."""

    serial: str
    model: str
    firmware_version: str
    manufacturer: str = ""
    mac: str | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if not self.serial or len(self.serial) > 128:
            raise ShimUsageError("serial must be 1..128 characters")


@dataclass(frozen=True, kw_only=True, slots=True)
class Channel:
    """One video channel and what it can do."""

    number: int
    name: str
    online: bool
    capabilities: frozenset[Capability] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        check_channel(self.number)


@dataclass(frozen=True, kw_only=True, slots=True)
class StreamSource:
    """Where to pull an RTSP stream from, and the credentials it wants.

    The password is kept out of `repr` so logs never carry it.
    """

    url: str
    username: str = ""
    password: str = field(default="", repr=False)
    # Playback the device bounds only by an RTSP `Range: clock=` on PLAY (ONVIF
    # replay), whatever the URL says: whoever plays it must send the window.
    seeks_by_clock: bool = False

    def __post_init__(self) -> None:
        if not self.url.startswith(("rtsp://", "rtsps://")):
            raise ShimUsageError("stream url must be rtsp:// or rtsps://")


@dataclass(frozen=True, kw_only=True, slots=True)
class RecordingSegment:
    """A stretch of recorded video on one channel; `end` is exclusive."""

    channel: int
    start: datetime
    end: datetime
    source: StreamSource | None = None  # playback of exactly this segment, when known

    def __post_init__(self) -> None:
        check_channel(self.channel)
        check_aware(self.start, "start")
        check_aware(self.end, "end")
        if self.end <= self.start:
            raise ShimUsageError("segment end must be after its start")


def _check_unit(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ShimUsageError(f"{name} must be a number")
    if not math.isfinite(value) or not -1.0 <= value <= 1.0:
        raise ShimUsageError(f"{name} must be within [-1, 1], got {value!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class PtzVector:
    """Pan/tilt/zoom speeds (for moves) or positions (for status), each in [-1, 1]."""

    pan: float = 0.0
    tilt: float = 0.0
    zoom: float = 0.0

    def __post_init__(self) -> None:
        _check_unit("pan", self.pan)
        _check_unit("tilt", self.tilt)
        _check_unit("zoom", self.zoom)

    @property
    def is_zero(self) -> bool:
        """True for the vector that means "stop"."""
        return self.pan == 0 and self.tilt == 0 and self.zoom == 0


@dataclass(frozen=True, kw_only=True, slots=True)
class PtzStatus:
    """Where the head points (normalised to [-1, 1]) and whether it is moving."""

    position: PtzVector
    moving: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class PtzPreset:
    """A stored PTZ position."""

    number: int
    name: str = ""

    def __post_init__(self) -> None:
        check_preset(self.number)


@dataclass(frozen=True, kw_only=True, slots=True)
class AlarmEvent:
    """One alarm state change, as reported by the device.

    `channel` is the video channel for video alarms and None for I/O alarms that
    are not bound to a channel; `input_port` names the I/O input when there is one.
    `vendor_type` keeps the device's own name for the event (e.g. "VMD",
    "tns1:VideoSource/MotionAlarm") for logs and for OTHER alarms.
    """

    kind: AlarmKind
    active: bool
    at: datetime
    channel: int | None = None
    input_port: int | None = None
    vendor_type: str = ""

    def __post_init__(self) -> None:
        if self.channel is not None:
            check_channel(self.channel)
        if self.input_port is not None and not 1 <= self.input_port <= MAX_CHANNEL:
            raise ShimUsageError("input_port out of range")
        check_aware(self.at, "at")
