"""MQTT topic names: building them safely and parsing them strictly.

Layout, under a configurable root (default ``nvrshare/v1``)::

    <root>/dev/<serial>/up/register     device → relay  signed DeviceRegistration
    <root>/dev/<serial>/up/heartbeat    device → relay  Heartbeat
    <root>/dev/<serial>/up/alarm        device → relay  AlarmEvent
    <root>/dev/<serial>/up/session      device → relay  SessionAccept/Refuse/Close, PtzResult
    <root>/dev/<serial>/state           device → all    DeviceState (retained; the last will)
    <root>/dev/<serial>/down/session    relay → device  SessionOffer
    <root>/dev/<serial>/down/grants     relay → device  signed GrantSet (retained)
    <root>/dev/<serial>/down/ptz        relay → device  PtzCommand
    <root>/dev/<serial>/down/control    relay → device  RegistrationResult, ErrorMessage

Relays share the load through MQTT 5 shared subscriptions
(``$share/<group>/...``).  A serial is spliced into topics, so it is checked
against `validation.is_valid_serial`, which excludes ``+ # / $``, NUL and
anything long; the root and group names are checked the same way.
"""

from __future__ import annotations

import enum
import re
from typing import NamedTuple

from nvrshare.protocol.errors import LocalProtocolError, RemoteProtocolError
from nvrshare.protocol.validation import is_valid_serial

__all__ = [
    "DEFAULT_ROOT",
    "DeviceTopic",
    "TopicKind",
    "TopicPatterns",
    "device_subscription",
    "device_topic",
    "device_topic_patterns",
    "parse_device_topic",
    "relay_filters",
    "relay_subscriptions",
]

DEFAULT_ROOT = "nvrshare/v1"
MAX_ROOT_LENGTH = 128
MAX_TOPIC_LENGTH = 512  # far above any topic we build; MQTT allows 65535

# Each level of a root, and a share group: plain ASCII, no MQTT metacharacters.
_LEVEL = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class TopicKind(enum.StrEnum):
    """The per-device topic suffixes; the value is the topic's tail."""

    UP_REGISTER = "up/register"
    UP_HEARTBEAT = "up/heartbeat"
    UP_ALARM = "up/alarm"
    UP_SESSION = "up/session"
    STATE = "state"
    DOWN_SESSION = "down/session"
    DOWN_GRANTS = "down/grants"
    DOWN_PTZ = "down/ptz"
    DOWN_CONTROL = "down/control"

    @property
    def from_device(self) -> bool:
        """Whether the device publishes on this topic (else it subscribes)."""
        return not self.value.startswith("down/")


_BY_TAIL = {kind.value: kind for kind in TopicKind}


class DeviceTopic(NamedTuple):
    serial: str
    kind: TopicKind


class TopicPatterns(NamedTuple):
    """What one device's broker ACL must allow, and nothing more."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


def _check_root(root: str) -> str:
    if (
        not isinstance(root, str)
        or len(root) > MAX_ROOT_LENGTH
        or not all(_LEVEL.fullmatch(level) for level in root.split("/"))
    ):
        raise LocalProtocolError(f"invalid topic root {root!r:.80}")
    return root


def _check_serial(serial: str) -> str:
    if not is_valid_serial(serial):
        raise LocalProtocolError(f"invalid device serial {serial!r:.80}")
    return serial


def device_topic(serial: str, kind: TopicKind, *, root: str = DEFAULT_ROOT) -> str:
    """The topic for `kind` of device `serial`; `LocalProtocolError` for a bad serial/root."""
    if not isinstance(kind, TopicKind):
        raise LocalProtocolError(f"not a TopicKind: {kind!r:.40}")
    return f"{_check_root(root)}/dev/{_check_serial(serial)}/{kind.value}"


def device_subscription(serial: str, *, root: str = DEFAULT_ROOT) -> str:
    """The filter a device subscribes to: everything sent down to it."""
    return f"{_check_root(root)}/dev/{_check_serial(serial)}/down/#"


def relay_filters(*, root: str = DEFAULT_ROOT) -> tuple[str, str]:
    """The plain filters for everything devices publish: ``up/#`` and ``state``."""
    base = f"{_check_root(root)}/dev/+"
    return (f"{base}/up/#", f"{base}/state")


def relay_subscriptions(group: str, *, root: str = DEFAULT_ROOT) -> tuple[str, str]:
    """`relay_filters` as shared subscriptions of `group`, so relays split the load."""
    if not isinstance(group, str) or _LEVEL.fullmatch(group) is None:
        raise LocalProtocolError(f"invalid share group {group!r:.80}")
    up, state = relay_filters(root=root)
    return (f"$share/{group}/{up}", f"$share/{group}/{state}")


def device_topic_patterns(serial: str, *, root: str = DEFAULT_ROOT) -> TopicPatterns:
    """The exact topics device `serial` may publish to and subscribe to.

    Publish: its own ``up/*`` topics and ``state``; subscribe: its ``down/#``.
    No wildcard covers another device, so provisioning per-device ACLs from
    this cannot leak one device's traffic to another.
    """
    publish = tuple(device_topic(serial, kind, root=root) for kind in TopicKind if kind.from_device)
    return TopicPatterns(publish=publish, subscribe=(device_subscription(serial, root=root),))


def parse_device_topic(topic: str, *, root: str = DEFAULT_ROOT) -> DeviceTopic:
    """Split a received topic into (serial, kind).

    Raises `RemoteProtocolError` for anything that is not exactly one of our
    device topics under `root`: other roots, unknown or extra levels, bad
    serials, over-long topics.  `LocalProtocolError` if `root` itself is bad.
    """
    prefix = f"{_check_root(root)}/dev/"
    if not isinstance(topic, str) or len(topic) > MAX_TOPIC_LENGTH:
        raise RemoteProtocolError("topic is not a bounded string")
    if not topic.startswith(prefix):
        raise RemoteProtocolError(f"topic outside {prefix!r}: {topic!r:.80}")
    serial, _, tail = topic[len(prefix) :].partition("/")
    kind = _BY_TAIL.get(tail)
    if kind is None or not is_valid_serial(serial):
        raise RemoteProtocolError(f"not a device topic: {topic!r:.80}")
    return DeviceTopic(serial, kind)
