"""ONVIF event payloads -> AlarmEvent: one test per payload shape cameras send.

Each payload is wrapped in a PullMessagesResponse and decoded by zeep with the
events WSDL onvif-zeep-async ships, so the parser sees exactly the objects the
backend gets at run time (typed `tt:Message` objects, or raw elements).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree
from onvif import ONVIFService
from onvif.client import _WSDL_PATH
from zeep.loader import parse_xml

from nvrshare.firmware_shim import AlarmEvent, AlarmKind
from nvrshare.firmware_shim.backends.onvif.events import (
    EVENT_PARSERS,
    ChannelResolver,
    EventPayload,
    parse_notification,
    parse_notifications,
    payload_from_message,
    topic_path,
)

NOW = dt.datetime(2026, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
EVENTS_NS = "http://www.onvif.org/ver10/events/wsdl"
RESOLVER = ChannelResolver(
    by_token={"VideoSource_1": 1, "VideoSource_2": 2, "VSC_2": 2, "0": 1}, default=None
)

# Payload shapes as cameras put them on the wire (trimmed to the notification).
HIKVISION_CELL_MOTION = """
<wsnt:NotificationMessage>
  <wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet"
    >tns1:RuleEngine/CellMotionDetector/Motion</wsnt:Topic>
  <wsnt:Message><tt:Message UtcTime="2026-05-06T07:00:01Z" PropertyOperation="Changed">
    <tt:Source>
      <tt:SimpleItem Name="VideoSourceConfigurationToken" Value="VSC_2"/>
      <tt:SimpleItem Name="VideoAnalyticsConfigurationToken" Value="VideoAnalyticsToken"/>
      <tt:SimpleItem Name="Rule" Value="MyMotionDetectorRule"/>
    </tt:Source>
    <tt:Data><tt:SimpleItem Name="IsMotion" Value="true"/></tt:Data>
  </tt:Message></wsnt:Message>
</wsnt:NotificationMessage>"""

VIDEO_SOURCE_MOTION_ALARM = """
<wsnt:NotificationMessage>
  <wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet"
    >tns1:VideoSource/MotionAlarm</wsnt:Topic>
  <wsnt:Message><tt:Message UtcTime="2026-05-06T07:00:02.5Z" PropertyOperation="Changed">
    <tt:Source><tt:SimpleItem Name="Source" Value="VideoSource_1"/></tt:Source>
    <tt:Data><tt:SimpleItem Name="State" Value="false"/></tt:Data>
  </tt:Message></wsnt:Message>
</wsnt:NotificationMessage>"""

AXIS_MOTION_REGION = """
<wsnt:NotificationMessage>
  <wsnt:Topic Dialect="http://docs.oasis-open.org/wsn/t-1/TopicExpression/Concrete"
    >tns1:RuleEngine/MotionRegionDetector/Motion</wsnt:Topic>
  <wsnt:Message><tt:Message UtcTime="2026-05-06T07:00:03Z" PropertyOperation="Changed">
    <tt:Source>
      <tt:SimpleItem Name="VideoSource" Value="0"/>
      <tt:SimpleItem Name="RuleName" Value="Region 1"/>
    </tt:Source>
    <tt:Data><tt:SimpleItem Name="State" Value="1"/></tt:Data>
  </tt:Message></wsnt:Message>
</wsnt:NotificationMessage>"""

TAMPER = """
<wsnt:NotificationMessage>
  <wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet"
    >tns1:RuleEngine/TamperDetector/Tamper</wsnt:Topic>
  <wsnt:Message><tt:Message UtcTime="2026-05-06T07:00:04Z" PropertyOperation="Changed">
    <tt:Source>
      <tt:SimpleItem Name="VideoSourceConfigurationToken" Value="VSC_2"/>
      <tt:SimpleItem Name="Rule" Value="MyTamperDetectorRule"/>
    </tt:Source>
    <tt:Data><tt:SimpleItem Name="IsTamper" Value="true"/></tt:Data>
  </tt:Message></wsnt:Message>
</wsnt:NotificationMessage>"""

DIGITAL_INPUT = """
<wsnt:NotificationMessage>
  <wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet"
    >tns1:Device/Trigger/DigitalInput</wsnt:Topic>
  <wsnt:Message><tt:Message UtcTime="2026-05-06T07:00:05Z" PropertyOperation="Changed">
    <tt:Source><tt:SimpleItem Name="InputToken" Value="AlarmIn_2"/></tt:Source>
    <tt:Data><tt:SimpleItem Name="LogicalState" Value="true"/></tt:Data>
  </tt:Message></wsnt:Message>
