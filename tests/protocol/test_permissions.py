from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nvrshare.protocol.errors import LocalProtocolError, RemoteProtocolError
from nvrshare.protocol.permissions import (
    ALL_PERMISSIONS,
    ALLOW,
    MAX_CHANNEL,
    Allow,
    Deny,
    DenyReason,
    Grant,
    Permission,
    TimeWindow,
    check,
    check_playback,
    decode_channel_matrix,
    encode_channel_matrix,
    parse_permission_names,
    permission_names,
)

GRANT = Grant(
    channels={1: Permission.LIVE_VIEW | Permission.PLAYBACK, 3: Permission.PTZ},
    valid_from=100,
    valid_until=200,
    playback_window=TimeWindow(start=1000, end=2000),
)


def test_allow_and_deny_are_truthy_and_falsy() -> None:
    assert Allow() == ALLOW
    assert bool(ALLOW)
    assert not Deny(DenyReason.EXPIRED)


@pytest.mark.parametrize(
    ("channel", "permission", "now", "expected"),
    [
        (1, Permission.LIVE_VIEW, 150, ALLOW),
        (1, Permission.LIVE_VIEW | Permission.PLAYBACK, 150, ALLOW),
        (1, Permission.LIVE_VIEW, 99, Deny(DenyReason.NOT_YET_VALID)),
        (1, Permission.LIVE_VIEW, 200, Deny(DenyReason.EXPIRED)),
        (2, Permission.LIVE_VIEW, 150, Deny(DenyReason.CHANNEL_NOT_GRANTED)),
        (3, Permission.LIVE_VIEW, 150, Deny(DenyReason.PERMISSION_NOT_GRANTED)),
        (1, Permission.LIVE_VIEW | Permission.PTZ, 150, Deny(DenyReason.PERMISSION_NOT_GRANTED)),
    ],
)
def test_check(channel: int, permission: Permission, now: int, expected: object) -> None:
    assert check(GRANT, channel, permission, now) == expected


def test_unbounded_grant_never_expires() -> None:
    grant = Grant(channels={1: Permission.ALARM})
    assert check(grant, 1, Permission.ALARM, 0)
    assert check(grant, 1, Permission.ALARM, 2**40)


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        (TimeWindow(start=1000, end=2000), ALLOW),
        (TimeWindow(start=1500, end=1600), ALLOW),
        (TimeWindow(start=999, end=1500), Deny(DenyReason.OUTSIDE_PLAYBACK_WINDOW)),
        (TimeWindow(start=1500, end=2001), Deny(DenyReason.OUTSIDE_PLAYBACK_WINDOW)),
    ],
)
def test_check_playback_window(window: TimeWindow, expected: object) -> None:
    assert check_playback(GRANT, 1, window, 150) == expected


def test_check_playback_without_window_or_permission() -> None:
    window = TimeWindow(start=0, end=1)
    assert check_playback(Grant(channels={1: Permission.PLAYBACK}), 1, window, 0)
    assert check_playback(GRANT, 3, window, 150) == Deny(DenyReason.PERMISSION_NOT_GRANTED)


@pytest.mark.parametrize(
    ("channel", "permission"),
    [(1, Permission.NONE), (1, 64), (0, Permission.LIVE_VIEW), (MAX_CHANNEL + 1, Permission.PTZ)],
)
def test_check_misuse_is_a_local_error(channel: int, permission: Permission) -> None:
    with pytest.raises(LocalProtocolError):
        check(GRANT, channel, permission, 150)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"channels": {0: Permission.LIVE_VIEW}},
        {"channels": {1: 64}},
        {"channels": {1: Permission.LIVE_VIEW}, "valid_from": 5, "valid_until": 5},
    ],
)
def test_invalid_grants(kwargs: dict[str, object]) -> None:
    with pytest.raises(LocalProtocolError):
        Grant(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("start", "end"), [(5, 5), (6, 5), (-1, 5), (0, 253_402_300_800), (0, 5.0), (False, 5)]
)
def test_invalid_time_windows(start: int, end: int) -> None:
    with pytest.raises(LocalProtocolError):
        TimeWindow(start=start, end=end)


def test_time_window() -> None:
    outer = TimeWindow(start=0, end=10)
    assert outer.covers(TimeWindow(start=0, end=10))
    assert not outer.covers(TimeWindow(start=5, end=11))


def test_permission_names_round_trip() -> None:
    assert permission_names(ALL_PERMISSIONS) == (
        "live_view",
        "playback",
        "ptz",
        "alarm",
        "two_way_audio",
    )
    assert permission_names(Permission.NONE) == ()
    assert parse_permission_names(["ptz", "live_view"]) == Permission.PTZ | Permission.LIVE_VIEW
    assert parse_permission_names(()) == Permission.NONE


@pytest.mark.parametrize("names", ["ptz", ["fly"], [1], None])
def test_parse_permission_names_refuses_junk(names: object) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_permission_names(names)


@given(st.dictionaries(st.integers(1, MAX_CHANNEL), st.integers(1, 31).map(Permission)))
def test_channel_matrix_round_trip(matrix: dict[int, Permission]) -> None:
    assert decode_channel_matrix(encode_channel_matrix(matrix)) == matrix


@pytest.mark.parametrize(
    "value",
    [
        [1, 2],
        {"1": 1},
        {True: 1},
        {0: 1},
        {257: 1},
        {1: 0},
        {1: 32},
        {1: True},
        {1: 1.0},
        dict.fromkeys(range(1, 4), 1),
    ],
)
def test_channel_matrix_refuses_junk(value: object) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_channel_matrix(value, max_channels=2)
