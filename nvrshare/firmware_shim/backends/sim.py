"""The `sim` backend: the whole interface, in-process, over a `SimDevice`.

It is the fake that most agent tests run against.  Its live and playback
sources point at `rtsp_base` (settings key "rtsp_base"), so a test that also
runs the RTSP simulator gets URLs that really play.

Settings (all strings, from the agent's TOML): channels, serial, rtsp_base.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from nvrshare.firmware_shim.errors import ConfigError, DeviceUnreachable, NotFound, ShimUsageError
from nvrshare.firmware_shim.interface import Recorder, RecorderConfig, TalkChannel
from nvrshare.firmware_shim.models import (
    AlarmEvent,
    Capability,
    Channel,
    DeviceInfo,
    PtzPreset,
    PtzStatus,
    PtzVector,
    RecordingSegment,
    StreamKind,
    StreamSource,
    check_aware,
)
from nvrshare.firmware_shim.simdevice import SimDevice, SimDeviceConfig, TalkSession

__all__ = ["SimRecorder", "SimTalkChannel", "create", "live_path", "playback_path"]

SIM_CAPABILITIES = frozenset(Capability)
CHUNK_SECONDS = 0.02
DEFAULT_SERIAL = "SIM0000000001"


def live_path(channel: int, kind: StreamKind) -> str:
    """ISAPI-style live path: /Streaming/Channels/101 (channel 1 main), 102 (sub)."""
    return f"/Streaming/Channels/{channel * 100 + (1 if kind is StreamKind.MAIN else 2)}"


def isapi_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def playback_path(channel: int, start: datetime, end: datetime) -> str:
    """ISAPI-style playback path with the time window in the query."""
    return (
        f"/Streaming/tracks/{channel * 100 + 1}"
        f"?starttime={isapi_time(start)}&endtime={isapi_time(end)}"
    )


class SimTalkChannel(TalkChannel):
    """Talk session bound to a `SimDevice`: writes land in its speaker buffer."""

    def __init__(self, device: SimDevice, session: TalkSession) -> None:
        self._device = device
        self._session = session
        self._sequence = 0

    async def write(self, frames: bytes) -> None:
        self._device.talk_receive(self._session, bytes(frames))
        await asyncio.sleep(0)

    async def read(self) -> bytes:
        if self._session.closed:
            return b""
        # Pace like a real microphone: 20 ms of audio every 20 ms.
        await asyncio.sleep(CHUNK_SECONDS)
        if self._session.closed:
            return b""
        self._sequence += 1
        return self._device.microphone_chunk(self._sequence)

    @property
    def closed(self) -> bool:
        return self._session.closed

    async def close(self) -> None:
        self._session.close()


class SimRecorder(Recorder):
    """A `Recorder` over an in-process `SimDevice` (exposed as `.device` for tests)."""

    backend_name = "sim"

    def __init__(
        self,
        device: SimDevice | None = None,
        *,
        rtsp_base: str = "rtsp://127.0.0.1:554",
        username: str = "",
        password: str = "",
        logger: logging.Logger | None = None,
    ) -> None:
        self.device = device or SimDevice()
        self._rtsp_base = rtsp_base.rstrip("/")
        self._username = username
        self._password = password
        self._log = logger or logging.getLogger(__name__)
        self._open = False
        # Fault knobs: every call fails as if the device vanished / answers this late.
        self.unreachable = False
        self.delay = 0.0
        self._talks: list[SimTalkChannel] = []

    @property
    def capabilities(self) -> frozenset[Capability]:
        return SIM_CAPABILITIES

    async def connect(self) -> None:
        await self._check()
        self._open = True

    async def close(self) -> None:
        # Sessions the caller left open are released, as the isapi backend does.
        for talk in self._talks:
            await talk.close()
        self._talks.clear()
        self._open = False

    async def _check(self) -> None:
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        if self.unreachable:
            raise DeviceUnreachable("simulated device is unreachable")

    def _source(self, path: str) -> StreamSource:
        return StreamSource(
            url=f"{self._rtsp_base}{path}", username=self._username, password=self._password
        )

    async def device_info(self) -> DeviceInfo:
        await self._check()
        return self.device.device_info()

    async def channels(self) -> list[Channel]:
        await self._check()
        return self.device.channels()

    async def live_source(self, channel: int, kind: StreamKind = StreamKind.MAIN) -> StreamSource:
        await self._check()
        self.device.channel(channel)
        return self._source(live_path(channel, StreamKind(kind)))

    async def search_recordings(
        self, channel: int, start: datetime, end: datetime, *, limit: int = 100
    ) -> list[RecordingSegment]:
        await self._check()
        if not 1 <= limit <= 10_000:
            raise ShimUsageError("limit must be within 1..10000")
        return [
            RecordingSegment(
                channel=channel, start=s, end=e, source=self._source(playback_path(channel, s, e))
            )
            for s, e in self.device.search_recordings(channel, start, end, limit=limit)
        ]

    async def playback_source(self, channel: int, start: datetime, end: datetime) -> StreamSource:
        await self._check()
        check_aware(start, "start")
        check_aware(end, "end")
        if end <= start:
            raise ShimUsageError("end must be after start")
        if not self.device.search_recordings(channel, start, end, limit=1):
            raise NotFound(f"no recording on channel {channel} in that window")
        return self._source(playback_path(channel, start, end))

    async def ptz_move(self, channel: int, velocity: PtzVector) -> None:
        await self._check()
        self.device.ptz_move(channel, velocity)

    async def ptz_stop(self, channel: int) -> None:
        await self._check()
        self.device.ptz_stop(channel)

    async def ptz_status(self, channel: int) -> PtzStatus:
        await self._check()
        return self.device.ptz_status(channel)

    async def ptz_presets(self, channel: int) -> list[PtzPreset]:
        await self._check()
        return self.device.ptz_presets(channel)

    async def ptz_goto_preset(self, channel: int, preset: int) -> None:
        await self._check()
        self.device.ptz_goto_preset(channel, preset)

    async def ptz_set_preset(self, channel: int, preset: int, name: str = "") -> None:
        await self._check()
        self.device.ptz_set_preset(channel, preset, name)

    async def alarm_events(self) -> AsyncIterator[AlarmEvent]:
        await self._check()
        async for event in self.device.alarm_events():
            yield event

    async def open_talk(self, channel: int) -> TalkChannel:
        await self._check()
        talk = SimTalkChannel(self.device, self.device.talk_open(channel))
        self._talks = [t for t in self._talks if not t.closed] + [talk]
        return talk


def _int_setting(config: RecorderConfig, key: str, default: int) -> int:
    raw = config.settings.get(key)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"sim setting {key!r} must be an integer") from None


def create(config: RecorderConfig, *, logger: logging.Logger) -> SimRecorder:
    """Build a sim recorder from settings: channels, serial, rtsp_base."""
    try:
        device_config = SimDeviceConfig(
            serial=config.settings.get("serial", DEFAULT_SERIAL),
            channels=_int_setting(config, "channels", 4),
        )
    except ShimUsageError as exc:
        raise ConfigError(str(exc)) from exc
    rtsp_base = config.settings.get("rtsp_base", "rtsp://127.0.0.1:554")
    if not rtsp_base.startswith("rtsp://"):
        raise ConfigError("sim setting 'rtsp_base' must be an rtsp:// URL")
    return SimRecorder(
        SimDevice(device_config),
        rtsp_base=rtsp_base,
        username=config.username,
        password=config.password,
        logger=logger,
    )