</wsnt:NotificationMessage>"""

LINE_CROSSED = """
<wsnt:NotificationMessage>
  <wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet"
    >tns1:RuleEngine/LineDetector/Crossed</wsnt:Topic>
  <wsnt:Message><tt:Message UtcTime="2026-05-06T07:00:06Z" PropertyOperation="Changed">
    <tt:Source>
      <tt:SimpleItem Name="VideoSourceConfigurationToken" Value="VSC_2"/>
      <tt:SimpleItem Name="Rule" Value="MyLineDetectorRule"/>
    </tt:Source>
    <tt:Data><tt:SimpleItem Name="ObjectId" Value="17"/></tt:Data>
  </tt:Message></wsnt:Message>
</wsnt:NotificationMessage>"""

FIELD_DETECTOR = """
<wsnt:NotificationMessage>
  <wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet"
    >tns1:RuleEngine/FieldDetector/ObjectsInside</wsnt:Topic>
  <wsnt:Message><tt:Message UtcTime="2026-05-06T07:00:07Z" PropertyOperation="Changed">
    <tt:Source><tt:SimpleItem Name="VideoSourceConfigurationToken" Value="VSC_2"/></tt:Source>
    <tt:Data><tt:SimpleItem Name="IsInside" Value="false"/></tt:Data>
  </tt:Message></wsnt:Message>
</wsnt:NotificationMessage>"""

INITIALIZED_IDLE = VIDEO_SOURCE_MOTION_ALARM.replace('"Changed"', '"Initialized"')
INITIALIZED_ACTIVE = INITIALIZED_IDLE.replace('Value="false"', 'Value="true"')
DELETED = VIDEO_SOURCE_MOTION_ALARM.replace('"Changed"', '"Deleted"')

PROCESSOR_USAGE = """
<wsnt:NotificationMessage>
  <wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet"
    >tns1:Monitoring/ProcessorUsage</wsnt:Topic>
  <wsnt:Message><tt:Message UtcTime="2026-05-06T07:00:08Z" PropertyOperation="Changed">
    <tt:Source><tt:SimpleItem Name="Token" Value="CPU"/></tt:Source>
    <tt:Data><tt:SimpleItem Name="Value" Value="12.5"/></tt:Data>
  </tt:Message></wsnt:Message>
</wsnt:NotificationMessage>"""

# A vendor that binds the topics namespace to another prefix and omits UtcTime.
OTHER_PREFIX_NO_TIME = """
<wsnt:NotificationMessage>
  <wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet"
    xmlns:ns9="http://www.onvif.org/ver10/topics">ns9:VideoSource/MotionAlarm</wsnt:Topic>
  <wsnt:Message><tt:Message PropertyOperation="Changed">
    <tt:Source><tt:SimpleItem Name="Source" Value="VideoSource_2"/></tt:Source>
    <tt:Data><tt:SimpleItem Name="State" Value="true"/></tt:Data>
  </tt:Message></wsnt:Message>
</wsnt:NotificationMessage>"""

# Garbage a broken camera might send: no state, a non-boolean state.
NO_STATE = VIDEO_SOURCE_MOTION_ALARM.replace('Name="State" Value="false"', 'Name="Other" Value="1"')
WEIRD_STATE = VIDEO_SOURCE_MOTION_ALARM.replace('Value="false"', 'Value="maybe"')


def _envelope(*notifications: str) -> bytes:
    return (
        '<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:tev="http://www.onvif.org/ver10/events/wsdl" '
        'xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" '
        'xmlns:tt="http://www.onvif.org/ver10/schema" '
        'xmlns:tns1="http://www.onvif.org/ver10/topics"><env:Body><tev:PullMessagesResponse>'
        "<tev:CurrentTime>2026-05-06T07:08:09Z</tev:CurrentTime>"
        "<tev:TerminationTime>2026-05-06T07:09:09Z</tev:TerminationTime>"
        f"{''.join(notifications)}</tev:PullMessagesResponse></env:Body></env:Envelope>"
    ).encode()


@pytest.fixture
async def decode() -> AsyncIterator[Any]:
    """Decode notifications with zeep, as the backend's PullMessages does."""
    service = ONVIFService(
        "http://127.0.0.1:9/unused",
        "u",
        "p",
        str(Path(_WSDL_PATH) / "events.wsdl"),
        no_cache=True,
        binding_name=f"{{{EVENTS_NS}}}PullPointSubscriptionBinding",
    )
    await service.setup()
    operation = service.document.bindings[service.binding_name].get("PullMessages")

    def run(*notifications: str) -> list[tuple[str, Any]]:
        reply = operation.process_reply(parse_xml(_envelope(*notifications), None))
        return [(m.Topic._value_1, m.Message._value_1) for m in reply.NotificationMessage]

    try:
        yield run
    finally:
        await service.close()


