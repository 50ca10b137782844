"""ONVIF notification payloads -> `AlarmEvent`, through a registry keyed by topic.

A PullMessages reply carries, per notification, a topic expression
(``tns1:VideoSource/MotionAlarm``) and a ``tt:Message`` with Source and Data
SimpleItems. zeep hands the message over either as a typed object (when it
matches ``tt:Message``) or as a raw lxml element (vendor extensions); both are
first flattened into an `EventPayload`, so each parser sees plain strings.

Each vendor shape is one small parser registered under its topic path (the
prefix is dropped: cameras bind the ONVIF topic namespace to ``tns1``, ``tnsaxis``
or anything else). Unknown topics are ignored: a camera emits plenty of events
that are not alarms.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from nvrshare.firmware_shim.models import AlarmEvent, AlarmKind

__all__ = [
    "EVENT_PARSERS",
    "ChannelResolver",
    "EventPayload",
    "parse_notification",
    "payload_from_message",
    "topic_path",
]

_MAX_ITEMS = 32
_MAX_TEXT = 256
_TRUE = frozenset({"true", "1", "active", "on"})
_FALSE = frozenset({"false", "0", "inactive", "off"})


@dataclass(frozen=True, kw_only=True, slots=True)
class EventPayload:
    """One notification, flattened: topic, property operation, time and SimpleItems."""

    topic: str
    operation: str = ""
    utc_time: dt.datetime | None = None
    source: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelResolver:
    """Maps the tokens that name a channel in payloads to channel numbers.

    `by_token` holds video source tokens and video source configuration tokens;
    `default` is used when no token names a channel (a single-channel camera).
    """

    by_token: Mapping[str, int] = field(default_factory=dict)
    default: int | None = None

    def channel(self, *tokens: str | None) -> int | None:
        for token in tokens:
            if token and token in self.by_token:
                return self.by_token[token]
        return self.default


def topic_path(topic: str) -> str:
    """``tns1:RuleEngine/CellMotionDetector/Motion`` -> ``RuleEngine/CellMotionDetector/Motion``."""
    topic = topic.strip()
    if "}" in topic:
        topic = topic.rsplit("}", 1)[1]
    head, sep, rest = topic.partition(":")
    path = rest if sep and "/" not in head else topic
    return path.strip("/")


def _bool(value: str | None) -> bool | None:
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return None


# --- flattening zeep objects and lxml elements ----------------------------------------


def _clip(value: object) -> str:
    return str(value)[:_MAX_TEXT]


def _items_from_object(group: Any) -> dict[str, str]:
    items: dict[str, str] = {}
    for item in list(getattr(group, "SimpleItem", None) or [])[:_MAX_ITEMS]:
        name, value = getattr(item, "Name", None), getattr(item, "Value", None)
        if name is not None and value is not None:
            items[_clip(name)] = _clip(value)
    return items


def _items_from_element(element: etree._Element, group: str) -> dict[str, str]:
    items: dict[str, str] = {}
    for holder in element.iter():
        if isinstance(holder.tag, str) and etree.QName(holder).localname == group:
            for item in list(holder)[:_MAX_ITEMS]:
                if isinstance(item.tag, str) and etree.QName(item).localname == "SimpleItem":
                    name, value = item.get("Name"), item.get("Value")
                    if name is not None and value is not None:
                        items[_clip(name)] = _clip(value)
            break
    return items


def _parse_time(value: object) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        when = value
    elif isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def payload_from_message(topic: str, message: Any) -> EventPayload:
    """Flatten a notification's ``Message._value_1`` (zeep object or lxml element)."""
    if isinstance(message, etree._Element):
        inner = message
        if etree.QName(inner).localname != "Message":
            found = next(
                (
                    e
                    for e in inner.iter()
                    if isinstance(e.tag, str) and etree.QName(e).localname == "Message"
                ),
                None,
            )
            inner = found if found is not None else inner
        return EventPayload(
            topic=_clip(topic),
            operation=_clip(inner.get("PropertyOperation") or ""),
            utc_time=_parse_time(inner.get("UtcTime")),
            source=_items_from_element(inner, "Source"),
            data=_items_from_element(inner, "Data"),
        )
    return EventPayload(
        topic=_clip(topic),
        operation=_clip(getattr(message, "PropertyOperation", None) or ""),
        utc_time=_parse_time(getattr(message, "UtcTime", None)),
        source=_items_from_object(getattr(message, "Source", None)),
        data=_items_from_object(getattr(message, "Data", None)),
    )


