"""A simulated NVR's state: the single source of truth for fake hardware.

Used in-process by the `sim` backend and served over ISAPI/RTSP by the
recorder simulator (`nvrshare.simulators`), so both behave alike.  It holds
channels, PTZ heads whose position integrates the commanded velocity over an
injected monotonic clock, presets, a deterministic recordings index, an alarm
bus with bounded per-subscriber queues, and per-channel two-way audio sessions
whose received audio is kept (bounded) for tests to assert on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from nvrshare.firmware_shim.errors import (
    DeviceBusy,
    NoSuchChannel,
    NotFound,
    NotSupported,
    ShimUsageError,
)
from nvrshare.firmware_shim.models import (
    AlarmEvent,
    AlarmKind,
    Capability,
    Channel,
    DeviceInfo,
    PtzPreset,
    PtzStatus,
    PtzVector,
    check_aware,
    check_channel,
    check_preset,
)

__all__ = ["SimDevice", "SimDeviceConfig", "TalkSession"]

# Full-speed travel across the whole [-1, 1] range takes this many seconds.
PTZ_FULL_SPEED_PER_SECOND = 0.5
MAX_TALK_BYTES = 4 * 1024 * 1024
ALARM_QUEUE_SIZE = 256
MAX_SUBSCRIBERS = 64


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True, slots=True)
class SimDeviceConfig:
    """Shape of the simulated recorder.

    Recordings: on every channel, one `recording_length` segment starts every
    `recording_every`, covering `recording_days` back from the time of the query
    (aligned to `recording_every` boundaries since the epoch, so results are
    stable across calls).
    """

    serial: str = "SIM0000000001"
    model: str = "NVRSIM-8"
    firmware_version: str = "V4.30.000 build 260101"
    manufacturer: str = "nvrshare"
    mac: str = "02:00:00:00:00:01"
    name: str = "Simulated NVR"
    channels: int = 4
    ptz_channels: frozenset[int] = frozenset({1})
    offline_channels: frozenset[int] = frozenset()
    talk_channels: frozenset[int] = frozenset({1})
    recording_every: timedelta = timedelta(minutes=30)
    recording_length: timedelta = timedelta(minutes=20)
    recording_days: int = 7
    alarm_inputs: int = 4

    def __post_init__(self) -> None:
        if not 1 <= self.channels <= 64:
            raise ShimUsageError("channels must be within 1..64")
        if not timedelta(0) < self.recording_length <= self.recording_every:
            raise ShimUsageError("recording_length must be within (0, recording_every]")
        if not 0 <= self.alarm_inputs <= 16:
            raise ShimUsageError("alarm_inputs must be within 0..16")


@dataclass(slots=True)
class _PtzHead:
    position: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    velocity: tuple[float, float, float] = (0.0, 0.0, 0.0)
    since: float = 0.0
    presets: dict[int, tuple[str, tuple[float, float, float]]] = field(default_factory=dict)

    def settle(self, now: float) -> None:
        """Integrate the velocity up to `now`, clamping at the end stops."""
        elapsed = max(0.0, now - self.since)
        self.since = now
        for axis in range(3):
            moved = self.position[axis] + self.velocity[axis] * PTZ_FULL_SPEED_PER_SECOND * elapsed
            self.position[axis] = min(1.0, max(-1.0, moved))


class TalkSession:
    """One open talk session: what the device's speaker received and its mic output."""

    def __init__(self, channel: int, on_close: Callable[[TalkSession], None]) -> None:
        self.channel = channel
        self.closed = False
        self._on_close = on_close

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._on_close(self)


