"""Media profiles -> channels: which profile is a channel's main and sub stream.

Channels are video sources, numbered in the order the device lists them. Only
H.264 profiles count (what the relay carries and what Home Assistant keeps);
a source's highest-resolution profile is MAIN and the next one SUB. Pure
functions over zeep's GetProfiles objects, so they are tested without a device.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from nvrshare.firmware_shim.models import MAX_CHANNEL

from .events import ChannelResolver

__all__ = ["ChannelProfiles", "channels_from_profiles", "resolver_for"]

_MAX_NAME = 64


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelProfiles:
    """What one channel (video source) is made of on the device."""

    number: int
    name: str
    source_token: str
    configuration_tokens: tuple[str, ...]
    main: str
    sub: str | None
    ptz: bool


def _pixels(profile: Any) -> int:
    resolution = profile.VideoEncoderConfiguration.Resolution
    return int(resolution.Width) * int(resolution.Height)


def channels_from_profiles(profiles: Iterable[Any]) -> dict[int, ChannelProfiles]:
    """Group H.264 profiles by video source; raises AttributeError/ValueError on odd shapes."""
    by_source: dict[str, list[Any]] = {}
    for profile in profiles:
        encoder = profile.VideoEncoderConfiguration
        source = profile.VideoSourceConfiguration
        if encoder is None or source is None or encoder.Encoding != "H264":
            continue
        by_source.setdefault(str(source.SourceToken), []).append(profile)
    channels: dict[int, ChannelProfiles] = {}
    for number, (source_token, group) in enumerate(by_source.items(), start=1):
        if number > MAX_CHANNEL:
            break
        ranked = sorted(group, key=_pixels, reverse=True)
        configuration_tokens = tuple(
            dict.fromkeys(str(p.VideoSourceConfiguration.token) for p in group)
        )
        name = str(ranked[0].VideoSourceConfiguration.Name or source_token)[:_MAX_NAME]
        channels[number] = ChannelProfiles(
            number=number,
            name=name or f"Channel {number}",
            source_token=source_token,
            configuration_tokens=configuration_tokens,
            main=str(ranked[0].token),
            sub=str(ranked[1].token) if len(ranked) > 1 else None,
            ptz=ranked[0].PTZConfiguration is not None,
        )
    return channels


def resolver_for(channels: Mapping[int, ChannelProfiles]) -> ChannelResolver:
    """How event payload tokens (video source or its configuration) name channels."""
    by_token: dict[str, int] = {}
    for channel in channels.values():
        by_token[channel.source_token] = channel.number
        for token in channel.configuration_tokens:
            by_token.setdefault(token, channel.number)
    return ChannelResolver(by_token=by_token, default=1 if len(channels) == 1 else None)
