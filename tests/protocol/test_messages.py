from __future__ import annotations

import dataclasses

import pytest

from nvrshare.protocol import messages as m
from nvrshare.protocol.errors import LocalProtocolError
from nvrshare.protocol.permissions import ALLOW, Deny, DenyReason, Grant, Permission, TimeWindow
from nvrshare.protocol.reasons import CloseReason, RefusalReason

SID = bytes(16)
CHANNEL = m.ChannelInfo(number=1, name="Gate", online=True, capabilities=Permission.LIVE_VIEW)
REQUEST = m.SessionRequest(device_serial="DS-1", channel=1, kind=m.SessionKind.LIVE_MAIN)
ACCOUNT = m.AccountGrant(account_id="alice", channels={1: Permission.LIVE_VIEW})

VALID: dict[type, dict[str, object]] = {
    m.ChannelInfo: {"number": 1, "name": "", "online": True, "capabilities": Permission.NONE},
    m.DeviceRegistration: {
        "serial": "DS-1",
        "domain": "home",
        "model": "DS-7608NI",
        "firmware_version": "V4",
        "channels": (CHANNEL,),
        "ip": "10.0.0.2",
        "port": 8000,
        "public_key": b"k" * 32,
        "timestamp": 1000,
        "nonce": b"n" * 16,
    },
    m.RegistrationResult: {
        "serial": "DS-1",
        "accepted": True,
        "reason": "",
        "grant_set_version": 0,
    },
    m.DeviceState: {"serial": "DS-1", "online": True, "timestamp": 1, "ip": "::1", "port": 1},
    m.Heartbeat: {"serial": "DS-1", "timestamp": 1},
    m.AccountGrant: {"account_id": "a", "channels": {1: Permission.PTZ}},
    m.GrantSet: {
        "device_serial": "DS-1",
        "version": 1,
        "share_epoch": 0,
        "issued_at": 1,
        "service_enabled": False,
        "grants": (ACCOUNT,),
        "revoked_token_ids": (b"t" * 16,),
        "revoked_accounts": ("bob",),
        "relay_public_keys": (b"r" * 32,),
    },
    m.SessionRequest: {"device_serial": "DS-1", "channel": 1, "kind": m.SessionKind.TALK},
    m.SessionOffer: {
        "session_id": SID,
        "token": b"t",
        "request": REQUEST,
        "relay_host": "relay.example.com",
        "relay_port": 443,
        "session_secret": b"s" * 32,
        "expires_at": 10,
    },
    m.SessionAccept: {"session_id": SID},
    m.SessionRefuse: {"session_id": SID, "reason": RefusalReason.REVOKED},
    m.SessionClose: {"session_id": SID, "reason": CloseReason.PEER_GONE},
    m.PtzCommand: {
        "request_id": SID,
        "token": b"t",
        "channel": 1,
        "action": m.PtzAction.STOP,
    },
    m.PtzResult: {"request_id": SID, "ok": True, "reason": ""},
    m.AlarmEvent: {
        "device_serial": "DS-1",
        "channel": 1,
        "event_type": "videoloss",
        "active": False,
        "timestamp": 1,
    },
    m.ErrorMessage: {"code": "bad_request", "message": ""},
}


@pytest.mark.parametrize("cls", list(VALID), ids=lambda c: c.__name__)
def test_valid_messages_build(cls: type) -> None:
    message = cls(**VALID[cls])
    first = dataclasses.fields(message)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(message, first, getattr(message, first))
    assert not hasattr(message, "__dict__")  # slotted


