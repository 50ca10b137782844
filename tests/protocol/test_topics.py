from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nvrshare.protocol import topics
from nvrshare.protocol.errors import LocalProtocolError, RemoteProtocolError
from nvrshare.protocol.topics import TopicKind

from . import strategies


def test_device_topics_have_the_documented_layout() -> None:
    assert topics.device_topic("DS-1", TopicKind.UP_REGISTER) == "nvrshare/v1/dev/DS-1/up/register"
    assert topics.device_topic("DS-1", TopicKind.STATE, root="acme/nv") == "acme/nv/dev/DS-1/state"
    assert topics.device_subscription("DS-1") == "nvrshare/v1/dev/DS-1/down/#"


@given(serial=strategies.serials, kind=st.sampled_from(TopicKind))
def test_build_then_parse_round_trips(kind: TopicKind, serial: str) -> None:
    topic = topics.device_topic(serial, kind, root="x/y")
    assert topics.parse_device_topic(topic, root="x/y") == (serial, kind)


def test_relay_filters_and_shared_subscriptions() -> None:
    assert topics.relay_filters() == ("nvrshare/v1/dev/+/up/#", "nvrshare/v1/dev/+/state")
    assert topics.relay_subscriptions("relays", root="r") == (
        "$share/relays/r/dev/+/up/#",
        "$share/relays/r/dev/+/state",
    )


def test_device_acl_patterns_cover_only_its_own_topics() -> None:
    patterns = topics.device_topic_patterns("DS-1")
    assert patterns.subscribe == ("nvrshare/v1/dev/DS-1/down/#",)
    assert set(patterns.publish) == {
        "nvrshare/v1/dev/DS-1/up/register",
        "nvrshare/v1/dev/DS-1/up/heartbeat",
        "nvrshare/v1/dev/DS-1/up/alarm",
        "nvrshare/v1/dev/DS-1/up/session",
        "nvrshare/v1/dev/DS-1/state",
    }
    for topic in (*patterns.publish, *patterns.subscribe):
        assert "+" not in topic
        assert topic.count("#") == (1 if topic.endswith("/down/#") else 0)


INJECTIONS = [
    "",
    "+",
    "#",
    "DS-1/+",
    "DS-1/#",
    "a/b",
    "$SYS",
    "DS\x00",
    "DS 1",
    "DS-1\n",
    "-DS",
    "x" * 65,
    "\uff24\uff33\uff11",  # fullwidth look-alikes
]


@pytest.mark.parametrize("serial", INJECTIONS)
def test_building_with_a_hostile_serial_is_refused(serial: str) -> None:
    with pytest.raises(LocalProtocolError):
        topics.device_topic(serial, TopicKind.STATE)
    with pytest.raises(LocalProtocolError):
        topics.device_topic_patterns(serial)
    with pytest.raises(LocalProtocolError):
        topics.device_subscription(serial)


@pytest.mark.parametrize(
    "root", ["", "/", "a//b", "a/+", "#", "$share/x", "a/b/", "a\x00", "x" * 200, 3]
)
def test_bad_roots_are_refused(root: str) -> None:
    with pytest.raises(LocalProtocolError):
        topics.device_topic("DS-1", TopicKind.STATE, root=root)
    with pytest.raises(LocalProtocolError):
        topics.relay_filters(root=root)
    with pytest.raises(LocalProtocolError):
        topics.parse_device_topic("nvrshare/v1/dev/DS-1/state", root=root)


@pytest.mark.parametrize("group", ["", "a/b", "+", "#", "g\x00", "x" * 65, None])
def test_bad_share_groups_are_refused(group: str) -> None:
    with pytest.raises(LocalProtocolError):
        topics.relay_subscriptions(group)


@pytest.mark.parametrize(
    "topic",
    [
        "nvrshare/v1/dev/DS-1",
        "nvrshare/v1/dev/DS-1/",
        "nvrshare/v1/dev/DS-1/up",
        "nvrshare/v1/dev/DS-1/up/register/extra",
        "nvrshare/v1/dev/DS-1/up/#",
        "nvrshare/v1/dev/+/state",
        "nvrshare/v1/dev//state",
        "nvrshare/v1/dev/$SYS/state",
        "nvrshare/v1/dev/DS\x00/state",
        "nvrshare/v2/dev/DS-1/state",
        "$share/g/nvrshare/v1/dev/DS-1/state",
        "nvrshare/v1/dev/" + "x" * 600 + "/state",
        "nvrshare/v1/dev/DS-1/STATE",
        b"nvrshare/v1/dev/DS-1/state",
    ],
)
def test_parsing_foreign_topics_is_refused(topic: str) -> None:
    with pytest.raises(RemoteProtocolError):
        topics.parse_device_topic(topic)


@given(st.text(max_size=80))
def test_any_topic_parses_or_raises_remote_error(topic: str) -> None:
    try:
        serial, kind = topics.parse_device_topic("nvrshare/v1/dev/" + topic)
    except RemoteProtocolError:
        return
    assert topics.device_topic(serial, kind) == "nvrshare/v1/dev/" + topic


def test_kinds_know_their_direction() -> None:
    assert TopicKind.STATE.from_device
    assert TopicKind.UP_ALARM.from_device
    assert not TopicKind.DOWN_GRANTS.from_device


def test_kind_must_be_a_topic_kind() -> None:
    with pytest.raises(LocalProtocolError):
        topics.device_topic("DS-1", "up/#")  # type: ignore[arg-type]
