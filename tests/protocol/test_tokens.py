from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nvrshare.protocol.errors import (
    LocalProtocolError,
    RemoteProtocolError,
    TokenError,
    TokenRejection,
)
from nvrshare.protocol.permissions import (
    MAX_TIMESTAMP,
    DenyReason,
    Permission,
    TimeWindow,
    check,
    decode_channel_matrix,
)
from nvrshare.protocol.signing import CONTEXT_GRANT_SET, CONTEXT_SHARE_TOKEN, KeyRing, SigningKey
from nvrshare.protocol.tokens import (
    _REQUIRED,
    MAX_TOKEN_SIZE,
    Audience,
    TokenIssuer,
    TokenVerifier,
    _parse_claims,
    token_from_text,
    token_to_text,
)
from nvrshare.protocol.validation import is_valid_serial
from nvrshare.protocol.wire import WireLimits, unpack

NOW = 1_700_000_000
KEY = SigningKey.generate()
ISSUER = TokenIssuer(KEY, "relay-1")


def issue(issuer: TokenIssuer = ISSUER, **overrides: object) -> bytes:
    claims: dict[str, object] = {
        "account_id": "alice",
        "device_serial": "DS-A",
        "channels": {1: Permission.LIVE_VIEW},
        "not_before": NOW - 10,
        "expires_at": NOW + 300,
        "share_epoch": 3,
    }
    claims.update(overrides)
    return issuer.issue(**claims)  # type: ignore[arg-type]


def verifier(*keys: SigningKey, audience: Audience = Audience.RELAY, **kw: int) -> TokenVerifier:
    return TokenVerifier(KeyRing(k.public_key for k in (keys or (KEY,))), audience, **kw)


def rejection(call: object) -> TokenRejection:
    assert callable(call)
    with pytest.raises(TokenError) as info:
        call()
    return info.value.reason


def test_issue_and_verify_round_trip() -> None:
    window = TimeWindow(start=100, end=200)
    token = issue(playback_window=window, token_id=b"i" * 16)
    claims = verifier().verify(token, now=NOW, device_serial="DS-A")
    assert claims.token_id == b"i" * 16
    assert claims.key_id == KEY.key_id
    assert claims.issuer == "relay-1"
    assert claims.audience == frozenset(Audience)
    assert (claims.account_id, claims.device_serial, claims.share_epoch) == ("alice", "DS-A", 3)
    assert claims.channels == {1: Permission.LIVE_VIEW}
    assert claims.playback_window == window
    grant = claims.grant()
    assert (grant.valid_from, grant.valid_until) == (NOW - 10, NOW + 300)
    assert token_from_text(token_to_text(token)) == token


def test_each_rejection_reason() -> None:
    token = issue()
    assert rejection(lambda: verifier().verify(b"\x00junk", now=NOW)) is TokenRejection.MALFORMED
    other = SigningKey.generate()
    assert rejection(lambda: verifier(other).verify(token, now=NOW)) is TokenRejection.UNKNOWN_KEY
    outer = msgpack.unpackb(token)
    outer[2] = bytes([outer[2][0] ^ 1]) + outer[2][1:]
    forged = msgpack.packb(outer, use_bin_type=True)
    assert rejection(lambda: verifier().verify(forged, now=NOW)) is TokenRejection.BAD_SIGNATURE
    assert rejection(lambda: verifier().verify(token, now=NOW + 300)) is TokenRejection.EXPIRED
    assert rejection(lambda: verifier().verify(token, now=NOW - 11)) is TokenRejection.NOT_YET_VALID
    relay_only = issue(audience=frozenset({Audience.RELAY}))
    agent = verifier(audience=Audience.AGENT)
    assert rejection(lambda: agent.verify(relay_only, now=NOW)) is TokenRejection.WRONG_AUDIENCE
    assert (
        rejection(lambda: verifier().verify(token, now=NOW, device_serial="DS-B"))
        is TokenRejection.WRONG_DEVICE
    )


def test_a_signature_for_another_purpose_does_not_make_a_token() -> None:
    outer = msgpack.unpackb(issue())
    outer[2] = KEY.sign(CONTEXT_GRANT_SET, outer[1])
    token = msgpack.packb(outer, use_bin_type=True)
    assert rejection(lambda: verifier().verify(token, now=NOW)) is TokenRejection.BAD_SIGNATURE


