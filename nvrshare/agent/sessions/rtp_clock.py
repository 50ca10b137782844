"""How much media a recorder has sent, read from RTP timestamps; sans-IO.

For replay bounded only by `Range: clock=A-B` (ONVIF replay) the gate cannot
trust the recorder to stop at B, so it counts the media time it forwards:
per video channel, the span of the (unwrapped) RTP timestamps divided by the
track's clock rate, which SDP (`a=rtpmap`) names per media section.  Media
time, not wall time: pause, Scale and slow motion leave it exact.

`ReplayBudget` holds the allowance of one PLAYed range and says when the
recorder has overrun it.  Frames come from the recorder: anything that does
not parse as RTP is ignored, nothing here raises on bad input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = [
    "DEFAULT_VIDEO_RATE",
    "ReplayBudget",
    "SdpTrack",
    "clock_range_seconds",
    "parse_sdp_tracks",
    "track_for_setup",
]

DEFAULT_VIDEO_RATE = 90_000  # every RTP video payload format clocks at 90 kHz
_WRAP = 1 << 32
_HALF = 1 << 31
_RTPMAP = re.compile(r"a=rtpmap:(\d{1,3})\s+[^/\s]+/(\d{1,9})")
_CLOCK_TIME = r"(\d{8}T\d{6})(?:\.(\d{1,9}))?Z"
_CLOCK_RANGE = re.compile(rf"\s*clock\s*=\s*{_CLOCK_TIME}\s*-\s*{_CLOCK_TIME}\s*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SdpTrack:
    """One `m=` section: its media kind, `a=control` and payload type → clock rate."""

    media: str
    control: str
    rates: dict[int, int]


def parse_sdp_tracks(body: bytes) -> list[SdpTrack]:
    """The media sections of an SDP body (never raises; unparsable lines are skipped)."""
    tracks: list[SdpTrack] = []
    media, control, rates = "", "", dict[int, int]()
    for raw in body[:65536].decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if line.startswith("m="):
            if media:
                tracks.append(SdpTrack(media, control, rates))
            media, control, rates = (line[2:].split() or [""])[0].lower(), "", dict[int, int]()
        elif media and line.startswith("a=control:"):
            control = line[len("a=control:") :].strip()
        elif media and (match := _RTPMAP.match(line)):
            rate = int(match.group(2))
            if rate > 0:
                rates[int(match.group(1))] = rate
    if media:
        tracks.append(SdpTrack(media, control, rates))
    return tracks


def track_for_setup(tracks: list[SdpTrack], setup_uri: str) -> SdpTrack | None:
    """The section a SETUP of `setup_uri` names; the only one if the SDP has just one."""
    uri = setup_uri.rstrip("/")
    for track in tracks:
        control = track.control.rstrip("/")
        if control and control != "*" and (uri == control or uri.endswith("/" + control)):
            return track
    return tracks[0] if len(tracks) == 1 else None


def _clock_seconds(whole: str, fraction: str | None) -> float:
    moment = datetime.strptime(whole, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    return moment.timestamp() + int((fraction or "0")[:6].ljust(6, "0")) / 1e6


def clock_range_seconds(value: str) -> float | None:
    """B - A of a closed `clock=A-B` range, or None if it is not one."""
    match = _CLOCK_RANGE.fullmatch(value[:128])
    if match is None:
        return None
    try:
        start = _clock_seconds(match.group(1), match.group(2))
        end = _clock_seconds(match.group(3), match.group(4))
    except (ValueError, OverflowError):
        return None
    return end - start if end > start else None


@dataclass(slots=True)
class _Span:
    """Unwrapped RTP timestamps of one channel since the span began."""

    last: int  # the latest timestamp, unwrapped
    low: int
    high: int

    def add(self, timestamp: int) -> None:
        # Signed 32-bit difference: wrap-around and B-frame reordering both land here.
        delta = (timestamp - self.last) % _WRAP
        self.last += delta - _WRAP if delta >= _HALF else delta
        self.low, self.high = min(self.low, self.last), max(self.high, self.last)


@dataclass(slots=True)
class _Channel:
    rate: int
    span: _Span | None = None
    spent: float = 0.0  # media time of the spans before the current one (resumes)

    @property
    def media_time(self) -> float:
        current = 0.0 if self.span is None else (self.span.high - self.span.low) / self.rate
        return self.spent + current


@dataclass(slots=True)
class ReplayBudget:
    """The media time one PLAYed clock range allows, and what the recorder sent of it.

    `start(seconds)` on an accepted PLAY with a range (a seek starts afresh);
    `resume()` on an accepted PLAY without one (after PAUSE: the count carries
    on, in a new span, so a recorder that re-bases its timestamps on resume is
    not charged for the jump).  `frame(raw)` counts one interleaved frame and
    returns False once the media sent exceeds the allowance by more than `slack`.
    """

    slack: float
    allowance: float | None = None  # None: not armed (no PLAY answered yet)
    # All ranges of one connection together: seeks (each PLAY with a range starts a
    # fresh allowance) must not let a recorder that ignores range ends play on forever.
    total_allowance: float = float("inf")
    _channels: dict[int, _Channel] = field(default_factory=dict)
    _before: float = 0.0  # media time sent for earlier ranges

    def watch(self, channel: int, rate: int) -> None:
        """Count RTP on `channel` (an even, RTP channel of a video track) at `rate` Hz."""
        # A channel already watched keeps its count: a re-SETUP must not reset it.
        if 0 <= channel <= 255 and channel % 2 == 0 and rate > 0 and channel not in self._channels:
            self._channels[channel] = _Channel(rate)

    def start(self, seconds: float) -> None:
        self._before += self.media_time
        self.allowance = seconds
        for channel in self._channels.values():
            channel.span, channel.spent = None, 0.0

    def resume(self) -> None:
        for channel in self._channels.values():
            channel.spent, channel.span = channel.media_time, None

    @property
    def media_time(self) -> float:
        return max((c.media_time for c in self._channels.values()), default=0.0)

    def frame(self, raw: bytes) -> bool:
        """Count a `$`-framed packet; False: it takes the recorder past the allowance."""
        if self.allowance is None or len(raw) < 4 + 12:
            return True
        channel = self._channels.get(raw[1])
        rtp = raw[4:]
        if channel is None or rtp[0] >> 6 != 2:
            return True
        if 72 <= rtp[1] & 0x7F <= 76:  # RTCP sent on the RTP channel: not media
            return True
        timestamp = int.from_bytes(rtp[4:8], "big")
        if channel.span is None:
            channel.span = _Span(timestamp, timestamp, timestamp)
        else:
            channel.span.add(timestamp)
        spent = channel.media_time
        within_range = spent <= self.allowance + self.slack
        return within_range and self._before + spent <= self.total_allowance + self.slack
