"""What the device says about itself: facts from the recorder, signed by the device key.

Facts are re-read from the recorder on every (re)connect, so renamed or added
channels reach the relay; if the recorder does not answer, the last facts
that were read are reused (and, before any, a minimal registration with no
channels), because a device that cannot register cannot be reached at all.
"""

from __future__ import annotations

import logging
import secrets
import socket
from dataclasses import dataclass

from nvrshare.firmware_shim import Capability, Recorder, ShimError
from nvrshare.protocol.codec import encode_signed
from nvrshare.protocol.errors import LocalProtocolError
from nvrshare.protocol.messages import NONCE_LENGTH, ChannelInfo, DeviceRegistration
from nvrshare.protocol.permissions import MAX_CHANNEL, Permission
from nvrshare.protocol.signing import CONTEXT_REGISTRATION, SigningKey, public_key_bytes

__all__ = ["DeviceFacts", "FactsReader", "local_address", "signed_registration"]

_PERMISSION_FOR = {
    Capability.LIVE: Permission.LIVE_VIEW,
    Capability.RECORDINGS: Permission.PLAYBACK,
    Capability.PTZ: Permission.PTZ,
    Capability.ALARMS: Permission.ALARM,
    Capability.TALK: Permission.TWO_WAY_AUDIO,
}
MAX_TEXT = 128


@dataclass(frozen=True, kw_only=True, slots=True)
class DeviceFacts:
    model: str
    firmware_version: str
    channels: tuple[ChannelInfo, ...]


def _text(value: str, fallback: str) -> str:
    cleaned = "".join(c for c in value if c.isprintable())[:MAX_TEXT].strip()
    return cleaned or fallback


class FactsReader:
    """Reads `DeviceFacts` from the recorder, remembering the last good answer."""

    def __init__(self, recorder: Recorder, logger: logging.Logger) -> None:
        self._recorder = recorder
        self._log = logger
        self._last = DeviceFacts(model="unknown", firmware_version="unknown", channels=())

    async def read(self) -> DeviceFacts:
        try:
            info = await self._recorder.device_info()
            channels = await self._recorder.channels()
        except ShimError as exc:
            self._log.warning("recorder did not answer (%s); registering last known facts", exc)
            return self._last
        infos: dict[int, ChannelInfo] = {}
        for channel in sorted(channels, key=lambda c: c.number):
            capabilities = Permission.NONE
            for capability in channel.capabilities:
                capabilities |= _PERMISSION_FOR.get(capability, Permission.NONE)
            try:
                channel_info = ChannelInfo(
                    number=channel.number,
                    name=_text(channel.name, ""),
                    online=bool(channel.online),
                    capabilities=capabilities,
                )
            except LocalProtocolError as exc:
                # A firmware quirk (channel 0, a number past the limit) must
                # not keep the whole device from registering.
                self._log.warning("skipping channel %r: %s", channel.number, exc)
                continue
            infos.setdefault(channel.number, channel_info)  # the first of duplicated numbers wins
        self._last = DeviceFacts(
            model=_text(info.model, "unknown"),
            firmware_version=_text(info.firmware_version, "unknown"),
            channels=tuple(infos.values())[:MAX_CHANNEL],
        )
        return self._last


def local_address(broker_host: str, broker_port: int) -> str:
    """The local IP the system would use to reach the broker (no packet is sent)."""
    try:
        infos = socket.getaddrinfo(broker_host, broker_port, proto=socket.IPPROTO_UDP)
        family, _type, _proto, _name, address = infos[0]
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect(address)
            return str(probe.getsockname()[0])
    except (OSError, IndexError):
        return "0.0.0.0"  # noqa: S104 - "unknown", reported, never bound


def signed_registration(
    *,
    key: SigningKey,
    serial: str,
    domain: str,
    facts: DeviceFacts,
    ip: str,
    port: int,
    now: float,
) -> bytes:
    """A fresh `DeviceRegistration` (new nonce, `now`), signed by the device key."""
    registration = DeviceRegistration(
        serial=serial,
        domain=domain,
        model=facts.model,
        firmware_version=facts.firmware_version,
        channels=facts.channels,
        ip=ip,
        port=port,
        public_key=public_key_bytes(key.public_key),
        timestamp=int(now),
        nonce=secrets.token_bytes(NONCE_LENGTH),
    )
    return encode_signed(registration, key, CONTEXT_REGISTRATION)