def test_key_rotation() -> None:
    old, new = SigningKey.generate(), SigningKey.generate()
    old_token, new_token = issue(TokenIssuer(old, "r")), issue(TokenIssuer(new, "r"))
    both = verifier(old, new)
    assert both.verify(old_token, now=NOW).key_id == old.key_id
    assert both.verify(new_token, now=NOW).key_id == new.key_id
    # Removing the old key takes effect at once, cache or not.
    both.key_ring = KeyRing([new.public_key])
    assert list(both.key_ring) == [new.key_id]
    assert rejection(lambda: both.verify(old_token, now=NOW)) is TokenRejection.UNKNOWN_KEY
    assert both.verify(new_token, now=NOW).key_id == new.key_id
    assert rejection(lambda: verifier(new).verify(old_token, now=NOW)) is TokenRejection.UNKNOWN_KEY


def test_a_narrow_token_grants_nothing_else() -> None:
    claims = verifier().verify(issue(), now=NOW, device_serial="DS-A")
    grant = claims.grant()
    assert claims.grant() is grant  # built once per verified token
    assert check(grant, 1, Permission.LIVE_VIEW, NOW)
    assert check(grant, 2, Permission.LIVE_VIEW, NOW).reason is DenyReason.CHANNEL_NOT_GRANTED  # type: ignore[union-attr]
    for permission in (Permission.PLAYBACK, Permission.PTZ, Permission.ALARM):
        denied = check(grant, 1, permission, NOW)
        assert denied.reason is DenyReason.PERMISSION_NOT_GRANTED  # type: ignore[union-attr]
    assert check(grant, 1, Permission.LIVE_VIEW, NOW + 300).reason is DenyReason.EXPIRED  # type: ignore[union-attr]
    other_device = lambda: verifier().verify(issue(), now=NOW, device_serial="DS-B")  # noqa: E731
    assert rejection(other_device) is TokenRejection.WRONG_DEVICE


def test_the_cache_rechecks_time_and_is_bounded() -> None:
    cached = verifier(cache_size=1)
    first, second = issue(), issue()
    assert cached.verify(first, now=NOW)
    assert cached.verify(first, now=NOW)  # a cache hit
    assert rejection(lambda: cached.verify(first, now=NOW + 300)) is TokenRejection.EXPIRED
    assert rejection(lambda: cached.verify(first, now=NOW - 11)) is TokenRejection.NOT_YET_VALID
    assert cached.verify(second, now=NOW)  # evicts the first
    assert cached.verify(first, now=NOW)
    uncached = verifier(cache_size=0)
    assert uncached.verify(first, now=NOW)
    assert uncached.verify(first, now=NOW)
    with pytest.raises(LocalProtocolError):
        verifier(cache_size=-1)


@pytest.mark.parametrize(
    "overrides",
    [
        {"expires_at": NOW - 10},
        {"channels": {}},
        {"channels": {1: Permission.NONE}},
        {"channels": {0: Permission.LIVE_VIEW}},
        {"device_serial": "a/b"},
        {"audience": frozenset()},
        {"account_id": ""},
        {"account_id": "x" * 129},
    ],
)
def test_issuing_invalid_tokens_is_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(LocalProtocolError):
        issue(**overrides)
    with pytest.raises(LocalProtocolError):
        issue(TokenIssuer(KEY, ""))


# --- malformed tokens, each parse rule ----------------------------------------------------


def good_claims() -> dict[str, object]:
    return msgpack.unpackb(msgpack.unpackb(issue())[1], strict_map_key=False)


def signed(claims: object) -> bytes:
    body = msgpack.packb(claims, use_bin_type=True)
    return msgpack.packb([1, body, KEY.sign(CONTEXT_SHARE_TOKEN, body)], use_bin_type=True)


def with_claim(**changes: object) -> bytes:
    claims = good_claims()
    for key, value in changes.items():
        if value is KeyError:
            del claims[key]
        else:
            claims[key] = value
    return signed(claims)


