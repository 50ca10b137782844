"""The `onvif` backend: a `Recorder` over onvif-zeep-async.

Channels are video sources. Each source's H.264 profiles are its streams: the
highest resolution is MAIN, the next SUB (other encodings are ignored, as Home
Assistant does). PTZ speeds in [-1, 1] go straight into the generic velocity
space every PTZ configuration supports; presets are numbered by their token
("7"), which is how Hikvision and most NVRs name them. Alarms come from a
PullPoint subscription that this backend renews itself (see `pullpoint.py`).

Recordings (Profile G) are offered when the device lists both the Search and
the Replay service: `search_recordings` runs one bounded FindRecordings job
(see `recordings.py`) and keeps the recordings whose source is the channel's
video source (named as event payloads name it: source or configuration token);
`playback_source` asks GetReplayUri for the first recording overlapping the
window and marks the source ``seeks_by_clock``: ONVIF replay is bounded by a
``Range: clock=`` on PLAY, which the agent's RTSP gate then always sends with
the granted window (and ``Require: onvif-replay``). The window also goes into
the URL as ``starttime`` / ``endtime`` for devices that read Hikvision-style
replay URIs. Two-way audio (Profile T backchannel) is not offered.

With ``use_tls`` the SOAP traffic is encrypted, but onvif-zeep-async does not
verify the device certificate (cameras ship self-signed ones): TLS here protects
against eavesdropping on the LAN, not against an impostor device. Credentials
never travel in clear either way (WS-UsernameToken digests).

Settings (strings): ``pull_timeout`` (seconds a PullMessages may wait, default
20), ``subscription_seconds`` (lifetime asked for, default 60), ``max_backoff``
(seconds between resubscription attempts at most, default 30), ``max_recordings``
(MaxMatches of one recordings search, default 1000).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from onvif import ONVIFCamera

from nvrshare.firmware_shim.errors import (
    ConfigError,
    DeviceError,
    NoSuchChannel,
    NotFound,
    NotSupported,
    ShimUsageError,
)
from nvrshare.firmware_shim.interface import Recorder, RecorderConfig
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
    check_channel,
    check_preset,
)

from ._errors import map_errors
from .events import ChannelResolver
from .profiles import ChannelProfiles, channels_from_profiles, resolver_for
from .pullpoint import PullPointSettings, pull_alarm_events
from .recordings import FoundRecording, SearchBounds, find_recordings

__all__ = ["OnvifRecorder", "create"]

_EVENTS_NS = "http://www.onvif.org/ver10/events/wsdl"
_PTZ_NS = "http://www.onvif.org/ver20/ptz/wsdl"
_SEARCH_NS = "http://www.onvif.org/ver10/search/wsdl"
_REPLAY_NS = "http://www.onvif.org/ver10/replay/wsdl"
_MAX_URL = 2048
# The generic velocity spaces: [-1, 1] on every axis, supported by every ONVIF PTZ node.
_PT_VELOCITY = "http://www.onvif.org/ver10/tptz/PanTiltSpaces/VelocityGenericSpace"
_ZOOM_VELOCITY = "http://www.onvif.org/ver10/tptz/ZoomSpaces/VelocityGenericSpace"


def _setting(config: RecorderConfig, key: str, default: float, low: float, high: float) -> float:
    raw = config.settings.get(key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"onvif setting {key} must be a number") from None
    if not low <= value <= high:
        raise ConfigError(f"onvif setting {key} must be within [{low}, {high}]")
    return value


class OnvifRecorder(Recorder):
    """A camera or NVR reached over ONVIF."""

    backend_name = "onvif"

    def __init__(self, config: RecorderConfig, *, logger: logging.Logger) -> None:
        self._config = config
        self._log = logger
        self._events_settings = PullPointSettings(
            pull_timeout=_setting(config, "pull_timeout", 20.0, 1.0, 600.0),
            subscription_seconds=_setting(config, "subscription_seconds", 60.0, 10.0, 86400.0),
            max_backoff=_setting(config, "max_backoff", 30.0, 0.1, 3600.0),
            request_timeout=config.timeout,
        )
        self._search_bounds = SearchBounds(
            max_matches=int(_setting(config, "max_recordings", 1000, 1, 10000)),
            keep_alive=max(10.0, config.timeout * 2),
        )
        self._camera: ONVIFCamera | None = None
        self._channels: dict[int, ChannelProfiles] = {}
        self._capabilities: frozenset[Capability] = frozenset()

    # --- lifecycle ----------------------------------------------------------------

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self._capabilities

    def _cam(self) -> ONVIFCamera:
        if self._camera is None:
            raise ShimUsageError("onvif: use the recorder inside `async with` (not connected)")
        return self._camera

    async def connect(self) -> None:
        config = self._config
        host = config.host
        if config.use_tls and not host.startswith("https://"):
            host = f"https://{host}"
        # Built here, not in __init__: it opens aiohttp sessions, which need the running loop.
        self._camera = ONVIFCamera(
            host,
            config.port or (443 if config.use_tls else 80),
            config.username,
            config.password,
            no_cache=True,
            adjust_time=True,
        )
        try:
            with map_errors("connect"):
                async with asyncio.timeout(config.timeout * 3):
                    await self._camera.update_xaddrs()
            await self._load_profiles()
        except BaseException:
            await self.close()
            raise
        capabilities = {Capability.LIVE}
        if _PTZ_NS in self._camera.xaddrs and any(c.ptz for c in self._channels.values()):
            capabilities |= {Capability.PTZ, Capability.PTZ_PRESETS}
        if _EVENTS_NS in self._camera.xaddrs:
            capabilities.add(Capability.ALARMS)
        if {_SEARCH_NS, _REPLAY_NS} <= self._camera.xaddrs.keys():
            capabilities.add(Capability.RECORDINGS)
        self._capabilities = frozenset(capabilities)

    async def close(self) -> None:
        camera, self._camera = self._camera, None
        self._capabilities = frozenset()
        if camera is None:
            return
        # Closing a half-open client must not mask the error that made us close it.
        try:
            with map_errors("close"):
                await camera.close()
        except DeviceError:
            self._log.debug("onvif: error while closing", exc_info=True)

    async def _call(self, service: str, operation: str, params: Any = None) -> Any:
        """One SOAP request, bounded by the configured timeout, errors mapped."""
        camera = self._cam()
        with map_errors(f"{service}.{operation}"):
            async with asyncio.timeout(self._config.timeout):
                proxy = await camera.create_onvif_service(service)
                return await getattr(proxy, operation)(params)

    # --- identity and channels ----------------------------------------------------

    async def device_info(self) -> DeviceInfo:
        info = await self._call("devicemgmt", "GetDeviceInformation")
        mac: str | None = None
        try:
            interfaces = await self._call("devicemgmt", "GetNetworkInterfaces")
            with map_errors("GetNetworkInterfaces"):
                mac = next(
                    (str(i.Info.HwAddress) for i in interfaces or [] if i.Info is not None), None
                )
        except DeviceError as exc:
            # The MAC is a nice-to-have identity hint; cameras may hide it from operators.
            self._log.debug("onvif: no MAC from GetNetworkInterfaces: %s", exc)
        with map_errors("GetDeviceInformation"):
            # Some cheap cameras leave SerialNumber empty; the MAC is the next stable name.
            serial = str(info.SerialNumber or "").strip() or (mac or "").replace(":", "").upper()
            return DeviceInfo(
                serial=serial[:128],
                model=str(info.Model or "").strip()[:128],
                firmware_version=str(info.FirmwareVersion or "").strip()[:128],
                manufacturer=str(info.Manufacturer or "").strip()[:128],
                mac=mac[:64] if mac else None,
            )

    async def _load_profiles(self) -> None:
        profiles = await self._call("media", "GetProfiles")
        with map_errors("GetProfiles"):
            self._channels = channels_from_profiles(profiles or [])

    def _channel(self, channel: int) -> ChannelProfiles:
        check_channel(channel)
        found = self._channels.get(channel)
        if found is None:
            raise NoSuchChannel(f"onvif: no channel {channel}")
        return found

    def resolver(self) -> ChannelResolver:
        """How event payload tokens name this device's channels."""
        return resolver_for(self._channels)

    async def channels(self) -> list[Channel]:
        await self._load_profiles()
        result = []
        for channel in self._channels.values():
            capabilities = {Capability.LIVE}
            if channel.ptz and Capability.PTZ in self._capabilities:
                capabilities |= {Capability.PTZ, Capability.PTZ_PRESETS}
            if Capability.ALARMS in self._capabilities:
                capabilities.add(Capability.ALARMS)
            if Capability.RECORDINGS in self._capabilities:
                capabilities.add(Capability.RECORDINGS)
            result.append(
                Channel(
                    number=channel.number,
                    name=channel.name,
                    online=True,
                    capabilities=frozenset(capabilities),
                )
            )
        return result

    # --- video --------------------------------------------------------------------

    async def live_source(self, channel: int, kind: StreamKind = StreamKind.MAIN) -> StreamSource:
        profiles = self._channel(channel)
        token = profiles.main if kind is StreamKind.MAIN else profiles.sub
        if token is None:
            raise NotSupported(f"onvif: channel {channel} has no sub stream")
        reply = await self._call(
            "media",
            "GetStreamUri",
            {
                "ProfileToken": token,
                "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
            },
        )
        with map_errors("GetStreamUri"):
            return self._source(str(reply.Uri))

    def _source(self, uri: str, *, seeks_by_clock: bool = False) -> StreamSource:
        url = uri.strip()
        if len(url) > _MAX_URL:
            raise ValueError("stream URI too long")
        if self._config.rtsp_port is not None:
            url = _with_port(url, self._config.rtsp_port)
        return StreamSource(
            url=url,
            username=self._config.username,
            password=self._config.password,
            seeks_by_clock=seeks_by_clock,
        )

    # --- recordings (Profile G) ---------------------------------------------------

    async def _recordings(self, channel: int) -> list[FoundRecording]:
        """The channel's recordings, oldest first."""
        if Capability.RECORDINGS not in self._capabilities:
            raise NotSupported("onvif: this device has no search / replay service")
        self._channel(channel)
        # Shim errors from each request pass through; an odd reply shape becomes BadResponse.
        with map_errors("FindRecordings"):
            found = await find_recordings(self._call, self._search_bounds)
        if len(found) >= self._search_bounds.max_matches:
            self._log.warning(
                "onvif: the recordings search stopped at max_recordings=%d: "
                "some recordings may be missing",
                self._search_bounds.max_matches,
            )
        resolver = self.resolver()
        mine = [r for r in found if resolver.channel(r.source_id) == channel]
        return sorted(mine, key=lambda r: (r.start, r.end))

    async def search_recordings(
        self, channel: int, start: datetime, end: datetime, *, limit: int = 100
    ) -> list[RecordingSegment]:
        if Capability.RECORDINGS not in self._capabilities:
            raise NotSupported("onvif: this device has no search / replay service")
        check_aware(start, "start")
        check_aware(end, "end")
        if end <= start or limit <= 0:
            return []
        recordings = await self._recordings(channel)
        with map_errors("FindRecordings"):
            return [
                RecordingSegment(channel=channel, start=r.start, end=r.end)
                for r in recordings
                if r.start < end and r.end > start
            ][:limit]

    async def playback_source(self, channel: int, start: datetime, end: datetime) -> StreamSource:
        if Capability.RECORDINGS not in self._capabilities:
            raise NotSupported("onvif: this device has no search / replay service")
        check_aware(start, "start")
        check_aware(end, "end")
        if end <= start:
            raise ShimUsageError("playback end must be after its start")
        recordings = await self._recordings(channel)
        recording = next((r for r in recordings if r.start < end and r.end > start), None)
        if recording is None:
            raise NotFound(f"onvif: no recording on channel {channel} in that window")
        reply = await self._call(
            "replay",
            "GetReplayUri",
            {
                "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
                "RecordingToken": recording.token,
            },
        )
        with map_errors("GetReplayUri"):
            uri = reply if isinstance(reply, str) else reply.Uri
            # ONVIF replay is bounded by `Range: clock=` on PLAY (the agent's gate
            # sends it); the query window is for devices that read it instead.
            return self._source(_with_window(str(uri), start, end), seeks_by_clock=True)

    # --- PTZ ----------------------------------------------------------------------

    def _ptz_profile(self, channel: int) -> str:
        if Capability.PTZ not in self._capabilities:
            raise NotSupported("onvif: this device has no PTZ service")
        profiles = self._channel(channel)
        if not profiles.ptz:
            raise NotSupported(f"onvif: channel {channel} has no PTZ")
        return profiles.main

    async def ptz_move(self, channel: int, velocity: PtzVector) -> None:
        token = self._ptz_profile(channel)
        if velocity.is_zero:
            await self.ptz_stop(channel)
            return
        await self._call(
            "ptz",
            "ContinuousMove",
            {
                "ProfileToken": token,
                # Named explicitly: a configuration's default space may be in degrees.
                "Velocity": {
                    "PanTilt": {"x": velocity.pan, "y": velocity.tilt, "space": _PT_VELOCITY},
                    "Zoom": {"x": velocity.zoom, "space": _ZOOM_VELOCITY},
                },
            },
        )

    async def ptz_stop(self, channel: int) -> None:
        token = self._ptz_profile(channel)
        await self._call("ptz", "Stop", {"ProfileToken": token, "PanTilt": True, "Zoom": True})

    async def ptz_status(self, channel: int) -> PtzStatus:
        token = self._ptz_profile(channel)
        status = await self._call("ptz", "GetStatus", {"ProfileToken": token})
        with map_errors("GetStatus"):
            position = status.Position
            pan_tilt = position.PanTilt if position is not None else None
            zoom = position.Zoom if position is not None else None
            move = status.MoveStatus
            moving = move is not None and "MOVING" in (
                str(move.PanTilt).upper(),
                str(move.Zoom).upper(),
            )
            return PtzStatus(
                position=PtzVector(
                    pan=_unit(pan_tilt.x if pan_tilt is not None else 0.0),
                    tilt=_unit(pan_tilt.y if pan_tilt is not None else 0.0),
                    zoom=_unit(zoom.x if zoom is not None else 0.0),
                ),
                moving=moving,
            )

    async def ptz_presets(self, channel: int) -> list[PtzPreset]:
        token = self._ptz_profile(channel)
        presets = await self._call("ptz", "GetPresets", {"ProfileToken": token})
        result: dict[int, PtzPreset] = {}
        with map_errors("GetPresets"):
            for preset in presets or []:
                number = _preset_number(preset.token)
                if number is None:
                    # Presets named by an opaque token cannot be addressed by number.
                    self._log.debug("onvif: skipping preset token %r", str(preset.token)[:40])
                    continue
                result[number] = PtzPreset(number=number, name=str(preset.Name or "")[:64])
        return [result[n] for n in sorted(result)]

    async def ptz_goto_preset(self, channel: int, preset: int) -> None:
        check_preset(preset)
        token = self._ptz_profile(channel)
        # Cameras disagree on the fault for an unknown token; checking first is portable.
        if preset not in {p.number for p in await self.ptz_presets(channel)}:
            raise NotFound(f"onvif: no preset {preset} on channel {channel}")
        await self._call("ptz", "GotoPreset", {"ProfileToken": token, "PresetToken": str(preset)})

    async def ptz_set_preset(self, channel: int, preset: int, name: str = "") -> None:
        check_preset(preset)
        token = self._ptz_profile(channel)
        await self._call(
            "ptz",
            "SetPreset",
            {
                "ProfileToken": token,
                "PresetToken": str(preset),
                "PresetName": (name or f"Preset {preset}")[:64],
            },
        )

    # --- alarms -------------------------------------------------------------------

    async def alarm_events(self) -> AsyncIterator[AlarmEvent]:
        if Capability.ALARMS not in self._capabilities:
            raise NotSupported("onvif: this device has no event service")
        async for event in pull_alarm_events(
            self._cam(), self.resolver, self._events_settings, logger=self._log
        ):
            yield event


def _unit(value: Any) -> float:
    number = float(value)
    if math.isnan(number):  # from a broken camera
        return 0.0
    return min(max(number, -1.0), 1.0)


def _preset_number(token: Any) -> int | None:
    text = str(token).strip()
    if not text.isdigit() or len(text) > 3:
        return None
    number = int(text)
    return number if 1 <= number <= 256 else None


def _track_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _with_window(url: str, start: datetime, end: datetime) -> str:
    """The replay URL with ``starttime`` / ``endtime`` set to the window (others kept)."""
    parts = urlsplit(url.strip())
    query = [
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if key.lower() not in ("starttime", "endtime")
    ]
    query += [("starttime", _track_time(start)), ("endtime", _track_time(end))]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}:{port}" if userinfo else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def create(config: RecorderConfig, *, logger: logging.Logger) -> OnvifRecorder:
    """The entry point `open_recorder` looks up."""
    return OnvifRecorder(config, logger=logger)
