"""What channels an ISAPI device has: the documents that list them, parsed.

NVRs list IP channels under ContentMgmt/InputProxy (plus a status document for
online/offline); cameras have no InputProxy and are read from
Streaming/channels instead.  Everything is bounded and validated.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from nvrshare.firmware_shim.backends.isapi import xmlparse
from nvrshare.firmware_shim.errors import BadResponse
from nvrshare.firmware_shim.models import MAX_CHANNEL, AudioCodec

__all__ = [
    "ListedChannel",
    "apply_status",
    "parse_proxy_channels",
    "parse_streaming_channels",
    "parse_talk_channels",
]

ListedChannel = tuple[int, str, bool]  # number, name, online


def parse_proxy_channels(root: ET.Element) -> dict[int, ListedChannel]:
    found: dict[int, ListedChannel] = {}
    for item in xmlparse.children(root, "InputProxyChannel")[:MAX_CHANNEL]:
        number = xmlparse.int_of(item, "id")
        if number is None or not 1 <= number <= MAX_CHANNEL:
            raise BadResponse("InputProxyChannel with a bad id")
        name = (xmlparse.text_of(item, "name") or f"Camera {number}")[:128]
        found[number] = (number, name, True)
    return found


def apply_status(found: dict[int, ListedChannel], status: ET.Element) -> None:
    """Mark channels offline/online from an InputProxyChannelStatusList."""
    for item in xmlparse.children(status, "InputProxyChannelStatus")[:MAX_CHANNEL]:
        number = xmlparse.int_of(item, "id")
        if number in found:
            online = (xmlparse.text_of(item, "online") or "").lower() == "true"
            found[number] = (number, found[number][1], online)


def parse_streaming_channels(root: ET.Element) -> list[ListedChannel]:
    """Channels of a camera, from its stream ids (101 = channel 1 main, 102 sub...)."""
    numbers = set()
    for item in xmlparse.children(root, "StreamingChannel")[: MAX_CHANNEL * 4]:
        stream_id = xmlparse.int_of(item, "id")
        if stream_id is not None and 101 <= stream_id <= MAX_CHANNEL * 100 + 99:
            numbers.add(stream_id // 100)
    return [(n, f"Camera {n}", True) for n in sorted(numbers)]


def parse_talk_channels(root: ET.Element) -> dict[int, AudioCodec]:
    """Two-way audio channels and their codec (µ-law unless the device says A-law)."""
    codecs: dict[int, AudioCodec] = {}
    for item in xmlparse.children(root, "TwoWayAudioChannel")[:MAX_CHANNEL]:
        number = xmlparse.int_of(item, "id")
        codec = (xmlparse.text_of(item, "audioCompressionType") or "").lower()
        if number is not None and 1 <= number <= MAX_CHANNEL:
            alaw = codec in ("g.711alaw", "g711alaw")
            codecs[number] = AudioCodec.G711_ALAW if alaw else AudioCodec.G711_ULAW
    return codecs