INVALID: list[tuple[type, dict[str, object]]] = [
    (m.ChannelInfo, {"number": 0}),
    (m.ChannelInfo, {"number": True}),
    (m.ChannelInfo, {"name": "x" * 129}),
    (m.ChannelInfo, {"name": "a\x1bb"}),
    (m.ChannelInfo, {"name": "gate\u202egnp.exe"}),
    (m.ChannelInfo, {"name": "\u2066x"}),
    (m.ChannelInfo, {"name": 5}),
    (m.ChannelInfo, {"online": 1}),
    (m.ChannelInfo, {"capabilities": 1}),
    (m.ChannelInfo, {"capabilities": Permission(64)}),
    (m.DeviceRegistration, {"serial": "a/b"}),
    (m.DeviceRegistration, {"domain": "Bad.Domain"}),
    (m.DeviceRegistration, {"model": ""}),
    (m.DeviceRegistration, {"firmware_version": "x" * 200}),
    (m.DeviceRegistration, {"channels": [CHANNEL]}),
    (m.DeviceRegistration, {"channels": ("ch1",)}),
    (m.DeviceRegistration, {"channels": (CHANNEL, CHANNEL)}),
    (m.DeviceRegistration, {"ip": "example.com"}),
    (m.DeviceRegistration, {"ip": "1" * 46}),
    (m.DeviceRegistration, {"ip": None}),
    (m.DeviceRegistration, {"port": 0}),
    (m.DeviceRegistration, {"port": 65536}),
    (m.DeviceRegistration, {"public_key": b"k" * 31}),
    (m.DeviceRegistration, {"public_key": "k" * 32}),
    (m.DeviceRegistration, {"timestamp": -1}),
    (m.DeviceRegistration, {"timestamp": 253_402_300_800}),
    (m.DeviceRegistration, {"nonce": b""}),
    (m.RegistrationResult, {"serial": ""}),
    (m.RegistrationResult, {"accepted": None}),
    (m.RegistrationResult, {"reason": "x" * 257}),
    (m.RegistrationResult, {"grant_set_version": 2**63}),
    (m.DeviceState, {"serial": "$SYS"}),
    (m.DeviceState, {"online": "yes"}),
    (m.DeviceState, {"timestamp": 1.0}),
    (m.DeviceState, {"ip": "999.1.1.1"}),
    (m.DeviceState, {"port": -1}),
    (m.Heartbeat, {"serial": "+"}),
    (m.Heartbeat, {"timestamp": None}),
    (m.AccountGrant, {"account_id": ""}),
    (m.AccountGrant, {"account_id": "x" * 129}),
    (m.AccountGrant, {"channels": {}}),
    (m.AccountGrant, {"channels": [(1, Permission.PTZ)]}),
    (m.AccountGrant, {"channels": {1: Permission.NONE}}),
    (m.AccountGrant, {"channels": {1: 4}}),
    (m.AccountGrant, {"channels": {0: Permission.PTZ}}),
    (m.AccountGrant, {"channels": {"1": Permission.PTZ}}),
    (m.AccountGrant, {"channels": {1: Permission(64)}}),
    (m.AccountGrant, {"valid_from": -5}),
    (m.AccountGrant, {"valid_until": 1.5}),
    (m.AccountGrant, {"valid_from": 10, "valid_until": 10}),
    (m.AccountGrant, {"playback_window": (1, 2)}),
    (m.GrantSet, {"device_serial": "a b"}),
    (m.GrantSet, {"version": -1}),
    (m.GrantSet, {"share_epoch": "1"}),
    (m.GrantSet, {"issued_at": -1}),
    (m.GrantSet, {"service_enabled": 0}),
    (m.GrantSet, {"grants": [ACCOUNT]}),
    (m.GrantSet, {"grants": ("alice",)}),
    (m.GrantSet, {"grants": (ACCOUNT, ACCOUNT)}),
    (m.GrantSet, {"revoked_token_ids": (b"short",)}),
    (m.GrantSet, {"revoked_accounts": ("",)}),
    (m.GrantSet, {"relay_public_keys": (b"r" * 33,)}),
    (m.GrantSet, {"relay_public_keys": [b"r" * 32]}),
    (m.SessionRequest, {"device_serial": "#"}),
    (m.SessionRequest, {"channel": 257}),
    (m.SessionRequest, {"kind": "talk"}),
    (m.SessionRequest, {"kind": m.SessionKind.PLAYBACK}),
    (m.SessionRequest, {"playback_window": TimeWindow(start=1, end=2)}),
    (m.SessionRequest, {"kind": m.SessionKind.PLAYBACK, "playback_window": (1, 2)}),
    (m.SessionOffer, {"session_id": b"s" * 15}),
    (m.SessionOffer, {"token": b""}),
    (m.SessionOffer, {"token": b"t" * 4097}),
    (m.SessionOffer, {"request": "live"}),
    (m.SessionOffer, {"relay_host": ""}),
    (m.SessionOffer, {"relay_host": "relay/evil"}),
    (m.SessionOffer, {"relay_host": "-relay"}),
    (m.SessionOffer, {"relay_host": "x" * 254}),
    (m.SessionOffer, {"relay_host": "[::1]"}),
    (m.SessionOffer, {"relay_port": 0}),
    (m.SessionOffer, {"session_secret": b"s" * 16}),
    (m.SessionOffer, {"expires_at": -1}),
    (m.SessionAccept, {"session_id": None}),
    (m.SessionRefuse, {"session_id": b""}),
    (m.SessionRefuse, {"reason": "revoked"}),
    (m.SessionRefuse, {"reason": CloseReason.REVOKED}),
    (m.SessionClose, {"session_id": b""}),
    (m.SessionClose, {"reason": "normal"}),
    (m.PtzCommand, {"request_id": b"r"}),
    (m.PtzCommand, {"token": b""}),
    (m.PtzCommand, {"channel": 0}),
    (m.PtzCommand, {"action": "stop"}),
    (m.PtzCommand, {"pan": 1.01}),
    (m.PtzCommand, {"tilt": float("nan")}),
    (m.PtzCommand, {"zoom": float("-inf")}),
    (m.PtzCommand, {"pan": 1}),
    (m.PtzCommand, {"preset": 1}),
    (m.PtzCommand, {"action": m.PtzAction.GOTO_PRESET}),
    (m.PtzCommand, {"action": m.PtzAction.SET_PRESET, "preset": 0}),
    (m.PtzCommand, {"action": m.PtzAction.SET_PRESET, "preset": m.MAX_PRESET + 1}),
    (m.PtzResult, {"request_id": b""}),
    (m.PtzResult, {"ok": "true"}),
    (m.PtzResult, {"reason": "\x00"}),
    (m.AlarmEvent, {"device_serial": ""}),
    (m.AlarmEvent, {"channel": -1}),
    (m.AlarmEvent, {"event_type": ""}),
    (m.AlarmEvent, {"active": None}),
    (m.AlarmEvent, {"timestamp": "now"}),
    (m.ErrorMessage, {"code": ""}),
    (m.ErrorMessage, {"code": "x" * 65}),
    (m.ErrorMessage, {"message": "x" * 1025}),
]