MALFORMED = [
    msgpack.packb([1, b"x"]),
    msgpack.packb([2, b"x", b"y"]),
    msgpack.packb([True, b"x", b"y"]),
    msgpack.packb([1, "x", b"y"]),
    msgpack.packb([1, b"x", "y"]),
    msgpack.packb({"a": 1}),
    b"\xc1",
    msgpack.packb([1, b"\xc1", b"s" * 64], use_bin_type=True),
    signed([1, 2]),
    signed({1: 2}),
    with_claim(jti=KeyError),
    with_claim(extra=1),
    with_claim(jti=b"short"),
    with_claim(aud="relay"),
    with_claim(aud=[]),
    with_claim(aud=["nobody"]),
    with_claim(aud=[["relay"]]),
    with_claim(ch={1: 64}),
    with_claim(ch={}),
    with_claim(pbw=[5]),
    with_claim(pbw=[5, 5]),
    with_claim(pbw=[-1, 5]),
    with_claim(pbw=[0, 2**40]),
    with_claim(pbw="5-6"),
    with_claim(nbf=-1),
    with_claim(exp=1.5),
    with_claim(exp=NOW - 20),
    with_claim(dev=5),
    with_claim(dev="a" * 200),
    with_claim(dev="a/b"),
    with_claim(kid=""),
    with_claim(iss=b"relay"),
    with_claim(sub="x" * 129),
    # Nesting where a claim holds a scalar: the exact shape is what bounds depth.
    msgpack.packb([1, [[[b"x"]]], b"y"]),
    msgpack.packb([[1], b"x", b"y"]),
    msgpack.packb([1, b"x", b"y", b"z"]),
    with_claim(jti=[b"i" * 16]),
    with_claim(kid=["k"]),
    with_claim(nbf=[1]),
    with_claim(aud=[{"relay": 1}]),
    with_claim(aud=["relay", [["agent"]]]),
    with_claim(aud=[b"relay"]),
    with_claim(aud=[True]),
    with_claim(ch={1: [1]}),
    with_claim(ch={1: {1: {1: 1}}}),
    with_claim(pbw=[[5], 6]),
    b"x" * (MAX_TOKEN_SIZE + 1),
    "not bytes",
]


@pytest.mark.parametrize("token", MALFORMED)
def test_malformed_tokens(token: bytes) -> None:
    assert rejection(lambda: verifier().verify(token, now=NOW)) is TokenRejection.MALFORMED


@pytest.mark.parametrize("text", ["a+b", "a b", "abc=", "é", "a", "x" * 6000, None])
def test_malformed_token_text(text: str) -> None:
    assert rejection(lambda: token_from_text(text)) is TokenRejection.MALFORMED


@given(st.binary(max_size=400))
def test_any_bytes_verify_or_raise_token_error(token: bytes) -> None:
    with contextlib.suppress(TokenError):
        verifier(cache_size=0).verify(token, now=NOW)


@given(st.text(max_size=200))
def test_any_text_decodes_or_raises_token_error(text: str) -> None:
    with contextlib.suppress(TokenError):
        token_from_text(text)


@given(st.sampled_from([issue(), issue(playback_window=TimeWindow(start=1, end=9))]), st.data())
def test_flipping_any_byte_never_yields_a_different_valid_token(
    token: bytes, data: st.DataObject
) -> None:
    position = data.draw(st.integers(0, len(token) - 1))
    flipped = token[:position] + bytes([token[position] ^ 0xFF]) + token[position + 1 :]
    with contextlib.suppress(TokenError):
        claims = verifier(cache_size=0).verify(flipped, now=NOW)
        # msgpack may re-encode equal values; if it verifies, it must say the same.
        assert claims == verifier(cache_size=0).verify(token, now=NOW)


# --- the claim parser against a plain reference -------------------------------------------
#
# `_parse_claims` decodes without a depth walk and checks types in a fast order; this
# reference states the rules the obvious way (generic depth-checked decoding, isinstance,
# enum constructors).  Both must accept exactly the same claim maps, with equal results.

_REFERENCE_LIMITS = WireLimits(max_size=MAX_TOKEN_SIZE, max_string=256, max_items=300, max_depth=3)


