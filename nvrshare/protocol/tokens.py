"""Share tokens: compact msgpack claims signed with Ed25519.

Wire form (bytes): msgpack ``[1, claims, signature]`` where ``claims`` is the
msgpack-encoded claim map and ``signature`` is Ed25519 over it (context
``CONTEXT_SHARE_TOKEN``) by the key named in the claims' ``kid``.  There is no
algorithm field: the format version fixes the algorithm, so a token cannot
choose how it is checked.  Text form (HTTP, JSON, CLI): base64url, no padding.

Verification order is fixed and each failure has one `TokenRejection`:
malformed → unknown key → bad signature → wrong audience → wrong device →
not yet valid → expired.  Nothing is trusted before the signature verifies,
except the key id needed to find the key.
"""

from __future__ import annotations

import base64
import binascii
import enum
import itertools
import re
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

from nvrshare.protocol.errors import (
    LocalProtocolError,
    RemoteProtocolError,
    SignatureError,
    TokenError,
    TokenRejection,
)
from nvrshare.protocol.permissions import (
    MAX_TIMESTAMP,
    Grant,
    Permission,
    TimeWindow,
    decode_channel_matrix,
    encode_channel_matrix,
)
from nvrshare.protocol.signing import CONTEXT_SHARE_TOKEN, KeyRing, SigningKey
from nvrshare.protocol.validation import is_valid_serial
from nvrshare.protocol.wire import WireLimits, pack, unpack_fixed_shape

__all__ = [
    "MAX_TOKEN_SIZE",
    "Audience",
    "ShareClaims",
    "TokenIssuer",
    "TokenVerifier",
    "token_from_text",
    "token_to_text",
]

TOKEN_FORMAT = 1
MAX_TOKEN_SIZE = 4096
MAX_ID_LENGTH = 128
TOKEN_ID_BYTES = 16
# Both layers are parsed into an exact shape (see `_split`, `_parse_claims`), and
# that bounds their depth without a walk: the outer list holds scalars, the claim
# map scalars and lists or maps of scalars; nothing else gets through.  max_depth
# states that depth; `unpack_fixed_shape` does not apply it.
_OUTER_LIMITS = WireLimits(max_size=MAX_TOKEN_SIZE, max_string=0, max_items=3, max_depth=1)
_CLAIM_LIMITS = WireLimits(max_size=MAX_TOKEN_SIZE, max_string=256, max_items=300, max_depth=2)
_REQUIRED = frozenset({"jti", "kid", "iss", "aud", "sub", "dev", "ch", "nbf", "exp", "ep"})
_OPTIONAL = frozenset({"pbw"})
_ALLOWED = _REQUIRED | _OPTIONAL
_BOUNDED_STRINGS = ("kid", "iss", "sub", "dev")
_INTEGERS = ("nbf", "exp", "ep")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


class Audience(enum.StrEnum):
    """Who a token is meant for; the relay and the device agent each check their own."""

    RELAY = "relay"
    AGENT = "agent"


# Every non-empty audience set, keyed by its names: one lookup checks the names
# and builds the set.
_AUDIENCES = {
    frozenset(member.value for member in members): frozenset(members)
    for size in range(1, len(Audience) + 1)
    for members in itertools.combinations(Audience, size)
}


@dataclass(frozen=True, kw_only=True, slots=True)
class ShareClaims:
    """What a verified share token says."""

    token_id: bytes
    key_id: str
    issuer: str
    audience: frozenset[Audience]
    account_id: str
    device_serial: str
    channels: Mapping[int, Permission]
    not_before: int
    expires_at: int
    share_epoch: int
    playback_window: TimeWindow | None = None
    # Built once: cached claims are re-checked on every use, the grant need not be.
    _grant: Grant | None = field(default=None, init=False, repr=False, compare=False)

    def grant(self) -> Grant:
        """The token's permissions as a `Grant`, valid for the token's lifetime."""
        if self._grant is None:
            grant = Grant(
                channels=self.channels,
                valid_from=self.not_before,
                valid_until=self.expires_at,
                playback_window=self.playback_window,
            )
            object.__setattr__(self, "_grant", grant)
            return grant
        return self._grant


def token_to_text(token: bytes) -> str:
    return base64.urlsafe_b64encode(token).rstrip(b"=").decode("ascii")


