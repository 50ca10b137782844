"""ONVIF simulator, sans-IO parts: PTZ integration, presets, subscriptions, auth, SOAP parsing."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nvrshare.simulators import onvif
from nvrshare.simulators.onvif.auth import UsernameTokenVerifier, password_digest
from nvrshare.simulators.onvif.ptz import PtzError, PtzHead, PtzPosition, PtzTooManyPresets
from nvrshare.simulators.onvif.pullpoint import EventMessage, PullPointBroker, SubscriptionError
from nvrshare.simulators.onvif.soap import (
    SoapFault,
    parse_duration,
    parse_request,
    parse_termination,
)
from nvrshare.simulators.onvif.state import MotionTopic, OnvifCameraState, default_profiles

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def test_public_names() -> None:
    assert onvif.__all__ == [
        "MotionTopic",
        "OnvifCameraServer",
        "OnvifCameraState",
        "OnvifDeviceInfo",
        "OnvifProfile",
        "OnvifSimulatorConfig",
        "PtzPosition",
        "PtzPreset",
        "RecordingArchive",
        "create_onvif_app",
        "default_profiles",
    ]


# --- PTZ ---------------------------------------------------------------------------


def test_continuous_move_integrates_velocity_and_clamps() -> None:
    head = PtzHead(rate=0.5)
    head.continuous_move(10.0, pan=1.0, tilt=-0.5, zoom=None)
    assert head.position(11.0) == PtzPosition(pan=0.5, tilt=-0.25, zoom=0.0)
    assert head.moving(11.0) == (True, False)
    # Far past the end stop: clamped, and no longer "moving" although the velocity stands.
    assert head.position(100.0).pan == 1.0
    assert head.position(100.0).tilt == -1.0
    assert head.moving(100.0) == (False, False)


def test_stop_freezes_position_and_timeout_ends_move() -> None:
    head = PtzHead(rate=1.0)
    head.continuous_move(0.0, pan=0.2, tilt=None, zoom=0.5)
    head.stop(1.0, pan_tilt=True, zoom=False)
    assert head.position(5.0).pan == pytest.approx(0.2)
    assert head.position(1.5).zoom == pytest.approx(0.75)
    head.stop(2.0)
    assert head.position(9.0).zoom == pytest.approx(1.0)
    head.continuous_move(10.0, pan=-1.0, tilt=None, zoom=None, timeout=0.5)
    assert head.position(20.0).pan == pytest.approx(-0.3)
    assert head.moving(20.0) == (False, False)


def test_presets_store_and_recall() -> None:
    head = PtzHead(rate=1.0, max_presets=2)
    head.absolute_move(0.0, PtzPosition(pan=0.3, tilt=0.1, zoom=0.2))
    token = head.set_preset(0.0, name="door", token=None)
    head.set_preset(0.0, name=None, token="7")
    head.relative_move(1.0, PtzPosition(pan=-0.5))
    assert head.position(1.0).pan == pytest.approx(-0.2)
    head.goto_preset(2.0, token)
    assert head.position(2.0) == PtzPosition(pan=0.3, tilt=0.1, zoom=0.2)
    assert [p.name for p in head.presets] == ["door", "Preset 7"]
    with pytest.raises(PtzTooManyPresets):
        head.set_preset(2.0, name="x", token=None)
    head.set_preset(2.0, name="renamed", token="7")  # overwriting needs no new slot
    with pytest.raises(PtzError):
        head.goto_preset(2.0, "nope")
    with pytest.raises(PtzError):
        head.set_preset(2.0, name=None, token="bad token!")
    head.remove_preset("7")
    with pytest.raises(PtzError):
        head.remove_preset("7")


def test_non_finite_values_are_refused() -> None:
    head = PtzHead()
    with pytest.raises(PtzError):
        head.continuous_move(0.0, pan=float("nan"), tilt=None, zoom=None)
    with pytest.raises(PtzError):
        head.absolute_move(0.0, PtzPosition(pan=float("inf")))


# --- subscriptions -----------------------------------------------------------------


def _message(state: str = "true") -> EventMessage:
    return EventMessage(
        topic="tns1:VideoSource/MotionAlarm", utc_time=NOW, data=(("State", state),)
    )


def test_broker_bounds_expiry_and_renew() -> None:
    broker = PullPointBroker(max_subscriptions=2, max_queue=3, max_termination=100.0)
    first = broker.create(0.0, seconds=10.0)
    second = broker.create(0.0, seconds=1000.0)
    assert second.expires_at == 100.0  # bounded
    with pytest.raises(SubscriptionError):
        broker.create(0.0, seconds=10.0)
    with pytest.raises(SubscriptionError):
        broker.renew(first.id, 0.0, seconds=-1.0)
    for _ in range(5):
        broker.publish(_message(), 1.0)
    assert len(first.queue) == 3  # oldest dropped
    assert first.wakeup.is_set()
    assert len(first.take(2)) == 2
    assert first.wakeup.is_set()
    first.take(10)
    assert not first.wakeup.is_set()
    broker.renew(first.id, 5.0, seconds=50.0)
    assert broker.get(first.id, 54.0) is first
    with pytest.raises(SubscriptionError):
        broker.get(first.id, 55.0)
    broker.create(55.0, seconds=1.0)  # the expired one freed its slot
    broker.unsubscribe(second.id, 56.0)
    with pytest.raises(SubscriptionError):
        broker.unsubscribe(second.id, 56.0)
    broker.close()
    assert len(broker) == 0
    with pytest.raises(SubscriptionError):
        broker.create(57.0, seconds=1.0)


def test_state_motion_messages_reach_subscribers() -> None:
    clock = [0.0]
    state = OnvifCameraState(
        profiles=default_profiles("rtsp://h/main", "rtsp://h/sub"),
        clock=lambda: clock[0],
        wall_clock=lambda: NOW,
    )
    subscription = state.broker.create(0.0, seconds=60.0, initial=state.initial_messages())
    assert [m.operation for m in subscription.queue] == ["Initialized"]
    assert state.trigger_motion() == 1
    state.trigger_motion(False, topic=MotionTopic.CELL_MOTION)
    _, raised, cleared = subscription.take(10)
    assert raised.topic == "tns1:VideoSource/MotionAlarm"
    assert raised.source == (("Source", "VideoSource_1"),)
    assert raised.data == (("State", "true"),)
    assert cleared.topic == "tns1:RuleEngine/CellMotionDetector/Motion"
    assert cleared.data == (("IsMotion", "false"),)
    with pytest.raises(KeyError):
        state.trigger_motion(video_source="nope")
    with pytest.raises(ValueError, match="unique"):
        OnvifCameraState(profiles=default_profiles("a", "b") * 2)


# --- WS-UsernameToken ------------------------------------------------------------------

_WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
_WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
_PROFILE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"


def _security(
    user: str, password: str, *, nonce: bytes, created: str, digest: bool = True
) -> bytes:
    if digest:
        value, kind = password_digest(nonce, created, password), "PasswordDigest"
    else:
        value, kind = password, "PasswordText"
    return (
        '<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope">'
        f'<env:Header><wsse:Security xmlns:wsse="{_WSSE}" xmlns:wsu="{_WSU}">'
        f"<wsse:UsernameToken><wsse:Username>{user}</wsse:Username>"
        f'<wsse:Password Type="{_PROFILE}#{kind}">{value}</wsse:Password>'
        f"<wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce>"
        f"<wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security>"
        "</env:Header><env:Body>"
        '<tds:GetDeviceInformation xmlns:tds="http://www.onvif.org/ver10/device/wsdl"/>'
        "</env:Body></env:Envelope>"
    ).encode()


def _verify(verifier: UsernameTokenVerifier, data: bytes, now: dt.datetime = NOW) -> None:
    verifier.verify(parse_request(data, max_bytes=65536).security, now=now)


def _assert_refused(verifier: UsernameTokenVerifier, data: bytes, now: dt.datetime = NOW) -> None:
    with pytest.raises(SoapFault) as caught:
        _verify(verifier, data, now)
    assert caught.value.subcode == "ter:NotAuthorized" or caught.value.subcode.endswith("Requests")


def test_digest_accepted_once_and_replay_refused() -> None:
    verifier = UsernameTokenVerifier(username="admin", password="s3cret", clock_skew=60)
    good = _security("admin", "s3cret", nonce=b"0123456789abcdef", created="2026-01-02T03:04:00Z")
    _verify(verifier, good)
    _assert_refused(verifier, good)  # replay
    other = _security("admin", "s3cret", nonce=b"fedcba9876543210", created="2026-01-02T03:04:00Z")
    _verify(verifier, other)


@pytest.mark.parametrize(
    ("user", "password", "created", "nonce"),
    [
        ("admin", "wrong", "2026-01-02T03:04:00Z", b"n" * 16),
        ("root", "s3cret", "2026-01-02T03:04:00Z", b"n" * 16),
        ("admin", "s3cret", "2026-01-02T02:00:00Z", b"n" * 16),  # outside skew
        ("admin", "s3cret", "yesterday", b"n" * 16),
        ("admin", "s3cret", "2026-01-02T03:04:00Z", b"short"),
        ("admin", "s3cret", "2026-01-02T03:04:00Z", b"x" * 100),
    ],
)
def test_bad_tokens_are_not_authorized(
    user: str, password: str, created: str, nonce: bytes
) -> None:
    verifier = UsernameTokenVerifier(username="admin", password="s3cret", clock_skew=60)
    _assert_refused(verifier, _security(user, password, nonce=nonce, created=created))


def test_missing_header_and_password_text() -> None:
    verifier = UsernameTokenVerifier(username="admin", password="pw")
    with pytest.raises(SoapFault, match="authentication required"):
        verifier.verify(None, now=NOW)
    text = _security("admin", "pw", nonce=b"n" * 16, created="2026-01-02T03:04:00Z", digest=False)
    _assert_refused(verifier, text)
    permissive = UsernameTokenVerifier(username="admin", password="pw", allow_password_text=True)
    _verify(permissive, text)


def test_replay_cache_is_bounded_and_fails_closed() -> None:
    verifier = UsernameTokenVerifier(username="a", password="p", clock_skew=60, nonce_cache_size=2)
    for i in range(2):
        _verify(
            verifier, _security("a", "p", nonce=bytes([i]) * 16, created="2026-01-02T03:04:00Z")
        )
    third = _security("a", "p", nonce=b"\x09" * 16, created="2026-01-02T03:04:00Z")
    _assert_refused(verifier, third)
    # Once the earlier nonces left the window they are forgotten and room frees up.
    later = NOW + dt.timedelta(seconds=120)
    _verify(
        verifier, _security("a", "p", nonce=b"\x09" * 16, created="2026-01-02T03:06:05Z"), later
    )


# --- SOAP parsing ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   ",
        b"not xml",
        b"<a/>",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>',
        b'<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"/>',
        b'<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body/>'
        b"</env:Envelope>",
        b'<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body><a/><b/>'
        b"</env:Body></env:Envelope>",
        b"<" * 70000,
    ],
)
def test_garbage_is_a_sender_fault(data: bytes) -> None:
    with pytest.raises(SoapFault) as caught:
        parse_request(data, max_bytes=65536)
    assert caught.value.http_status == 400


@given(st.binary(max_size=512))
def test_any_bytes_parse_or_fault(data: bytes) -> None:
    with contextlib.suppress(SoapFault):
        parse_request(data, max_bytes=65536)


def test_soap11_envelope_is_accepted() -> None:
    request = parse_request(
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
        b'<GetProfiles xmlns="http://www.onvif.org/ver10/media/wsdl"/></s:Body></s:Envelope>',
        max_bytes=4096,
    )
    assert request.operation.localname == "GetProfiles"
    assert request.security is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("PT60S", 60), ("PT1M", 60), ("PT1H2M3.5S", 3723.5), ("P1DT1S", 86401), ("PT0S", 0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["P", "PT", "60", "P1Y", "PT-1S", "PT1S2M", "P1DT"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(SoapFault):
        parse_duration(text)


def test_termination_absolute_or_relative() -> None:
    assert parse_termination("PT30S", now=NOW) == 30
    assert parse_termination("2026-01-02T03:05:05Z", now=NOW) == 60
    assert parse_termination("2026-01-02T03:05:05", now=NOW) == 60
    with pytest.raises(SoapFault):
        parse_termination("soon", now=NOW)