def reference_parse(encoded: bytes) -> tuple[object, ...] | None:
    try:
        raw = unpack(encoded, _REFERENCE_LIMITS)
    except RemoteProtocolError:
        return None
    allowed = {"jti", "kid", "iss", "aud", "sub", "dev", "ch", "nbf", "exp", "ep", "pbw"}
    if not isinstance(raw, dict) or not allowed - {"pbw"} <= set(raw) <= allowed:
        return None
    if not isinstance(raw["jti"], bytes) or len(raw["jti"]) != 16:
        return None
    for name in ("kid", "iss", "sub", "dev"):
        if not isinstance(raw[name], str) or not 1 <= len(raw[name]) <= 128:
            return None
    for name in ("nbf", "exp", "ep"):
        if type(raw[name]) is not int or raw[name] < 0:
            return None
    if not isinstance(raw["aud"], list) or not raw["aud"]:
        return None
    try:
        audience = frozenset(Audience(a) for a in raw["aud"])
    except (ValueError, TypeError):
        return None
    try:
        channels = decode_channel_matrix(raw["ch"])
    except RemoteProtocolError:
        return None
    window = None
    if "pbw" in raw:
        pbw = raw["pbw"]
        if not isinstance(pbw, list) or len(pbw) != 2:
            return None
        if not all(type(t) is int and 0 <= t <= MAX_TIMESTAMP for t in pbw) or pbw[1] <= pbw[0]:
            return None
        window = TimeWindow(start=pbw[0], end=pbw[1])
    if not channels or raw["exp"] <= raw["nbf"] or not is_valid_serial(raw["dev"]):
        return None
    return (
        raw["jti"], raw["kid"], raw["iss"], audience, raw["sub"], raw["dev"], channels,
        raw["nbf"], raw["exp"], raw["ep"], window,
    )  # fmt: skip


def parsed(encoded: bytes) -> tuple[object, ...] | None:
    try:
        claims = _parse_claims(encoded)
    except TokenError as exc:
        reason = exc.reason
    else:
        reason = None
    if reason is not None:
        assert reason is TokenRejection.MALFORMED
        return None
    assert all(type(a) is Audience for a in claims.audience)
    assert all(type(p) is Permission for p in claims.channels.values())
    return (
        claims.token_id, claims.key_id, claims.issuer, claims.audience, claims.account_id,
        claims.device_serial, claims.channels, claims.not_before, claims.expires_at,
        claims.share_epoch, claims.playback_window,
    )  # fmt: skip


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=4)
    | st.binary(max_size=17)
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.integers(-2, 300) | st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)
# Near-misses of every claim's shape, so the examples probe each rule's edges.
_near_misses = st.sampled_from(
    [
        ["relay"], ["agent", "relay"], ["relay", "relay"], [["relay"]], [{"relay": 1}],
        [b"relay"], [True], ["RELAY"], [], "relay",
        {1: 3}, {1: 31}, {1: 32}, {0: 1}, {256: 1}, {257: 1}, {1: [3]}, {1: {1: 1}},
        {True: 1}, {1: True}, {"1": 1},
        [1, 2], [2, 1], [0, 1], [[1], 2], [1, [2]], [1, 2, 3], [1.0, 2], [1, MAX_TIMESTAMP + 1],
        "DS-A", "", "x" * 128, "x" * 129, "a/b", b"i" * 16, b"i" * 15, [b"i" * 16], 0, -1, 2**40,
    ]
)  # fmt: skip


@st.composite
def claim_maps(draw: st.DrawFn) -> dict[object, object]:
    claims: dict[object, object] = good_claims()
    if draw(st.booleans()):
        claims["pbw"] = [5, 9]
    for name in draw(st.lists(st.sampled_from(sorted(_REQUIRED | {"pbw"})), max_size=4)):
        action = draw(st.sampled_from(["near", "near", "any", "drop"]))
        if action == "drop":
            claims.pop(name, None)
        else:
            claims[name] = draw(_near_misses if action == "near" else _values)
    if draw(st.integers(0, 9)) == 0:
        claims[draw(st.integers(-2, 2) | st.text(max_size=4))] = draw(_values)
    return claims


@given(claim_maps())
def test_the_claim_parser_agrees_with_the_reference(claims: dict[object, object]) -> None:
    encoded = msgpack.packb(claims, use_bin_type=True)
    assert parsed(encoded) == reference_parse(encoded)


@given(_values)
def test_any_decodable_claims_agree_with_the_reference(value: object) -> None:
    encoded = msgpack.packb(value, use_bin_type=True)
    assert parsed(encoded) is reference_parse(encoded) is None


@given(st.binary(max_size=300))
def test_any_claim_bytes_agree_with_the_reference(encoded: bytes) -> None:
    assert parsed(encoded) == reference_parse(encoded)