def token_from_text(text: str) -> bytes:
    """Decode the text form; `TokenError(MALFORMED)` for anything not base64url."""
    if not isinstance(text, str) or len(text) > MAX_TOKEN_SIZE * 4 // 3 + 4:
        raise TokenError(TokenRejection.MALFORMED, "token text is not a bounded string")
    # The decoder alone would skip stray characters; a token has one spelling.
    if _BASE64URL.fullmatch(text) is None:
        raise TokenError(TokenRejection.MALFORMED, "token text is not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:  # a length of 4n+1 characters
        raise TokenError(TokenRejection.MALFORMED, "token text is not base64url") from exc


class TokenIssuer:
    """Signs share tokens with one key (the newest of the ring)."""

    def __init__(self, signing_key: SigningKey, issuer: str) -> None:
        self._signing_key = signing_key
        self._issuer = issuer

    def issue(
        self,
        *,
        account_id: str,
        device_serial: str,
        channels: Mapping[int, Permission],
        not_before: int,
        expires_at: int,
        share_epoch: int,
        audience: frozenset[Audience] = frozenset(Audience),
        playback_window: TimeWindow | None = None,
        token_id: bytes | None = None,
    ) -> bytes:
        """Build and sign a token; `LocalProtocolError` if the claims are invalid."""
        if expires_at <= not_before:
            raise LocalProtocolError("a token must expire after it becomes valid")
        if not channels or not all(channels.values()):
            raise LocalProtocolError("a token must grant something on each channel it names")
        if not is_valid_serial(device_serial):
            raise LocalProtocolError(f"invalid device serial {device_serial!r}")
        if not audience:
            raise LocalProtocolError("a token needs an audience")
        for name, value in (("account_id", account_id), ("issuer", self._issuer)):
            if not 0 < len(value) <= MAX_ID_LENGTH:
                raise LocalProtocolError(f"{name} must be 1..{MAX_ID_LENGTH} characters")
        Grant(channels=channels)  # validates channel numbers and flag bits
        claims: dict[str, object] = {
            "jti": token_id if token_id is not None else secrets.token_bytes(TOKEN_ID_BYTES),
            "kid": self._signing_key.key_id,
            "iss": self._issuer,
            "aud": sorted(a.value for a in audience),
            "sub": account_id,
            "dev": device_serial,
            "ch": encode_channel_matrix(channels),
            "nbf": not_before,
            "exp": expires_at,
            "ep": share_epoch,
        }
        if playback_window is not None:
            claims["pbw"] = [playback_window.start, playback_window.end]
        encoded_claims = pack(claims)
        signature = self._signing_key.sign(CONTEXT_SHARE_TOKEN, encoded_claims)
        token = pack([TOKEN_FORMAT, encoded_claims, signature])
        # Bounded ids and at most MAX_CHANNEL channels keep a token near 1 KiB.
        assert len(token) <= MAX_TOKEN_SIZE
        return token


def _malformed(detail: str) -> TokenError:
    return TokenError(TokenRejection.MALFORMED, detail)


def _split(token: bytes) -> tuple[bytes, bytes]:
    try:
        outer = unpack_fixed_shape(token, _OUTER_LIMITS)
    except RemoteProtocolError as exc:
        raise _malformed(str(exc)) from exc
    if type(outer) is not list or len(outer) != 3:
        raise _malformed("not a version-1 token")
    version, encoded_claims, signature = outer
    if (
        type(version) is not int
        or version != TOKEN_FORMAT
        or type(encoded_claims) is not bytes
        or type(signature) is not bytes
    ):
        raise _malformed("not a version-1 token")
    return encoded_claims, signature


def _parse_claims(encoded: bytes) -> ShareClaims:
    # Every value is checked for its exact type before use: that is what makes
    # the depth walk unnecessary (see `_CLAIM_LIMITS`), so keep it so.
    try:
        raw = unpack_fixed_shape(encoded, _CLAIM_LIMITS)
    except RemoteProtocolError as exc:
        raise _malformed(str(exc)) from exc
    if type(raw) is not dict:
        raise _malformed("claims must be a map with string keys")
    # One set comparison also refuses non-string keys: they are never allowed names.
    keys = frozenset(raw)
    if not keys >= _REQUIRED or not keys <= _ALLOWED:
        raise _malformed("claims are missing or have unknown fields")
    token_id = raw["jti"]
    if type(token_id) is not bytes or len(token_id) != TOKEN_ID_BYTES:
        raise _malformed("claim 'jti' must be 16 bytes")
    for name in _BOUNDED_STRINGS:
        value = raw[name]
        if type(value) is not str or not 0 < len(value) <= MAX_ID_LENGTH:
            raise _malformed(f"claim {name!r} must be a non-empty string")
    for name in _INTEGERS:
        value = raw[name]
        if type(value) is not int or value < 0:
            raise _malformed(f"claim {name!r} must be a non-negative integer")
    audience_raw = raw["aud"]
    if type(audience_raw) is not list:
        raise _malformed("claim 'aud' must be a non-empty list")
    try:
        audience = _AUDIENCES[frozenset(audience_raw)]
    except (KeyError, TypeError):  # TypeError: a list or map among the names
        raise _malformed("claim 'aud' must name known audiences") from None
    try:
        channels = decode_channel_matrix(raw["ch"])
    except RemoteProtocolError as exc:
        raise _malformed(str(exc)) from exc
    if not channels:
        raise _malformed("claim 'ch' grants nothing")
    playback_window = None
    if "pbw" in raw:
        window = raw["pbw"]
        if (
            type(window) is not list
            or len(window) != 2
            or not all(type(t) is int and 0 <= t <= MAX_TIMESTAMP for t in window)
            or window[1] <= window[0]
        ):
            raise _malformed("claim 'pbw' must be [start, end] with end > start")
        playback_window = TimeWindow(start=window[0], end=window[1])
    not_before, expires_at = raw["nbf"], raw["exp"]
    if expires_at <= not_before:
        raise _malformed("token expires before it becomes valid")
    device_serial = raw["dev"]
    if not is_valid_serial(device_serial):
        raise _malformed("claim 'dev' is not a valid serial")
    return ShareClaims(
        token_id=token_id,
        key_id=raw["kid"],
        issuer=raw["iss"],
        audience=audience,
        account_id=raw["sub"],
        device_serial=device_serial,
        channels=channels,
        not_before=not_before,
        expires_at=expires_at,
        share_epoch=raw["ep"],
        playback_window=playback_window,
    )


class TokenVerifier:
    """Verifies share tokens for one audience against a key ring.

    Signature checks are the expensive part, so verified claims are kept in a
    bounded LRU keyed by the token bytes; a cached token still has its time,
    audience and device checked on every call.
    """

    def __init__(self, key_ring: KeyRing, audience: Audience, *, cache_size: int = 4096) -> None:
        if cache_size < 0:
            raise LocalProtocolError("cache_size must not be negative")
        self._key_ring = key_ring
        self.audience = audience
        self._cache_size = cache_size
        self._cache: OrderedDict[bytes, ShareClaims] = OrderedDict()

    @property
    def key_ring(self) -> KeyRing:
        return self._key_ring

    @key_ring.setter
    def key_ring(self, key_ring: KeyRing) -> None:
        """Replace the trusted keys (rotation); forgets every cached verification,
        so a token signed by a key just removed is rejected at once."""
        self._key_ring = key_ring
        self._cache.clear()

    def verify(self, token: bytes, *, now: float, device_serial: str | None = None) -> ShareClaims:
        """The token's claims if it is valid for this audience (and device) at `now`.

        Raises `TokenError` with the reason otherwise; never anything else.
        """
        if not isinstance(token, bytes) or len(token) > MAX_TOKEN_SIZE:
            raise _malformed("token is not bytes of a bounded size")
        claims = self._cache.get(token)
        if claims is None:
            claims = self._verify_signature(token)
            if self._cache_size:
                self._cache[token] = claims
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(token)
        if self.audience not in claims.audience:
            raise TokenError(TokenRejection.WRONG_AUDIENCE, f"not meant for the {self.audience}")
        if device_serial is not None and claims.device_serial != device_serial:
            raise TokenError(TokenRejection.WRONG_DEVICE, "token is for another device")
        if now < claims.not_before:
            raise TokenError(TokenRejection.NOT_YET_VALID)
        if now >= claims.expires_at:
            raise TokenError(TokenRejection.EXPIRED)
        return claims

    def _verify_signature(self, token: bytes) -> ShareClaims:
        encoded_claims, signature = _split(token)
        claims = _parse_claims(encoded_claims)
        try:
            self._key_ring.verify(claims.key_id, CONTEXT_SHARE_TOKEN, encoded_claims, signature)
        except SignatureError as exc:
            reason = TokenRejection.UNKNOWN_KEY if exc.unknown_key else TokenRejection.BAD_SIGNATURE
            raise TokenError(reason, str(exc)) from exc
        return claims
