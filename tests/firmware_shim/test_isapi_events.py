"""ISAPI alert payloads (one test per captured shape) and the multipart splitter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nvrshare.firmware_shim import AlarmKind, BadResponse
from nvrshare.firmware_shim.backends.isapi.events import (
    EVENT_PARSERS,
    AlertStreamParser,
    boundary_of,
    parse_alert,
)

NS20 = 'version="2.0" xmlns="http://www.hikvision.com/ver20/XMLSchema"'
NS10 = 'version="1.0" xmlns="http://www.hikvision.com/ver10/XMLSchema"'

# Shapes as NVR / camera firmwares send them (addresses anonymised).
VMD = f"""<?xml version="1.0" encoding="UTF-8"?>
<EventNotificationAlert {NS20}>
<ipAddress>192.168.1.64</ipAddress>
<ipv6Address>::ffff:192.168.1.64</ipv6Address>
<portNo>80</portNo>
<protocol>HTTP</protocol>
<macAddress>44:19:b6:aa:bb:cc</macAddress>
<channelID>1</channelID>
<dateTime>2026-03-04T10:11:12+01:00</dateTime>
<activePostCount>1</activePostCount>
<eventType>VMD</eventType>
<eventState>active</eventState>
<eventDescription>Motion alarm</eventDescription>
<channelName>Front door</channelName>
</EventNotificationAlert>"""

IO = f"""<EventNotificationAlert {NS20}>
<ipAddress>10.0.0.5</ipAddress><portNo>80</portNo><protocol>HTTP</protocol>
<macAddress>44:19:b6:aa:bb:cc</macAddress>
<inputIOPortID>2</inputIOPortID>
<dateTime>2026-03-04T10:11:12+01:00</dateTime>
<activePostCount>1</activePostCount>
<eventType>IO</eventType>
<eventState>active</eventState>
<eventDescription>IO alarm</eventDescription>
</EventNotificationAlert>"""

LINE = f"""<EventNotificationAlert {NS20}>
<ipAddress>10.0.0.5</ipAddress><portNo>80</portNo><protocol>HTTP</protocol>
<channelID>3</channelID>
<dateTime>2026-03-04T10:11:12+01:00</dateTime>
<activePostCount>1</activePostCount>
<eventType>linedetection</eventType>
<eventState>active</eventState>
<eventDescription>linedetection alarm</eventDescription>
<DetectionRegionList><DetectionRegionEntry><regionID>1</regionID>
<sensitivityLevel>50</sensitivityLevel><RegionCoordinatesList><RegionCoordinates>
<positionX>10</positionX><positionY>20</positionY></RegionCoordinates></RegionCoordinatesList>
</DetectionRegionEntry></DetectionRegionList>
</EventNotificationAlert>"""

FIELD_V10_DYN = f"""<EventNotificationAlert {NS10}>
<ipAddress>10.0.0.5</ipAddress><portNo>80</portNo><protocol>HTTP</protocol>
<dynChannelID>5</dynChannelID>
<dateTime>2026-03-04T10:11:12</dateTime>
<activePostCount>2</activePostCount>
<eventType>fielddetection</eventType>
<eventState>inactive</eventState>
<eventDescription>fielddetection alarm</eventDescription>
</EventNotificationAlert>"""

HEARTBEAT = f"""<EventNotificationAlert {NS20}>
<ipAddress>10.0.0.5</ipAddress><portNo>80</portNo><protocol>HTTP</protocol>
<channelID>1</channelID>
<dateTime>2026-03-04T10:11:12+01:00</dateTime>
<activePostCount>0</activePostCount>
<eventType>videoloss</eventType>
<eventState>inactive</eventState>
<eventDescription>videoloss alarm</eventDescription>
</EventNotificationAlert>"""

SHELTER = f"""<EventNotificationAlert {NS20}>
<channelID>2</channelID><dateTime>2026-03-04T10:11:12Z</dateTime>
<eventType>shelteralarm</eventType><eventState>active</eventState>
</EventNotificationAlert>"""

UNKNOWN_NO_CHANNEL = f"""<EventNotificationAlert {NS20}>
<dateTime>not a time</dateTime>
<eventType>diskfull</eventType><eventState>active</eventState>
</EventNotificationAlert>"""

AT = datetime(2026, 3, 4, 9, 11, 12, tzinfo=UTC)


def test_vmd_motion() -> None:
    event = parse_alert(VMD.encode())
    assert event is not None
    assert (event.kind, event.channel, event.active, event.at) == (AlarmKind.MOTION, 1, True, AT)
    assert event.vendor_type == "VMD"


def test_io_alarm_has_a_port_not_a_channel() -> None:
    event = parse_alert(IO.encode())
    assert event is not None
    assert (event.kind, event.channel, event.input_port) == (AlarmKind.IO, None, 2)


def test_line_crossing_with_regions() -> None:
    event = parse_alert(LINE.encode())
    assert event is not None
    assert (event.kind, event.channel) == (AlarmKind.LINE_CROSSING, 3)


def test_ver10_intrusion_dyn_channel_and_local_time() -> None:
    event = parse_alert(FIELD_V10_DYN.encode(), utc_offset=timedelta(hours=1))
    assert event is not None
    assert (event.kind, event.channel, event.active) == (AlarmKind.INTRUSION, 5, False)
    assert event.at == AT  # 10:11:12 device-local at UTC+1


def test_videoloss_heartbeat_shape() -> None:
    event = parse_alert(HEARTBEAT.encode())
    assert event is not None
    assert (event.kind, event.active) == (AlarmKind.VIDEO_LOSS, False)


def test_tamper_with_zulu_time_read_as_local() -> None:
    event = parse_alert(SHELTER.encode(), utc_offset=timedelta(hours=1))
    assert event is not None
    assert (event.kind, event.at) == (AlarmKind.TAMPER, AT)


def test_unknown_type_is_other_and_bad_time_is_now() -> None:
    before = datetime.now(UTC)
    event = parse_alert(UNKNOWN_NO_CHANNEL.encode())
    assert event is not None
    assert (event.kind, event.channel, event.vendor_type) == (AlarmKind.OTHER, None, "diskfull")
    assert event.at >= before


def test_registry_covers_the_documented_types() -> None:
    for name in ("vmd", "io", "videoloss", "linedetection", "fielddetection", "tamperdetection"):
        assert name in EVENT_PARSERS


@pytest.mark.parametrize(
    "body",
    [
        b"not xml",
        b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><EventNotificationAlert/>',
        b"<EventNotificationAlert><eventType></eventType></EventNotificationAlert>",
        b"<EventNotificationAlert><channelID>x</channelID><eventType>VMD</eventType>"
        b"</EventNotificationAlert>",
        b"<a>" + b"x" * 70_000 + b"</a>",
    ],
)
def test_malformed_payloads_are_bad_responses(body: bytes) -> None:
    with pytest.raises(BadResponse):
        parse_alert(body)


def test_other_documents_are_ignored() -> None:
    assert parse_alert(b"<ResponseStatus><statusCode>1</statusCode></ResponseStatus>") is None


def stream_of(*bodies: str, length: bool = True) -> bytes:
    out = b"preamble junk\r\n"
    for body in bodies:
        raw = body.encode()
        head = "--boundary\r\nContent-Type: application/xml; charset=\"UTF-8\"\r\n"
        if length:
            head += f"Content-Length: {len(raw)}\r\n"
        out += head.encode() + b"\r\n" + raw + b"\r\n"
    return out + b"--boundary\r\n"


@given(st.lists(st.integers(1, 400), min_size=1, max_size=30), st.booleans())
def test_parts_survive_any_chunking(cuts: list[int], length: bool) -> None:
    data = stream_of(VMD, IO, HEARTBEAT, length=length)
    parser = AlertStreamParser("boundary")
    parts: list[bytes] = []
    position = 0
    for cut in cuts * 20:
        if position >= len(data):
            break
        parts += parser.feed(data[position : position + cut])
        position += cut
    parts += parser.feed(data[position:])
    assert parts == [VMD.encode(), IO.encode(), HEARTBEAT.encode()]


def test_oversized_part_is_refused() -> None:
    parser = AlertStreamParser("boundary", max_part=1000)
    with pytest.raises(BadResponse):
        parser.feed(b"--boundary\r\nContent-Length: 999999\r\n\r\n")
    parser = AlertStreamParser("boundary", max_part=1000)
    with pytest.raises(BadResponse):
        parser.feed(b"--boundary\r\n\r\n" + b"x" * 10_000)


@given(st.lists(st.binary(max_size=300), max_size=10))
def test_any_bytes_split_or_raise_bad_response(chunks: list[bytes]) -> None:
    parser = AlertStreamParser("boundary", max_part=512)
    try:
        for chunk in chunks:
            for part in parser.feed(chunk):
                assert len(part) <= 512 + 4096
    except BadResponse:
        pass


def test_boundary_of() -> None:
    assert boundary_of("multipart/mixed; boundary=boundary") == "boundary"
    assert boundary_of('multipart/mixed;boundary="MIME_b"') == "MIME_b"
    with pytest.raises(BadResponse):
        boundary_of("application/xml")
    with pytest.raises(BadResponse):
        boundary_of("multipart/mixed")