class SimDevice:
    """The simulated recorder.  Not thread-safe; use from one event loop."""

    def __init__(
        self,
        config: SimDeviceConfig | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = _now,
    ) -> None:
        self.config = config or SimDeviceConfig()
        self._monotonic = monotonic
        self._wall = wall
        self._ptz = {ch: _PtzHead(since=monotonic()) for ch in self.config.ptz_channels}
        self._subscribers: set[asyncio.Queue[AlarmEvent]] = set()
        self._talk: dict[int, TalkSession] = {}
        self._talk_received: dict[int, bytearray] = {}
        self.alarm_state: dict[tuple[AlarmKind, int | None, int | None], bool] = {}

    # -- identity ---------------------------------------------------------------------

    def device_info(self) -> DeviceInfo:
        cfg = self.config
        return DeviceInfo(
            serial=cfg.serial,
            model=cfg.model,
            firmware_version=cfg.firmware_version,
            manufacturer=cfg.manufacturer,
            mac=cfg.mac,
            name=cfg.name,
        )

    def channel(self, number: int) -> Channel:
        check_channel(number)
        if number > self.config.channels:
            raise NoSuchChannel(f"no channel {number}")
        caps = {Capability.LIVE, Capability.RECORDINGS, Capability.ALARMS}
        if number in self.config.ptz_channels:
            caps |= {Capability.PTZ, Capability.PTZ_PRESETS}
        if number in self.config.talk_channels:
            caps.add(Capability.TALK)
        return Channel(
            number=number,
            name=f"Camera {number:02d}",
            online=number not in self.config.offline_channels,
            capabilities=frozenset(caps),
        )

    def channels(self) -> list[Channel]:
        return [self.channel(n) for n in range(1, self.config.channels + 1)]

    # -- recordings ---------------------------------------------------------------------

    def search_recordings(
        self, channel: int, start: datetime, end: datetime, *, limit: int = 100
    ) -> list[tuple[datetime, datetime]]:
        """(start, end) of segments overlapping [start, end), clipped to the retention."""
        self.channel(channel)
        check_aware(start, "start")
        check_aware(end, "end")
        if end <= start or limit <= 0:
            return []
        cfg = self.config
        now = self._wall()
        oldest = now - timedelta(days=cfg.recording_days)
        start = max(start, oldest)
        end = min(end, now)
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        step = cfg.recording_every
        first = epoch + ((start - epoch) // step) * step
        if first + cfg.recording_length <= start:
            first += step
        found: list[tuple[datetime, datetime]] = []
        cursor = first
        while cursor < end and len(found) < limit:
            seg_end = min(cursor + cfg.recording_length, now)
            if seg_end > cursor:
                found.append((cursor.astimezone(UTC), seg_end.astimezone(UTC)))
            cursor += step
        return found

    # -- PTZ ------------------------------------------------------------------------------

    def _head(self, channel: int) -> _PtzHead:
        self.channel(channel)
        head = self._ptz.get(channel)
        if head is None:
            raise NotSupported(f"channel {channel} has no PTZ")
        head.settle(self._monotonic())
        return head

    def ptz_move(self, channel: int, velocity: PtzVector) -> None:
        head = self._head(channel)
        head.velocity = (velocity.pan, velocity.tilt, velocity.zoom)

    def ptz_stop(self, channel: int) -> None:
        self._head(channel).velocity = (0.0, 0.0, 0.0)

    def ptz_status(self, channel: int) -> PtzStatus:
        head = self._head(channel)
        pan, tilt, zoom = head.position
        return PtzStatus(
            position=PtzVector(pan=pan, tilt=tilt, zoom=zoom),
            moving=any(v != 0 for v in head.velocity),
        )

    def ptz_presets(self, channel: int) -> list[PtzPreset]:
        head = self._head(channel)
        return [PtzPreset(number=n, name=name) for n, (name, _) in sorted(head.presets.items())]

    def ptz_set_preset(self, channel: int, preset: int, name: str = "") -> None:
        check_preset(preset)
        head = self._head(channel)
        pan, tilt, zoom = head.position
        head.presets[preset] = (name[:64] or f"Preset {preset}", (pan, tilt, zoom))

    def ptz_goto_preset(self, channel: int, preset: int) -> None:
        check_preset(preset)
        head = self._head(channel)
        stored = head.presets.get(preset)
        if stored is None:
            raise NotFound(f"preset {preset} is not set on channel {channel}")
        head.velocity = (0.0, 0.0, 0.0)
        head.position = list(stored[1])

    # -- alarms -------------------------------------------------------------------------

    def trigger_alarm(
        self,
        kind: AlarmKind,
        *,
        channel: int | None = None,
        input_port: int | None = None,
        active: bool = True,
        vendor_type: str = "",
    ) -> AlarmEvent:
        """Raise (or clear) an alarm and deliver it to every subscriber."""
        if channel is not None:
            self.channel(channel)
        if input_port is not None and not 1 <= input_port <= self.config.alarm_inputs:
            raise NotFound(f"no alarm input {input_port}")
        event = AlarmEvent(
            kind=kind,
            active=active,
            at=self._wall(),
            channel=channel,
            input_port=input_port,
            vendor_type=vendor_type or kind.value,
        )
        self.alarm_state[(kind, channel, input_port)] = active
        for queue in list(self._subscribers):
            # A subscriber that stopped reading loses its oldest events, never blocks us.
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(event)
        return event

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[AlarmEvent]]:
        """A bounded queue receiving every alarm from now on, until the block exits."""
        if len(self._subscribers) >= MAX_SUBSCRIBERS:
            raise DeviceBusy("too many alarm subscribers")
        queue: asyncio.Queue[AlarmEvent] = asyncio.Queue(ALARM_QUEUE_SIZE)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    async def alarm_events(self) -> AsyncIterator[AlarmEvent]:
        with self.subscribe() as queue:
            while True:
                yield await queue.get()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    # -- two-way audio ----------------------------------------------------------------

    def talk_open(self, channel: int) -> TalkSession:
        if Capability.TALK not in self.channel(channel).capabilities:
            raise NotSupported(f"channel {channel} has no two-way audio")
        if channel in self._talk:
            raise DeviceBusy(f"two-way audio already open on channel {channel}")
        session = TalkSession(channel, self._talk_closed)
        self._talk[channel] = session
        return session

    def talk_force_close(self, channel: int) -> None:
        """Close whatever session holds `channel` (ISAPI's PUT .../close)."""
        session = self._talk.get(channel)
        if session is not None:
            session.close()

    def _talk_closed(self, session: TalkSession) -> None:
        if self._talk.get(session.channel) is session:
            del self._talk[session.channel]

    def talk_is_open(self, channel: int) -> bool:
        return channel in self._talk

    def talk_receive(self, session: TalkSession, audio: bytes) -> None:
        """The speaker got `audio`; kept (bounded) for tests."""
        if session.closed:
            raise NotFound("talk session is closed")
        buffer = self._talk_received.setdefault(session.channel, bytearray())
        room = MAX_TALK_BYTES - len(buffer)
        buffer += audio[: max(0, room)]

    def talk_received(self, channel: int) -> bytes:
        """Everything the speaker of `channel` received so far."""
        return bytes(self._talk_received.get(channel, b""))

    @staticmethod
    def microphone_chunk(sequence: int, size: int = 160) -> bytes:
        """20 ms of µ-law audio: a quiet square wave, so it is recognisably not silence."""
        high, low = 0x9F, 0x1F  # +/- small amplitude in µ-law
        return bytes(high if ((sequence * size + i) // 20) % 2 else low for i in range(size))