@pytest.mark.parametrize(
    ("cls", "changes"), INVALID, ids=[f"{c.__name__}-{sorted(ch)}" for c, ch in INVALID]
)
def test_invalid_messages_are_refused(cls: type, changes: dict[str, object]) -> None:
    with pytest.raises(LocalProtocolError):
        cls(**{**VALID[cls], **changes})


def test_hosts_accept_names_and_ip_literals() -> None:
    for host in ("relay.example.com", "r1", "192.0.2.1", "2001:db8::1", "::1"):
        offer = m.SessionOffer(**{**VALID[m.SessionOffer], "relay_host": host})  # type: ignore[arg-type]
        assert offer.relay_host == host


def test_session_kinds_require_their_permission() -> None:
    expected = {
        m.SessionKind.LIVE_MAIN: Permission.LIVE_VIEW,
        m.SessionKind.LIVE_SUB: Permission.LIVE_VIEW,
        m.SessionKind.PLAYBACK: Permission.PLAYBACK,
        m.SessionKind.TALK: Permission.TWO_WAY_AUDIO,
        m.SessionKind.ALARM: Permission.ALARM,
    }
    for kind, permission in expected.items():
        window = TimeWindow(start=0, end=1) if kind is m.SessionKind.PLAYBACK else None
        request = m.SessionRequest(
            device_serial="DS-1", channel=1, kind=kind, playback_window=window
        )
        assert request.required_permission == permission
    assert m.PtzCommand(**VALID[m.PtzCommand]).required_permission == Permission.PTZ  # type: ignore[arg-type]


def test_session_request_decides_against_a_grant() -> None:
    grant = Grant(
        channels={1: Permission.LIVE_VIEW | Permission.PLAYBACK},
        playback_window=TimeWindow(start=100, end=200),
    )
    assert REQUEST.decide(grant, 0) == ALLOW
    talk = m.SessionRequest(device_serial="DS-1", channel=1, kind=m.SessionKind.TALK)
    assert talk.decide(grant, 0) == Deny(DenyReason.PERMISSION_NOT_GRANTED)
    inside, outside = TimeWindow(start=120, end=130), TimeWindow(start=50, end=130)
    for window, expected in ((inside, ALLOW), (outside, Deny(DenyReason.OUTSIDE_PLAYBACK_WINDOW))):
        playback = m.SessionRequest(
            device_serial="DS-1", channel=1, kind=m.SessionKind.PLAYBACK, playback_window=window
        )
        assert playback.decide(grant, 0) == expected


def test_grant_set_lookup_honours_revocation() -> None:
    grant_set = m.GrantSet(**VALID[m.GrantSet])  # type: ignore[arg-type]
    grant = grant_set.grant_for("alice")
    assert grant is not None
    assert grant.channels == {1: Permission.LIVE_VIEW}
    assert grant_set.grant_for("carol") is None
    revoked = dataclasses.replace(grant_set, revoked_accounts=("alice",))
    assert revoked.grant_for("alice") is None


def test_account_grant_as_grant() -> None:
    window = TimeWindow(start=1, end=2)
    account = m.AccountGrant(
        account_id="i",
        channels={2: Permission.PLAYBACK},
        valid_from=5,
        valid_until=9,
        playback_window=window,
    )
    assert account.grant() == Grant(
        channels={2: Permission.PLAYBACK}, valid_from=5, valid_until=9, playback_window=window
    )


def test_registration_freshness() -> None:
    registration = m.DeviceRegistration(**VALID[m.DeviceRegistration])  # type: ignore[arg-type]
    assert registration.is_fresh(1000)
    assert registration.is_fresh(1300)
    assert registration.is_fresh(700)
    assert not registration.is_fresh(1301)
    assert not registration.is_fresh(1000, max_skew=-1)


def test_secrets_are_left_out_of_repr() -> None:
    offer = m.SessionOffer(**VALID[m.SessionOffer])  # type: ignore[arg-type]
    assert "session_secret" not in repr(offer)
    assert "token" not in repr(offer)
    assert "token" not in repr(m.PtzCommand(**VALID[m.PtzCommand]))  # type: ignore[arg-type]
