from __future__ import annotations

import contextlib
import os

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nvrshare.protocol import codec
from nvrshare.protocol import handshake as h
from nvrshare.protocol import messages as m
from nvrshare.protocol.errors import LocalProtocolError, RemoteProtocolError, SignatureError
from nvrshare.protocol.permissions import Permission, TimeWindow
from nvrshare.protocol.reasons import CloseReason, RefusalReason
from nvrshare.protocol.signing import (
    CONTEXT_GRANT_SET,
    CONTEXT_REGISTRATION,
    KeyRing,
    SigningKey,
    public_key_bytes,
)
from nvrshare.protocol.wire import WireLimits

from . import strategies

SID = bytes(range(16))
REQUEST = m.SessionRequest(device_serial="DS-1", channel=2, kind=m.SessionKind.LIVE_MAIN)
PLAYBACK = m.SessionRequest(
    device_serial="DS-1",
    channel=1,
    kind=m.SessionKind.PLAYBACK,
    playback_window=TimeWindow(start=100, end=200),
)


def registration(key: SigningKey, serial: str = "DS-1") -> m.DeviceRegistration:
    return m.DeviceRegistration(
        serial=serial,
        domain="front-door",
        model="DS-7608NI-K2",
        firmware_version="V4.30.085",
        channels=(
            m.ChannelInfo(number=1, name="Gate", online=True, capabilities=Permission.LIVE_VIEW),
            m.ChannelInfo(number=2, name="", online=False, capabilities=Permission.NONE),
        ),
        ip="192.168.1.64",
        port=8000,
        public_key=public_key_bytes(key.public_key),
        timestamp=1_700_000_000,
        nonce=os.urandom(16),
    )


GRANT_SET = m.GrantSet(
    device_serial="DS-1",
    version=7,
    share_epoch=2,
    issued_at=1_700_000_000,
    service_enabled=True,
    grants=(
        m.AccountGrant(account_id="alice", channels={1: Permission.LIVE_VIEW | Permission.PTZ}),
        m.AccountGrant(
            account_id="installer",
            channels={1: Permission.PLAYBACK, 2: Permission.LIVE_VIEW},
            valid_from=1_700_000_000,
            valid_until=1_800_000_000,
            playback_window=TimeWindow(start=0, end=10),
        ),
    ),
    revoked_token_ids=(b"\x01" * 16,),
    revoked_accounts=("mallory",),
    relay_public_keys=(b"\x02" * 32,),
)

SAMPLES: list[codec.Message] = [
    registration(SigningKey.generate()),
    m.RegistrationResult(serial="DS-1", accepted=True, reason="", grant_set_version=7),
    m.DeviceState(serial="DS-1", online=False, timestamp=5, ip="::1", port=80),
    m.Heartbeat(serial="DS-1", timestamp=5),
    GRANT_SET,
    REQUEST,
    m.SessionOffer(
        session_id=SID,
        token=b"t" * 100,
        request=PLAYBACK,
        relay_host="relay.example.com",
        relay_port=7443,
        session_secret=b"s" * 32,
        expires_at=99,
    ),
    m.SessionAccept(session_id=SID),
    m.SessionRefuse(session_id=SID, reason=RefusalReason.DEVICE_BUSY),
    m.SessionClose(session_id=SID, reason=CloseReason.NORMAL),
    m.PtzCommand(
        request_id=SID, token=b"t", channel=1, action=m.PtzAction.CONTINUOUS_MOVE, pan=-0.5
    ),
    m.PtzCommand(request_id=SID, token=b"t", channel=1, action=m.PtzAction.GOTO_PRESET, preset=3),
    m.PtzResult(request_id=SID, ok=False, reason="permission_denied"),
    m.AlarmEvent(device_serial="DS-1", channel=3, event_type="VMD", active=True, timestamp=9),
    m.ErrorMessage(code="bad_request", message="what?"),
    h.ClientHello(token=b"tok", request=REQUEST, client_nonce=b"n" * 16),
    h.AgentHello(session_id=SID, proof=b"p" * 32),
    h.HelloAccepted(session_id=SID),
    h.HelloRefused(reason=RefusalReason.TOKEN_EXPIRED, message="renew it"),
]


def wire(message: codec.Message) -> list[object]:
    return msgpack.unpackb(codec.encode(message), raw=False, strict_map_key=False)


def pack(value: object) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def test_samples_cover_every_message_type() -> None:
    assert {type(s) for s in SAMPLES} == codec.CONTROL_MESSAGES | codec.HANDSHAKE_MESSAGES


@pytest.mark.parametrize("message", SAMPLES, ids=lambda s: type(s).__name__)
def test_round_trip(message: codec.Message) -> None:
    encoded = codec.encode(message)
    assert codec.decode(encoded) == message
    assert wire(message)[:2] == [codec.PROTOCOL_VERSION, type(message).__name__]


@given(strategies.messages)
def test_round_trip_generated(message: codec.Message) -> None:
    assert codec.decode(codec.encode(message)) == message


