"""`IsapiRecorder`: the shim interface over Hikvision ISAPI (HTTP Digest + XML).

Connect probes deviceInfo (which also primes the Digest challenge, so later
streaming requests authenticate preemptively), then the RTSP port from
Security/adminAccesses unless configured.  `channels()` always asks the
device; the channel numbers it (or a lookup) found are kept for
`channel_cache_seconds`, so a session offer costs no ISAPI request while they
are fresh (a number not in the kept list is asked about again at once: a
channel just added is never refused; one just removed fails later, at RTSP).
PTZ and talk support per channel are probed and cached.

Settings (strings): utc_offset_minutes (device-local clock offset, default 0),
alarm_watchdog (seconds without any alert-stream part before reconnecting,
default 30), channel_cache_seconds (how long a channel list answers live
source lookups, 0..60, default 5), talk_takeover ("true": close a session another client left open
before opening ours, as Hikvision's own clients do; default "true"),
tls_fingerprint (with use_tls: the SHA-256 of the device certificate, hex, to
pin a self-signed certificate; default: normal CA verification).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from nvrshare.firmware_shim.backends.isapi import inventory, ptz, search, xmlparse
from nvrshare.firmware_shim.backends.isapi.alerts import AlertHub, alert_events
from nvrshare.firmware_shim.backends.isapi.http import IsapiHttp
from nvrshare.firmware_shim.backends.isapi.talk import IsapiTalkChannel
from nvrshare.firmware_shim.errors import (
    BadResponse,
    ConfigError,
    DeviceBusy,
    NoSuchChannel,
    NotFound,
    NotSupported,
    ShimUsageError,
)
from nvrshare.firmware_shim.interface import Recorder, RecorderConfig, TalkChannel
from nvrshare.firmware_shim.models import (
    AlarmEvent,
    AudioCodec,
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

__all__ = ["IsapiRecorder", "create"]

ISAPI_CAPABILITIES = frozenset(Capability)
PAGE = 50
MAX_PAGES = 200


def _fingerprint(text: str) -> bytes | None:
    """`tls_fingerprint` setting: the device certificate's SHA-256, hex (colons allowed)."""
    if not text:
        return None
    try:
        digest = bytes.fromhex(text.replace(":", ""))
    except ValueError:
        raise ConfigError("isapi tls_fingerprint must be hex") from None
    if len(digest) != 32:
        raise ConfigError("isapi tls_fingerprint must be a SHA-256 (32 bytes)")
    return digest


def _check_years(start: datetime, end: datetime) -> None:
    # Far-off instants overflow once shifted to device-local time, and no recorder has them.
    if start.year < xmlparse.MIN_YEAR or end.year > xmlparse.MAX_YEAR:
        raise ShimUsageError(f"time window outside {xmlparse.MIN_YEAR}..{xmlparse.MAX_YEAR}")