def _one(decode: Any, notification: str) -> AlarmEvent | None:
    events = parse_notifications(decode(notification), RESOLVER, now=NOW)
    assert len(events) <= 1
    return events[0] if events else None


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            HIKVISION_CELL_MOTION,
            AlarmEvent(
                kind=AlarmKind.MOTION,
                active=True,
                at=_at("2026-05-06T07:00:01+00:00"),
                channel=2,
                vendor_type="tns1:RuleEngine/CellMotionDetector/Motion",
            ),
        ),
        (
            VIDEO_SOURCE_MOTION_ALARM,
            AlarmEvent(
                kind=AlarmKind.MOTION,
                active=False,
                at=_at("2026-05-06T07:00:02.500000+00:00"),
                channel=1,
                vendor_type="tns1:VideoSource/MotionAlarm",
            ),
        ),
        (
            AXIS_MOTION_REGION,
            AlarmEvent(
                kind=AlarmKind.MOTION,
                active=True,
                at=_at("2026-05-06T07:00:03+00:00"),
                channel=1,
                vendor_type="tns1:RuleEngine/MotionRegionDetector/Motion",
            ),
        ),
        (
            TAMPER,
            AlarmEvent(
                kind=AlarmKind.TAMPER,
                active=True,
                at=_at("2026-05-06T07:00:04+00:00"),
                channel=2,
                vendor_type="tns1:RuleEngine/TamperDetector/Tamper",
            ),
        ),
        (
            DIGITAL_INPUT,
            AlarmEvent(
                kind=AlarmKind.IO,
                active=True,
                at=_at("2026-05-06T07:00:05+00:00"),
                input_port=2,
                vendor_type="tns1:Device/Trigger/DigitalInput",
            ),
        ),
        (
            LINE_CROSSED,
            AlarmEvent(
                kind=AlarmKind.LINE_CROSSING,
                active=True,
                at=_at("2026-05-06T07:00:06+00:00"),
                channel=2,
                vendor_type="tns1:RuleEngine/LineDetector/Crossed",
            ),
        ),
        (
            FIELD_DETECTOR,
            AlarmEvent(
                kind=AlarmKind.INTRUSION,
                active=False,
                at=_at("2026-05-06T07:00:07+00:00"),
                channel=2,
                vendor_type="tns1:RuleEngine/FieldDetector/ObjectsInside",
            ),
        ),
        (
            INITIALIZED_ACTIVE,
            AlarmEvent(
                kind=AlarmKind.MOTION,
                active=True,
                at=_at("2026-05-06T07:00:02.500000+00:00"),
                channel=1,
                vendor_type="tns1:VideoSource/MotionAlarm",
            ),
        ),
        (
            OTHER_PREFIX_NO_TIME,
            AlarmEvent(
                kind=AlarmKind.MOTION,
                active=True,
                at=NOW,
                channel=2,
                vendor_type="ns9:VideoSource/MotionAlarm",
            ),
        ),
    ],
    ids=[
        "hikvision-cell-motion",
        "videosource-motionalarm",
        "axis-motion-region",
        "tamper",
        "digital-input",
        "line-crossed",
        "field-detector",
        "initialized-active",
        "other-prefix-no-time",
    ],
)
async def test_payload_shapes(decode: Any, payload: str, expected: AlarmEvent) -> None:
    assert _one(decode, payload) == expected


@pytest.mark.parametrize(
    "payload",
    [INITIALIZED_IDLE, DELETED, PROCESSOR_USAGE, NO_STATE, WEIRD_STATE],
    ids=["initialized-idle", "deleted", "unknown-topic", "no-state", "weird-state"],
)
async def test_payloads_that_are_not_alarm_changes(decode: Any, payload: str) -> None:
    assert _one(decode, payload) is None