@given(st.binary(max_size=512))
def test_any_bytes_decode_or_raise_remote_error(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        codec.decode(data)


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=10) | st.integers(0, 300), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(st.sampled_from(SAMPLES), st.data())
def test_mutated_fields_decode_or_raise_remote_error(
    message: codec.Message, data: st.DataObject
) -> None:
    raw = wire(message)
    fields = raw[2]
    assert isinstance(fields, dict)
    name = data.draw(st.sampled_from(sorted(fields)))
    fields[name] = data.draw(msgpack_values)
    with contextlib.suppress(RemoteProtocolError):
        codec.decode(pack(raw))


def _paths(value: object, path: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    found = [path]
    if isinstance(value, dict | list):
        children = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in children:
            found += _paths(child, (*path, key))
    return found


@given(st.sampled_from(SAMPLES), st.data())
def test_mutations_anywhere_decode_or_raise_remote_error(
    message: codec.Message, data: st.DataObject
) -> None:
    raw: object = wire(message)
    path = data.draw(st.sampled_from(_paths(raw)[1:]))
    parent = raw
    for key in path[:-1]:
        parent = parent[key]  # type: ignore[index]
    parent[path[-1]] = data.draw(msgpack_values)  # type: ignore[index]
    with contextlib.suppress(RemoteProtocolError):
        decoded = codec.decode(pack(raw))
        assert codec.decode(codec.encode(decoded)) == decoded


def test_encode_refuses_non_messages() -> None:
    with pytest.raises(LocalProtocolError):
        codec.encode(m.ChannelInfo(number=1, name="", online=True, capabilities=Permission.NONE))  # type: ignore[arg-type]


def _mutated(message: codec.Message, **changes: object) -> bytes:
    raw = wire(message)
    fields = raw[2]
    assert isinstance(fields, dict)
    for key, value in changes.items():
        if value is KeyError:
            del fields[key]
        else:
            fields[key] = value
    return pack(raw)


HEARTBEAT = m.Heartbeat(serial="DS-1", timestamp=5)


@pytest.mark.parametrize(
    "data",
    [
        pack({"not": "a list"}),
        pack([1, "Heartbeat"]),
        pack([2, "Heartbeat", {"serial": "DS-1", "timestamp": 5}]),
        pack([True, "Heartbeat", {"serial": "DS-1", "timestamp": 5}]),
        pack([1, "Nope", {}]),
        pack([1, 7, {}]),
        pack([1, "ChannelInfo", {}]),
        pack([1, "Heartbeat", ["DS-1", 5]]),
        _mutated(HEARTBEAT, timestamp=True),
        _mutated(HEARTBEAT, timestamp=5.0),
        _mutated(HEARTBEAT, timestamp=-1),
        _mutated(HEARTBEAT, timestamp=KeyError),
        _mutated(HEARTBEAT, extra=1),
        _mutated(HEARTBEAT, serial="a/b"),
        _mutated(HEARTBEAT, serial=b"DS-1"),
        _mutated(SAMPLES[10], pan=1),
        _mutated(SAMPLES[10], pan=1.5),
        _mutated(SAMPLES[10], pan=float("nan")),
        _mutated(SAMPLES[10], action="spin"),
        _mutated(SAMPLES[10], preset=4),
        _mutated(SAMPLES[0], channels={"number": 1}),
        _mutated(SAMPLES[0], channels=[[1, "x", True, 1]]),
        _mutated(SAMPLES[0], nonce=b"short"),
        _mutated(SAMPLES[0], ip="not-an-ip"),
        _mutated(SAMPLES[1], accepted=1),
        _mutated(SAMPLES[5], channel=0),
        _mutated(SAMPLES[5], channel=257),
        _mutated(SAMPLES[5], kind="playback"),  # playback without a window
        _mutated(SAMPLES[5], playback_window={"start": 2, "end": 1}),
        _mutated(GRANT_SET, grants=[{"account_id": "a", "channels": {1: 64}}]),
        _mutated(
            GRANT_SET,
            grants=[
                {
                    "account_id": "a",
                    "channels": {1: 64},
                    "valid_from": None,
                    "valid_until": None,
                    "playback_window": None,
                }
            ],
        ),
        _mutated(GRANT_SET, revoked_token_ids=[b"short"]),
        _mutated(
            SAMPLES[0], channels=[{"number": 1, "name": "", "online": True, "capabilities": 32}]
        ),
        _mutated(SAMPLES[8], reason="nope"),
    ],
)
def test_malformed_messages_are_refused(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        codec.decode(data)


def test_decode_respects_accept_and_limits() -> None:
    encoded = codec.encode(GRANT_SET)
    with pytest.raises(RemoteProtocolError, match="unexpected message type"):
        codec.decode(encoded, accept=codec.HANDSHAKE_MESSAGES)
    with pytest.raises(RemoteProtocolError, match="exceeds"):
        codec.decode(encoded, limits=WireLimits(max_size=len(encoded) - 1))
    with pytest.raises(RemoteProtocolError, match="nesting"):
        codec.decode(encoded, limits=WireLimits(max_depth=3))


# --- signed envelopes --------------------------------------------------------------


def test_signed_round_trip_with_ring_and_explicit_key() -> None:
    relay, other = SigningKey.generate(), SigningKey.generate()
    data = codec.encode_signed(GRANT_SET, relay, CONTEXT_GRANT_SET)
    ring = KeyRing([other.public_key, relay.public_key])
    assert codec.decode_signed(data, ring, context=CONTEXT_GRANT_SET) == (GRANT_SET, relay.key_id)
    assert codec.decode_signed(data, relay.public_key, context=CONTEXT_GRANT_SET)[0] == GRANT_SET
    envelope = codec.open_envelope(data)
    assert envelope.key_id == relay.key_id
    assert codec.decode(envelope.body) == GRANT_SET


def test_signed_envelope_rejections() -> None:
    relay, other = SigningKey.generate(), SigningKey.generate()
    data = codec.encode_signed(GRANT_SET, relay, CONTEXT_GRANT_SET)
    with pytest.raises(SignatureError) as unknown:
        codec.decode_signed(data, other.public_key, context=CONTEXT_GRANT_SET)
    assert unknown.value.unknown_key
    with pytest.raises(SignatureError) as wrong_context:
        codec.decode_signed(data, relay.public_key, context=CONTEXT_REGISTRATION)
    assert not wrong_context.value.unknown_key
    raw = msgpack.unpackb(data, raw=False)
    raw[2]["body"] = codec.encode(HEARTBEAT)
    with pytest.raises(SignatureError):
        codec.decode_signed(pack(raw), relay.public_key, context=CONTEXT_GRANT_SET)
    with pytest.raises(RemoteProtocolError, match="unexpected message type"):
        codec.decode_signed(
            data, relay.public_key, context=CONTEXT_GRANT_SET, accept=(m.Heartbeat,)
        )


def _envelope(version: object = 1, name: object = "signed", **fields: object) -> bytes:
    body: dict[str, object] = {"kid": "0" * 16, "body": b"x", "sig": b"s" * 64}
    body.update(fields)
    return pack([version, name, body])


@pytest.mark.parametrize(
    "data",
    [
        pack("signed"),
        pack([1, "signed"]),
        _envelope(name="Heartbeat"),
        _envelope(version=2),
        _envelope(version=True),
        _envelope(extra=1),
        pack([1, "signed", ["kid", "body", "sig"]]),
        _envelope(kid="short"),
        _envelope(kid=b"0" * 16),
        _envelope(body="text"),
        _envelope(sig=b"s" * 63),
        _envelope(sig="s" * 64),
    ],
)
def test_malformed_envelopes(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        codec.open_envelope(data)


@given(st.binary(max_size=300))
def test_any_bytes_decode_signed_or_raise_remote_error(data: bytes) -> None:
    key = SigningKey.generate()
    for call in (
        lambda: codec.decode_signed(data, key.public_key, context=CONTEXT_GRANT_SET),
        lambda: codec.decode_registration(data),
        lambda: codec.decode_registration(data, pinned_key=key.public_key),
    ):
        with contextlib.suppress(RemoteProtocolError):
            call()


# --- registrations -----------------------------------------------------------------


def test_first_registration_is_verified_with_the_key_it_carries() -> None:
    device = SigningKey.generate()
    message = registration(device)
    data = codec.encode_signed(message, device, CONTEXT_REGISTRATION)
    assert codec.decode_registration(data) == (message, device.key_id)


def test_first_registration_signed_by_another_key_is_refused() -> None:
    device, attacker = SigningKey.generate(), SigningKey.generate()
    data = codec.encode_signed(registration(device), attacker, CONTEXT_REGISTRATION)
    with pytest.raises(SignatureError):
        codec.decode_registration(data)


def test_registration_against_pinned_key_and_rotation() -> None:
    old, new, attacker = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    # A device rotating its key signs the registration carrying the new key with the old one.
    rotating = registration(new)
    data = codec.encode_signed(rotating, old, CONTEXT_REGISTRATION)
    assert codec.decode_registration(data, pinned_key=old.public_key) == (rotating, old.key_id)
    # Someone else claiming the serial with their own (self-consistent) key is refused.
    hijack = codec.encode_signed(registration(attacker), attacker, CONTEXT_REGISTRATION)
    with pytest.raises(SignatureError):
        codec.decode_registration(hijack, pinned_key=old.public_key)


def test_registration_envelope_must_hold_a_registration() -> None:
    key = SigningKey.generate()
    data = codec.encode_signed(HEARTBEAT, key, CONTEXT_REGISTRATION)
    with pytest.raises(RemoteProtocolError):
        codec.decode_registration(data)
    with pytest.raises(RemoteProtocolError):
        codec.decode_registration(data, pinned_key=key.public_key)
    grant_set = codec.encode_signed(GRANT_SET, key, CONTEXT_GRANT_SET)
    with pytest.raises(RemoteProtocolError):  # right key, wrong purpose
        codec.decode_registration(grant_set, pinned_key=key.public_key)