class IsapiRecorder(Recorder):
    """A Hikvision NVR or camera reached over ISAPI."""

    backend_name = "isapi"

    def __init__(self, config: RecorderConfig, *, logger: logging.Logger) -> None:
        scheme = "https" if config.use_tls else "http"
        port = config.port or (443 if config.use_tls else 80)
        host = f"[{config.host}]" if ":" in config.host else config.host
        self._config = config
        self._host = host
        self._log = logger
        settings = config.settings
        self._http = IsapiHttp(
            f"{scheme}://{host}:{port}",
            username=config.username,
            password=config.password,
            timeout=config.timeout,
            tls_fingerprint=_fingerprint(settings.get("tls_fingerprint", "")),
        )
        try:
            self._offset = timedelta(minutes=int(settings.get("utc_offset_minutes", "0")))
            self._watchdog = float(settings.get("alarm_watchdog", "30"))
            self._channels_ttl = float(settings.get("channel_cache_seconds", "5"))
        except ValueError:
            raise ConfigError(
                "isapi settings utc_offset_minutes / alarm_watchdog / channel_cache_seconds"
            ) from None
        if abs(self._offset) > timedelta(hours=14) or not 1 <= self._watchdog <= 600:
            raise ConfigError("isapi utc_offset_minutes or alarm_watchdog out of range")
        if not 0 <= self._channels_ttl <= 60:
            raise ConfigError("isapi channel_cache_seconds out of range (0..60)")
        self._clock = time.monotonic
        self._numbers: frozenset[int] = frozenset()
        self._numbers_at: float | None = None  # when `_numbers` was read; None: never
        self._numbers_lock = asyncio.Lock()
        self._takeover = settings.get("talk_takeover", "true").lower() == "true"
        self._rtsp_port = config.rtsp_port
        self._ptz: dict[int, bool] = {}
        self._talk_channels: frozenset[int] | None = None
        self._talk_codecs: dict[int, AudioCodec] = {}
        self._talking: set[int] = set()  # channels with a session being opened or open
        self._talks: dict[int, IsapiTalkChannel] = {}
        self._moving: dict[int, bool] = {}
        self._alerts = AlertHub(self._alert_stream)

    @property
    def capabilities(self) -> frozenset[Capability]:
        return ISAPI_CAPABILITIES

    async def connect(self) -> None:
        await self._http.open()
        try:
            await self.device_info()
            if self._rtsp_port is None:
                self._rtsp_port = await self._probe_rtsp_port()
        except BaseException:
            await self._http.close()
            raise

    async def close(self) -> None:
        # Sessions the caller left open are released on the device before we go.
        for talk in list(self._talks.values()):
            await talk.close()
        await self._alerts.close()
        await self._http.close()

    async def _probe_rtsp_port(self) -> int:
        try:
            root = await self._http.xml("GET", "/ISAPI/Security/adminAccesses")
        except (NotFound, NotSupported):
            return 554
        for proto in xmlparse.children(root, "AdminAccessProtocol"):
            if (xmlparse.text_of(proto, "protocol") or "").upper() == "RTSP":
                port = xmlparse.int_of(proto, "portNo")
                if port is not None and 1 <= port <= 65535:
                    return port
        return 554

    # -- identity and channels --------------------------------------------------------------

    async def device_info(self) -> DeviceInfo:
        root = await self._http.xml("GET", "/ISAPI/System/deviceInfo")
        serial = xmlparse.text_of(root, "serialNumber") or ""
        model = xmlparse.text_of(root, "model") or ""
        if not serial or not model:
            raise BadResponse("deviceInfo without serialNumber/model")
        version = xmlparse.text_of(root, "firmwareVersion") or ""
        released = xmlparse.text_of(root, "firmwareReleasedDate") or ""
        try:
            return DeviceInfo(
                serial=serial,
                model=model,
                firmware_version=f"{version} {released}".strip() or "unknown",
                manufacturer=xmlparse.text_of(root, "manufacturer") or "Hikvision",
                mac=xmlparse.text_of(root, "macAddress") or None,
                name=xmlparse.text_of(root, "deviceName") or "",
            )
        except ShimUsageError as exc:  # the device's values, not the caller's
            raise BadResponse(f"deviceInfo: {exc}") from None

    async def _channel_list(self, *, with_status: bool = True) -> list[inventory.ListedChannel]:
        started = self._clock()
        try:
            root = await self._http.xml("GET", "/ISAPI/ContentMgmt/InputProxy/channels")
        except (NotFound, NotSupported):  # a camera, not an NVR
            root = await self._http.xml("GET", "/ISAPI/Streaming/channels")
            listed = inventory.parse_streaming_channels(root)
        else:
            found = inventory.parse_proxy_channels(root)
            if with_status:
                with contextlib.suppress(NotFound, NotSupported):
                    status = await self._http.xml(
                        "GET", "/ISAPI/ContentMgmt/InputProxy/channels/status"
                    )
                    inventory.apply_status(found, status)
            listed = [found[n] for n in sorted(found)]
        self._numbers, self._numbers_at = frozenset(n for n, _, _ in listed), started
        return listed

    async def _has_ptz(self, channel: int) -> bool:
        if channel not in self._ptz:
            try:
                await self._http.call("GET", f"/ISAPI/PTZCtrl/channels/{channel}/status")
                self._ptz[channel] = True
            except (NotFound, NotSupported):
                self._ptz[channel] = False
        return self._ptz[channel]

    async def _talk_set(self) -> frozenset[int]:
        if self._talk_channels is None:
            try:
                root = await self._http.xml("GET", "/ISAPI/System/TwoWayAudio/channels")
                self._talk_codecs = inventory.parse_talk_channels(root)
            except (NotFound, NotSupported):
                self._talk_codecs = {}
            self._talk_channels = frozenset(self._talk_codecs)
        return self._talk_channels

    async def channels(self) -> list[Channel]:
        listed = await self._channel_list()
        talk = await self._talk_set()
        result = []
        for number, name, online in listed:
            caps = {Capability.LIVE, Capability.RECORDINGS, Capability.ALARMS}
            if await self._has_ptz(number):
                caps |= {Capability.PTZ, Capability.PTZ_PRESETS}
            if number in talk:
                caps.add(Capability.TALK)
            result.append(
                Channel(number=number, name=name, online=online, capabilities=frozenset(caps))
            )
        return result

    def _fresh_numbers(self) -> bool:
        at = self._numbers_at
        return at is not None and self._clock() - at < self._channels_ttl

    async def _known_channel(self, channel: int) -> None:
        check_channel(channel)
        if channel in self._numbers and self._fresh_numbers():
            return
        # One request for many offers at once: whoever waited finds the list fresh.
        async with self._numbers_lock:
            if not (channel in self._numbers and self._fresh_numbers()):
                await self._channel_list(with_status=False)  # online or not, it exists
        if channel not in self._numbers:
            raise NoSuchChannel(f"no channel {channel}")

    # -- video --------------------------------------------------------------------------------

    def _rtsp(self, path_and_query: str) -> StreamSource:
        port = self._rtsp_port or 554
        return StreamSource(
            url=f"rtsp://{self._host}:{port}{path_and_query}",
            username=self._config.username,
            password=self._config.password,
        )

    async def live_source(self, channel: int, kind: StreamKind = StreamKind.MAIN) -> StreamSource:
        await self._known_channel(channel)
        stream = 1 if StreamKind(kind) is StreamKind.MAIN else 2
        return self._rtsp(f"/Streaming/Channels/{channel * 100 + stream}")

    async def search_recordings(
        self, channel: int, start: datetime, end: datetime, *, limit: int = 100
    ) -> list[RecordingSegment]:
        check_channel(channel)
        check_aware(start, "start")
        check_aware(end, "end")
        if not 1 <= limit <= 10_000:
            raise ShimUsageError("limit must be within 1..10000")
        if end <= start:
            return []
        _check_years(start, end)
        track = channel * 100 + 1
        search_id = str(uuid.uuid4()).upper()
        segments: list[RecordingSegment] = []
        position = 0
        for _ in range(MAX_PAGES):
            wanted = min(PAGE, limit - len(segments))
            body = search.search_body(
                search_id, track, start, end, offset=self._offset, count=wanted, position=position
            )
            root = await self._http.xml("POST", search.SEARCH_PATH, body=body)
            matches, seen, more = search.parse_matches(root, track, self._offset, limit=wanted)
            for seg_start, seg_end, uri in matches:
                source = self._playback_from_uri(uri, channel, seg_start, seg_end)
                segments.append(
                    RecordingSegment(channel=channel, start=seg_start, end=seg_end, source=source)
                )
            position += seen
            if not more or not seen or len(segments) >= limit:
                break
        segments.sort(key=lambda s: s.start)
        return segments[:limit]

    def _playback_from_uri(
        self, uri: str, channel: int, start: datetime, end: datetime
    ) -> StreamSource:
        # The device writes its own idea of its address; keep only path and query.
        parts = urlsplit(uri) if uri.startswith("rtsp://") else None
        if parts is not None and parts.path.startswith("/Streaming/tracks/") and len(uri) < 2048:
            query = f"?{parts.query}" if parts.query else ""
            return self._rtsp(parts.path + query)
        return self._playback(channel, start, end)

    def _playback(self, channel: int, start: datetime, end: datetime) -> StreamSource:
        return self._rtsp(
            f"/Streaming/tracks/{channel * 100 + 1}/"
            f"?starttime={search.track_time(start, self._offset)}"
            f"&endtime={search.track_time(end, self._offset)}"
        )

    async def playback_source(self, channel: int, start: datetime, end: datetime) -> StreamSource:
        check_channel(channel)
        check_aware(start, "start")
        check_aware(end, "end")
        if end <= start:
            raise ShimUsageError("end must be after start")
        _check_years(start, end)
        return self._playback(channel, start, end)

    # -- PTZ -----------------------------------------------------------------------------------

    async def ptz_move(self, channel: int, velocity: PtzVector) -> None:
        check_channel(channel)
        body = ptz.continuous_body(velocity)
        await self._http.call("PUT", f"/ISAPI/PTZCtrl/channels/{channel}/continuous", body=body)
        self._moving[channel] = not velocity.is_zero

    async def ptz_stop(self, channel: int) -> None:
        await self.ptz_move(channel, PtzVector())

    async def ptz_status(self, channel: int) -> PtzStatus:
        check_channel(channel)
        root = await self._http.xml("GET", f"/ISAPI/PTZCtrl/channels/{channel}/status")
        position = ptz.parse_position(root)
        return PtzStatus(position=position, moving=self._moving.get(channel, False))

    async def ptz_presets(self, channel: int) -> list[PtzPreset]:
        check_channel(channel)
        root = await self._http.xml("GET", f"/ISAPI/PTZCtrl/channels/{channel}/presets")
        return ptz.parse_presets(root)

    async def ptz_goto_preset(self, channel: int, preset: int) -> None:
        check_channel(channel)
        check_preset(preset)
        await self._http.call("PUT", f"/ISAPI/PTZCtrl/channels/{channel}/presets/{preset}/goto")
        self._moving[channel] = False

    async def ptz_set_preset(self, channel: int, preset: int, name: str = "") -> None:
        check_channel(channel)
        check_preset(preset)
        body = ptz.preset_body(preset, name)
        path = f"/ISAPI/PTZCtrl/channels/{channel}/presets/{preset}"
        await self._http.call("PUT", path, body=body)

    # -- alarms --------------------------------------------------------------------------------

    def alarm_events(self) -> AsyncIterator[AlarmEvent]:
        return self._alerts.subscribe()

    def _alert_stream(self) -> AsyncIterator[AlarmEvent]:
        return alert_events(
            self._http, watchdog=self._watchdog, utc_offset=self._offset, logger=self._log
        )

    # -- two-way audio -------------------------------------------------------------------------

    async def open_talk(self, channel: int) -> TalkChannel:
        check_channel(channel)
        if channel in self._talking:
            raise DeviceBusy(f"two-way audio already open on channel {channel}")
        if channel not in await self._talk_set():
            raise NotSupported(f"channel {channel} has no two-way audio")
        self._talking.add(channel)
        try:
            session_id = await self._talk_open(channel)
        except BaseException:
            self._talking.discard(channel)
            raise
        talk = IsapiTalkChannel(
            self._http, channel, session_id, on_close=self._talk_closed, logger=self._log
        )
        talk.codec = self._talk_codecs.get(channel, AudioCodec.G711_ULAW)
        talk.start()
        self._talks[channel] = talk
        return talk

    async def _talk_open(self, channel: int) -> str:
        path = f"/ISAPI/System/TwoWayAudio/channels/{channel}"
        try:
            root = await self._http.xml("PUT", f"{path}/open")
        except DeviceBusy:
            if not self._takeover:
                raise
            # A session left open by a crashed client blocks everyone: reclaim it.
            await self._http.call("PUT", f"{path}/close")
            root = await self._http.xml("PUT", f"{path}/open")
        return (xmlparse.text_of(root, "sessionId") or "")[:64]

    async def _talk_closed(self, channel: int) -> None:
        try:
            await self._http.call("PUT", f"/ISAPI/System/TwoWayAudio/channels/{channel}/close")
        finally:
            self._talking.discard(channel)
            self._talks.pop(channel, None)


def create(config: RecorderConfig, *, logger: logging.Logger) -> IsapiRecorder:
    return IsapiRecorder(config, logger=logger)