# --- the registry -------------------------------------------------------------------

Parser = Callable[[EventPayload, ChannelResolver, dt.datetime], AlarmEvent | None]


def _state_parser(kind: AlarmKind, state_key: str, *source_keys: str) -> Parser:
    """A parser for payloads whose Data holds one boolean state item."""

    def parse(
        payload: EventPayload, channels: ChannelResolver, now: dt.datetime
    ) -> AlarmEvent | None:
        active = _bool(payload.data.get(state_key))
        if active is None:
            return None
        channel = channels.channel(*(payload.source.get(key) for key in source_keys))
        return AlarmEvent(
            kind=kind,
            active=active,
            at=payload.utc_time or now,
            channel=channel,
            vendor_type=payload.topic,
        )

    return parse


def _digital_input(
    payload: EventPayload, _channels: ChannelResolver, now: dt.datetime
) -> AlarmEvent | None:
    active = _bool(payload.data.get("LogicalState") or payload.data.get("State"))
    if active is None:
        return None
    # Input tokens are opaque; a trailing number 1..256 is taken as the port ("AlarmIn_2").
    token = payload.source.get("InputToken") or payload.source.get("Index") or ""
    digits = token[len(token.rstrip("0123456789")) :][-3:]
    port = int(digits) if digits else None
    return AlarmEvent(
        kind=AlarmKind.IO,
        active=active,
        at=payload.utc_time or now,
        input_port=port if port is not None and 1 <= port <= 256 else None,
        vendor_type=payload.topic,
    )


def _line_crossed(
    payload: EventPayload, channels: ChannelResolver, now: dt.datetime
) -> AlarmEvent | None:
    # A crossing is momentary: it has an object id, not a state.
    if "ObjectId" not in payload.data:
        return None
    return AlarmEvent(
        kind=AlarmKind.LINE_CROSSING,
        active=True,
        at=payload.utc_time or now,
        channel=channels.channel(payload.source.get("VideoSourceConfigurationToken")),
        vendor_type=payload.topic,
    )


EVENT_PARSERS: Mapping[str, Parser] = {
    "VideoSource/MotionAlarm": _state_parser(
        AlarmKind.MOTION, "State", "Source", "VideoSourceToken"
    ),
    "RuleEngine/CellMotionDetector/Motion": _state_parser(
        AlarmKind.MOTION, "IsMotion", "VideoSourceConfigurationToken"
    ),
    "RuleEngine/MotionRegionDetector/Motion": _state_parser(
        AlarmKind.MOTION, "State", "VideoSource", "VideoSourceConfigurationToken"
    ),
    "VideoAnalytics/Motion": _state_parser(AlarmKind.MOTION, "State", "VideoSource", "Source"),
    "RuleEngine/TamperDetector/Tamper": _state_parser(
        AlarmKind.TAMPER, "IsTamper", "VideoSourceConfigurationToken"
    ),
    "VideoSource/GlobalSceneChange/ImagingService": _state_parser(
        AlarmKind.TAMPER, "State", "Source"
    ),
    "RuleEngine/FieldDetector/ObjectsInside": _state_parser(
        AlarmKind.INTRUSION, "IsInside", "VideoSourceConfigurationToken"
    ),
    "VideoSource/SignalLoss": _state_parser(AlarmKind.VIDEO_LOSS, "State", "Source"),
    "Device/Trigger/DigitalInput": _digital_input,
    "RuleEngine/LineDetector/Crossed": _line_crossed,
}


def parse_notification(
    payload: EventPayload,
    channels: ChannelResolver,
    *,
    now: dt.datetime,
    parsers: Mapping[str, Parser] = EVENT_PARSERS,
) -> AlarmEvent | None:
    """The alarm a notification reports, or None (unknown topic, no state, a quiet initial state).

    ``Initialized`` messages describe the state at subscription time: only an
    alarm already active then is reported; ``Deleted`` is never an alarm change.
    """
    parser = parsers.get(topic_path(payload.topic))
    if parser is None or payload.operation == "Deleted":
        return None
    event = parser(payload, channels, now)
    if event is not None and payload.operation == "Initialized" and not event.active:
        return None
    return event


def parse_notifications(
    notifications: Iterable[tuple[str, Any]], channels: ChannelResolver, *, now: dt.datetime
) -> list[AlarmEvent]:
    """(topic, message) pairs -> the alarms among them, in order."""
    events = []
    for topic, message in notifications:
        event = parse_notification(payload_from_message(topic, message), channels, now=now)
        if event is not None:
            events.append(event)
    return events
