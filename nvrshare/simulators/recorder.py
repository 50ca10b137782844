"""The recorder simulator: an NVR with N channels, over real ISAPI HTTP and RTSP.

`async with RecorderSimulator(RecorderSimConfig(channels=4)) as nvr:` starts an
RTSP server (live `/Streaming/Channels/<ch><01|02>`, playback
`/Streaming/tracks/<ch>01?starttime=…&endtime=…`) and the ISAPI surface, both
over one `SimDevice` (exposed as `nvr.device`: trigger alarms, read the talk
sink, inspect PTZ).  Fault knobs: `nvr.rtsp.faults`, `nvr.isapi.faults`,
`nvr.rtsp.drop_streams()`, `nvr.isapi.drop_alert_streams()`, and
`await nvr.refuse_http(True)` which closes the HTTP listener (connection refused).
Each channel's video carries its own colour tint (channel % 8, see
`h264clip.tint_of`), so a test can check which channel a stream really shows.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self

from aiohttp import web

from nvrshare.firmware_shim.errors import ShimError
from nvrshare.firmware_shim.simdevice import SimDevice, SimDeviceConfig
from nvrshare.simulators.digest import DigestAuthenticator
from nvrshare.simulators.h264clip import TINTS, H264Clip, clip
from nvrshare.simulators.isapi_app import IsapiService
from nvrshare.simulators.rtsp_server import RtspServer, RtspServerConfig, StreamSpec

__all__ = ["RecorderSimConfig", "RecorderSimulator"]

MAX_PLAYBACK = 3600.0


@dataclass(frozen=True, kw_only=True, slots=True)
class RecorderSimConfig:
    """Settings of one simulated recorder; port 0 = pick a free one."""

    channels: int = 4
    host: str = "127.0.0.1"
    http_port: int = 0
    rtsp_port: int = 0
    username: str = "admin"
    password: str = field(default="", repr=False)
    serial: str = "DS7608NI0020260101CCRR000000001"
    main_size: tuple[int, int] = (640, 360)
    sub_size: tuple[int, int] = (320, 180)
    fps: int = 25
    heartbeat: float = 10.0  # seconds between alertStream heartbeats
    ptz_channels: frozenset[int] = frozenset({1})
    talk_channels: frozenset[int] = frozenset({1})
    offline_channels: frozenset[int] = frozenset()


def _track_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


class RecorderSimulator:
    """A simulated NVR; see the module docstring."""

    def __init__(
        self,
        config: RecorderSimConfig,
        *,
        ssl_context: ssl.SSLContext | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.config = config
        self._ssl = ssl_context
        self._log = logger or logging.getLogger(__name__)
        self.device = SimDevice(
            SimDeviceConfig(
                serial=config.serial,
                channels=config.channels,
                ptz_channels=config.ptz_channels,
                talk_channels=config.talk_channels,
                offline_channels=config.offline_channels,
                model="DS-7608NI-SIM",
            )
        )
        self._clips: dict[tuple[int, int], H264Clip] = {}
        self.rtsp = RtspServer(
            RtspServerConfig(
                host=config.host,
                port=config.rtsp_port,
                username=config.username,
                password=config.password,
                realm="Hikvision-sim",
            ),
            self.resolve_stream,
            logger=self._log,
        )
        self.isapi = IsapiService(
            self.device,
            auth=DigestAuthenticator(
                realm="DS-7608NI-SIM", username=config.username, password=config.password
            ),
            rtsp_base=lambda: self.rtsp.url(""),
            http_port=lambda: self.http_port,
            rtsp_port=lambda: self.rtsp.port,
            stream_sizes={1: config.main_size, 2: config.sub_size},
            heartbeat=config.heartbeat,
            logger=self._log,
        )
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.http_port = config.http_port

    @property
    def rtsp_port(self) -> int:
        return self.rtsp.port

    @property
    def base_url(self) -> str:
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        scheme = "https" if self._ssl is not None else "http"
        return f"{scheme}://{host}:{self.http_port}"

    def talk_received(self, channel: int) -> bytes:
        return self.device.talk_received(channel)

    def resolve_stream(self, path: str, query: Mapping[str, str]) -> StreamSpec | None:
        """What the RTSP server serves at `path` (None = 404): live or playback."""
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "Streaming" or not parts[2].isdigit():
            return None
        number = int(parts[2])
        channel, stream = divmod(number, 100)
        try:
            info = self.device.channel(channel)
        except ShimError:
            return None
        if not info.online or stream not in (1, 2):
            return None
        media = self.clip_for(channel, stream)
        if parts[1] == "Channels":
            return StreamSpec(clip=media)
        if parts[1] != "tracks" or stream != 1:
            return None
        try:
            start = _track_time(query["starttime"])
            end = _track_time(query.get("endtime", "")) if "endtime" in query else None
        except (KeyError, ValueError):
            return None
        end = end or start + timedelta(hours=1)
        if end <= start or not self.device.search_recordings(channel, start, end, limit=1):
            return None
        return StreamSpec(clip=media, duration=min((end - start).total_seconds(), MAX_PLAYBACK))

    def clip_for(self, channel: int, stream: int) -> H264Clip:
        """The video of a channel's main (1) or sub (2) stream, tinted by channel % 8."""
        key = (channel % len(TINTS), stream)
        if key not in self._clips:
            size = self.config.main_size if stream == 1 else self.config.sub_size
            self._clips[key] = clip(*size, fps=self.config.fps, tint=key[0])
        return self._clips[key]

    async def _start_http(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(
            self._runner, self.config.host, self.http_port, ssl_context=self._ssl
        )
        await self._site.start()
        if not self.http_port:
            self.http_port = int(self._runner.addresses[0][1])

    def change_password(self, password: str) -> None:
        """Scenario: the owner changed the password (ISAPI and RTSP alike)."""
        self.isapi.change_password(password)
        self.rtsp.change_password(password)

    async def refuse_http(self, refuse: bool) -> None:
        """Fault: close (True) or reopen (False) the HTTP listener on the same port."""
        if refuse and self._site is not None:
            await self._site.stop()
            self._site = None
        elif not refuse and self._site is None:
            await self._start_http()

    def _prepare_clips(self) -> None:
        for channel in range(1, min(self.config.channels, len(TINTS)) + 1):
            for stream in (1, 2):
                self.clip_for(channel, stream)

    async def __aenter__(self) -> Self:
        # Encoding takes a moment per tint and size: do it off the event loop, once.
        await asyncio.to_thread(self._prepare_clips)
        await self.rtsp.__aenter__()
        try:
            self._runner = web.AppRunner(
                self.isapi.app(), access_log=None, shutdown_timeout=1.0, handle_signals=False
            )
            await self._runner.setup()
            await self._start_http()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._runner is not None:
                await self._runner.cleanup()
                self._runner = None
        finally:
            await self.rtsp.__aexit__(exc_type, exc, tb)
