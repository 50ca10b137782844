"""ISAPI XML documents as the simulated recorder renders and reads them.

Rendering uses string templates with escaping; reading (of what our own tests
and backend send) uses ElementTree on bounded bodies with DTDs refused.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from nvrshare.firmware_shim.models import (
    AlarmEvent,
    AlarmKind,
    Channel,
    DeviceInfo,
    PtzPreset,
    PtzStatus,
)

__all__ = [
    "NS",
    "XmlError",
    "alert_xml",
    "channels_xml",
    "device_info_xml",
    "find_text",
    "parse_xml",
    "presets_xml",
    "ptz_status_xml",
    "response_status_xml",
    "search_result_xml",
    "streaming_channels_xml",
    "talk_channels_xml",
]

NS = "http://www.hikvision.com/ver20/XMLSchema"
_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'
MAX_XML = 64 * 1024

# AlarmKind -> ISAPI eventType, the inverse of the backend's registry.
EVENT_TYPES = {
    AlarmKind.MOTION: "VMD",
    AlarmKind.VIDEO_LOSS: "videoloss",
    AlarmKind.IO: "IO",
    AlarmKind.LINE_CROSSING: "linedetection",
    AlarmKind.INTRUSION: "fielddetection",
    AlarmKind.TAMPER: "tamperdetection",
    AlarmKind.OTHER: "diskfull",
}


class XmlError(ValueError):
    """A request body that is not acceptable ISAPI XML."""


def _doc(root: str, body: str) -> str:
    return f'{_HEAD}<{root} version="2.0" xmlns="{NS}">{body}</{root}>'


def _el(name: str, value: object) -> str:
    return f"<{name}>{escape(str(value))}</{name}>"


def isapi_datetime(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def device_info_xml(info: DeviceInfo, channels: int) -> str:
    return _doc(
        "DeviceInfo",
        _el("deviceName", info.name)
        + _el("deviceID", "88888888-0000-0000-0000-" + info.serial[-12:].rjust(12, "0"))
        + _el("model", info.model)
        + _el("serialNumber", info.serial)
        + _el("macAddress", info.mac or "")
        + _el("firmwareVersion", info.firmware_version.split(" build ")[0])
        + _el("firmwareReleasedDate", "build 260101")
        + _el("deviceType", "NVR")
        + _el("telecontrolID", 1)
        + _el("analogChannelNum", 0)
        + _el("digitalChannelNum", channels)
        + _el("manufacturer", info.manufacturer),
    )


def channels_xml(channels: list[Channel]) -> str:
    items = "".join(
        "<InputProxyChannel>"
        + _el("id", c.number)
        + _el("name", c.name)
        + "<sourceInputPortDescriptor>"
        + _el("proxyProtocol", "HIKVISION")
        + _el("addressingFormatType", "ipaddress")
        + _el("ipAddress", f"192.168.254.{c.number + 1}")
        + _el("managePortNo", 8000)
        + _el("srcInputPort", 1)
        + _el("userName", "admin")
        + _el("streamType", "auto")
        + _el("online", str(c.online).lower())
        + "</sourceInputPortDescriptor>"
        + "</InputProxyChannel>"
        for c in channels
    )
    return _doc("InputProxyChannelList", items)


def channel_status_xml(channels: list[Channel]) -> str:
    items = "".join(
        "<InputProxyChannelStatus>"
        + _el("id", c.number)
        + _el("online", str(c.online).lower())
        + "</InputProxyChannelStatus>"
        for c in channels
    )
    return _doc("InputProxyChannelStatusList", items)


def streaming_channels_xml(channels: list[Channel], sizes: dict[int, tuple[int, int]]) -> str:
    items = []
    for c in channels:
        for stream, (width, height) in sizes.items():
            items.append(
                "<StreamingChannel>"
                + _el("id", c.number * 100 + stream)
                + _el("channelName", c.name)
                + _el("enabled", "true")
                + "<Video>"
                + _el("enabled", "true")
                + _el("videoInputChannelID", c.number)
                + _el("videoCodecType", "H.264")
                + _el("videoResolutionWidth", width)
                + _el("videoResolutionHeight", height)
                + _el("maxFrameRate", 2500)
                + "</Video></StreamingChannel>"
            )
    return _doc("StreamingChannelList", "".join(items))


def admin_accesses_xml(http_port: int, rtsp_port: int) -> str:
    items = "".join(
        "<AdminAccessProtocol>" + _el("id", i) + _el("enabled", "true")
        + _el("protocol", proto) + _el("portNo", port) + "</AdminAccessProtocol>"
        for i, (proto, port) in enumerate((("HTTP", http_port), ("RTSP", rtsp_port)), 1)
    )
    return _doc("AdminAccessProtocolList", items)


def response_status_xml(url: str, code: int, text: str, sub: str) -> str:
    return _doc(
        "ResponseStatus",
        _el("requestURL", url) + _el("statusCode", code) + _el("statusString", text)
        + _el("subStatusCode", sub),
    )


def search_result_xml(
    search_id: str, matches: list[tuple[int, datetime, datetime, str]], *, more: bool
) -> str:
    items = "".join(
        "<searchMatchItem>"
        + _el("sourceID", "{0000-0000}")
        + _el("trackID", track)
        + "<timeSpan>" + _el("startTime", isapi_datetime(start))
        + _el("endTime", isapi_datetime(end)) + "</timeSpan>"
        + "<mediaSegmentDescriptor>" + _el("contentType", "video")
        + _el("codecType", "H.264-BP") + _el("playbackURI", uri) + "</mediaSegmentDescriptor>"
        + "</searchMatchItem>"
        for track, start, end, uri in matches
    )
    status = "MORE" if more else ("OK" if matches else "NO MATCHES")
    return _doc(
        "CMSearchResult",
        _el("searchID", search_id) + _el("responseStatus", "true")
        + _el("responseStatusStrg", status) + _el("numOfMatches", len(matches))
        + f"<matchList>{items}</matchList>",
    )


def ptz_status_xml(status: PtzStatus) -> str:
    pos = status.position
    return _doc(
        "PTZStatus",
        "<AbsoluteHigh>"
        + _el("elevation", round(pos.tilt * 900))
        + _el("azimuth", round((pos.pan + 1) * 1800))
        + _el("absoluteZoom", round(10 + (pos.zoom + 1) / 2 * 390))
        + "</AbsoluteHigh>",
    )


def presets_xml(presets: list[PtzPreset]) -> str:
    items = "".join(
        "<PTZPreset>" + _el("enabled", "true") + _el("id", p.number)
        + _el("presetName", p.name) + "</PTZPreset>"
        for p in presets
    )
    return _doc("PTZPresetList", items)


def talk_channels_xml(channels: list[int]) -> str:
    items = "".join(
        "<TwoWayAudioChannel>" + _el("id", ch) + _el("enabled", "false")
        + _el("audioCompressionType", "G.711ulaw") + _el("audioBitRate", 64)
        + _el("audioSamplingRate", 8) + "</TwoWayAudioChannel>"
        for ch in channels
    )
    return _doc("TwoWayAudioChannelList", items)


def talk_session_xml(session_id: str) -> str:
    return _doc("TwoWayAudioSession", _el("sessionId", session_id))


def alert_xml(event: AlarmEvent, *, mac: str, count: int = 1) -> str:
    body = _el("ipAddress", "127.0.0.1") + _el("portNo", 80) + _el("protocol", "HTTP")
    body += _el("macAddress", mac)
    if event.kind is AlarmKind.IO and event.input_port is not None:
        body += _el("inputIOPortID", event.input_port)
    body += _el("channelID", event.channel or 0)
    body += _el("dateTime", event.at.astimezone(UTC).isoformat(timespec="seconds"))
    body += _el("activePostCount", count)
    body += _el("eventType", EVENT_TYPES[event.kind])
    body += _el("eventState", "active" if event.active else "inactive")
    body += _el("eventDescription", f"{event.kind.value} alarm")
    return _doc("EventNotificationAlert", body)


def heartbeat_xml(when: datetime, *, mac: str) -> str:
    body = _el("ipAddress", "127.0.0.1") + _el("portNo", 80) + _el("protocol", "HTTP")
    body += _el("macAddress", mac) + _el("channelID", 1)
    body += _el("dateTime", when.astimezone(UTC).isoformat(timespec="seconds"))
    body += _el("activePostCount", 0) + _el("eventType", "videoloss")
    body += _el("eventState", "inactive") + _el("eventDescription", "videoloss alarm")
    return _doc("EventNotificationAlert", body)


def parse_xml(body: bytes) -> ET.Element:
    """Parse a bounded request body; DTDs (entity tricks) are refused."""
    if len(body) > MAX_XML:
        raise XmlError("body too large")
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise XmlError("DTDs are not accepted")
    try:
        return ET.fromstring(body)  # noqa: S314 - bounded, DTD-free input
    except ET.ParseError as exc:
        raise XmlError(f"malformed XML: {exc}") from None


def find_text(root: ET.Element, *names: str) -> str | None:
    """Text of the first descendant whose local name is any of `names`."""
    wanted = set(names)
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] in wanted:
            return (element.text or "").strip()
    return None
