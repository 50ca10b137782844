"""The one interface the agent uses to reach a recorder: `Recorder`.

Theory of operation: a backend (`sim`, `isapi`, `onvif`) subclasses `Recorder`
and implements what it can; whatever it cannot do it leaves to the defaults
here, which raise `NotSupported`, and it says so up front in `capabilities`
(callers and the contract tests look there instead of probing).  A recorder is
opened with `async with open_recorder(config) as recorder:`; `__aenter__`
connects (and may fail with `DeviceUnreachable` / `AuthFailed`), `__aexit__`
releases every connection and background task.

Every method raises only `ShimError` subclasses.  Channel numbers start at 1.
Times are timezone-aware datetimes.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import importlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType, TracebackType
from typing import Self

from nvrshare.firmware_shim.errors import ConfigError, NotSupported
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
)

__all__ = ["BACKENDS", "Recorder", "RecorderConfig", "TalkChannel", "open_recorder"]

# backend name -> module that defines `create(config, *, logger) -> Recorder`.
# Imported lazily so a missing optional backend never breaks the others.
BACKENDS: Mapping[str, str] = MappingProxyType(
    {
        "sim": "nvrshare.firmware_shim.backends.sim",
        "isapi": "nvrshare.firmware_shim.backends.isapi",
        "onvif": "nvrshare.firmware_shim.backends.onvif",
    }
)


@dataclass(frozen=True, kw_only=True, slots=True)
class RecorderConfig:
    """How to reach one recorder.

    Attributes:
        backend: one of `BACKENDS`.
        host: device address (ignored by `sim`).
        port: HTTP(S) port of the device's API; None = the backend's default
            (80 for isapi/onvif, 443 with `use_tls`).
        username / password: device credentials (the password is not in repr).
        rtsp_port: RTSP port; None = what the device reports, or 554.
        use_tls: talk HTTPS to the device API.
        timeout: seconds for one request/response exchange.
        settings: backend-specific extras (strings), e.g. {"channels": "4"} for sim.
    """

    backend: str
    host: str = ""
    port: int | None = None
    username: str = ""
    password: str = field(default="", repr=False)
    rtsp_port: int | None = None
    use_tls: bool = False
    timeout: float = 10.0
    settings: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown backend {self.backend!r}; known: {sorted(BACKENDS)}")
        for name, port in (("port", self.port), ("rtsp_port", self.rtsp_port)):
            if port is not None and not 1 <= port <= 65535:
                raise ConfigError(f"{name} {port} out of range")
        if not 0 < self.timeout <= 300:
            raise ConfigError("timeout must be within (0, 300] seconds")
        if self.backend != "sim" and not self.host:
            raise ConfigError(f"backend {self.backend!r} needs a host")


class TalkChannel(abc.ABC):
    """An open two-way audio session on one channel.

    Audio is G.711 (`codec`, 8 kHz mono, one byte per sample).  Use it as an
    async context manager (or call `close()`); after close, `write` raises
    `DeviceError` subclasses and `read` returns b"".
    """

    codec: AudioCodec = AudioCodec.G711_ULAW
    sample_rate: int = 8000

    @abc.abstractmethod
    async def write(self, frames: bytes) -> None:
        """Send encoded samples to the device's speaker (any length; split as needed)."""

    @abc.abstractmethod
    async def read(self) -> bytes:
        """Return the next chunk of microphone samples; b"" once the session ended."""

    @abc.abstractmethod
    async def close(self) -> None:
        """End the session and release it on the device (idempotent)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class Recorder(abc.ABC):
    """A recorder (NVR) or camera, reached through one backend.

    `capabilities` is what this backend can do against this device; methods for
    anything not in it raise `NotSupported`.  `Channel.capabilities` narrows it
    per channel (e.g. only PTZ cameras have PTZ).
    """

    backend_name: str = ""

    @property
    @abc.abstractmethod
    def capabilities(self) -> frozenset[Capability]:
        """The functions this backend implements against this device."""

    async def connect(self) -> None:  # noqa: B027 - optional hook
        """Establish sessions and probe the device; called by `__aenter__`."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release every connection and background task; called by `__aexit__`."""

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- identity and channels ------------------------------------------------------

    @abc.abstractmethod
    async def device_info(self) -> DeviceInfo:
        """Serial, model, firmware version (and MAC when known)."""

    @abc.abstractmethod
    async def channels(self) -> list[Channel]:
        """Every video channel, ordered by number."""

    # -- video ------------------------------------------------------------------------

    @abc.abstractmethod
    async def live_source(self, channel: int, kind: StreamKind = StreamKind.MAIN) -> StreamSource:
        """RTSP URL + credentials of the live stream. Raises `NoSuchChannel`."""

    async def search_recordings(
        self, channel: int, start: datetime, end: datetime, *, limit: int = 100
    ) -> list[RecordingSegment]:
        """Recorded segments overlapping [start, end), oldest first, at most `limit`."""
        raise NotSupported(f"{self.backend_name}: recordings search")

    async def playback_source(self, channel: int, start: datetime, end: datetime) -> StreamSource:
        """RTSP URL + credentials that replay [start, end) of `channel`."""
        raise NotSupported(f"{self.backend_name}: playback")

    # -- PTZ ------------------------------------------------------------------------------

    async def ptz_move(self, channel: int, velocity: PtzVector) -> None:
        """Start (or change) a continuous move; a zero vector stops."""
        raise NotSupported(f"{self.backend_name}: PTZ")

    async def ptz_stop(self, channel: int) -> None:
        """Stop any continuous move."""
        raise NotSupported(f"{self.backend_name}: PTZ")

    async def ptz_status(self, channel: int) -> PtzStatus:
        """Current normalised position and whether the head is moving."""
        raise NotSupported(f"{self.backend_name}: PTZ status")

    async def ptz_presets(self, channel: int) -> list[PtzPreset]:
        """Stored presets, ordered by number."""
        raise NotSupported(f"{self.backend_name}: PTZ presets")

    async def ptz_goto_preset(self, channel: int, preset: int) -> None:
        """Move to a stored preset. Raises `NotFound` if it is not set."""
        raise NotSupported(f"{self.backend_name}: PTZ presets")

    async def ptz_set_preset(self, channel: int, preset: int, name: str = "") -> None:
        """Store the current position as `preset`."""
        raise NotSupported(f"{self.backend_name}: PTZ presets")

    # -- alarms and audio -----------------------------------------------------------------

    def alarm_events(self) -> AsyncIterator[AlarmEvent]:
        """Alarm state changes as they happen, for as long as the caller iterates.

        Backends reconnect on their own (with backoff) and only raise for
        failures that retrying cannot fix (`AuthFailed`, `NotSupported`).  Close
        the iterator (`contextlib.aclosing`) to stop the subscription.  Like any
        async generator, it ends if a pending `anext()` is cancelled (e.g. by
        `asyncio.timeout`): consume it in its own task and time out elsewhere.
        Several iterators may be open at once; backends share one device
        subscription between them where the device limits connections.
        """
        raise NotSupported(f"{self.backend_name}: alarm events")

    async def open_talk(self, channel: int) -> TalkChannel:
        """Open two-way audio on `channel`. Raises `DeviceBusy` if already open."""
        raise NotSupported(f"{self.backend_name}: two-way audio")


@contextlib.asynccontextmanager
async def open_recorder(
    config: RecorderConfig, *, logger: logging.Logger | None = None
) -> AsyncIterator[Recorder]:
    """Build the backend named by `config`, connect, yield it, and close it on exit."""
    try:
        # A backend's first import (zeep, lxml, httpx for onvif) reads many files:
        # keep it off the event loop, which may be serving sessions already.
        module = await asyncio.to_thread(importlib.import_module, BACKENDS[config.backend])
    except ModuleNotFoundError as exc:
        raise ConfigError(f"backend {config.backend!r} is not available") from exc
    log = logger or logging.getLogger(f"nvrshare.firmware_shim.{config.backend}")
    recorder: Recorder = module.create(config, logger=log)
    async with recorder:
        yield recorder