async def test_a_batch_keeps_its_order(decode: Any) -> None:
    events = parse_notifications(
        decode(HIKVISION_CELL_MOTION, PROCESSOR_USAGE, TAMPER, VIDEO_SOURCE_MOTION_ALARM),
        RESOLVER,
        now=NOW,
    )
    assert [(e.kind, e.active) for e in events] == [
        (AlarmKind.MOTION, True),
        (AlarmKind.TAMPER, True),
        (AlarmKind.MOTION, False),
    ]


def test_raw_element_payloads_are_flattened_too() -> None:
    # zeep leaves payloads it cannot type as lxml elements (vendor namespaces).
    element = etree.fromstring(
        b'<v:Message xmlns:v="urn:vendor" UtcTime="2026-05-06T07:00:09Z" '
        b'PropertyOperation="Changed"><v:Source><v:SimpleItem Name="Source" '
        b'Value="VideoSource_2"/></v:Source><v:Data><v:SimpleItem Name="State" Value="true"/>'
        b"</v:Data></v:Message>"
    )
    payload = payload_from_message("tns1:VideoSource/MotionAlarm", element)
    assert payload == EventPayload(
        topic="tns1:VideoSource/MotionAlarm",
        operation="Changed",
        utc_time=_at("2026-05-06T07:00:09+00:00"),
        source={"Source": "VideoSource_2"},
        data={"State": "true"},
    )
    event = parse_notification(payload, RESOLVER, now=NOW)
    assert event is not None
    assert event.channel == 2


def test_unknown_channel_tokens_fall_back_to_the_default() -> None:
    payload = EventPayload(
        topic="tns1:VideoSource/MotionAlarm", source={"Source": "elsewhere"}, data={"State": "1"}
    )
    single = ChannelResolver(by_token={}, default=1)
    assert parse_notification(payload, single, now=NOW) == AlarmEvent(
        kind=AlarmKind.MOTION, active=True, at=NOW, channel=1, vendor_type=payload.topic
    )
    event = parse_notification(payload, RESOLVER, now=NOW)
    assert event is not None
    assert event.channel is None


@pytest.mark.parametrize(
    ("topic", "path"),
    [
        ("tns1:VideoSource/MotionAlarm", "VideoSource/MotionAlarm"),
        ("{http://www.onvif.org/ver10/topics}VideoSource/MotionAlarm", "VideoSource/MotionAlarm"),
        ("VideoSource/MotionAlarm", "VideoSource/MotionAlarm"),
        (" tns1:RuleEngine/CellMotionDetector/Motion/ ", "RuleEngine/CellMotionDetector/Motion"),
    ],
)
def test_topic_paths(topic: str, path: str) -> None:
    assert topic_path(topic) == path
    assert path in EVENT_PARSERS


def test_oversized_payloads_are_bounded() -> None:
    items = "".join(f'<SimpleItem Name="n{i}" Value="{"x" * 1000}"/>' for i in range(100))
    element = etree.fromstring(f"<Message><Source>{items}</Source><Data/></Message>".encode())
    payload = payload_from_message("t" * 5000, element)
    assert len(payload.topic) <= 256
    assert len(payload.source) <= 32
    assert all(len(v) <= 256 for v in payload.source.values())


_TEXT = st.text(max_size=40)


@given(
    topic=st.sampled_from([*EVENT_PARSERS, "Monitoring/ProcessorUsage"]).map(lambda p: f"tns1:{p}")
    | _TEXT,
    operation=st.sampled_from(["Changed", "Initialized", "Deleted", ""]) | _TEXT,
    source=st.dictionaries(
        st.sampled_from(["Source", "VideoSourceConfigurationToken", "InputToken", "x"]) | _TEXT,
        _TEXT,
        max_size=4,
    ),
    data=st.dictionaries(
        st.sampled_from(["State", "IsMotion", "LogicalState", "ObjectId", "IsTamper"]) | _TEXT,
        st.sampled_from(["true", "false", "1", "0"]) | _TEXT,
        max_size=4,
    ),
)
def test_any_payload_parses_or_is_ignored(
    topic: str, operation: str, source: dict[str, str], data: dict[str, str]
) -> None:
    payload = EventPayload(topic=topic, operation=operation, source=source, data=data)
    event = parse_notification(payload, RESOLVER, now=NOW)
    assert event is None or isinstance(event, AlarmEvent)
