"""WS-Security UsernameToken verification, as ONVIF cameras do it.

The client proves it knows the password with
``PasswordDigest = Base64(SHA1(nonce + created + password))``. A digest is only
as good as its freshness, so `Created` must lie within the clock-skew window of
the camera's clock and each nonce is accepted once while it could still be
replayed. The replay cache is bounded: entries leave once they are outside the
window, and a cache full of still-replayable nonces fails closed (the request is
refused) rather than forgetting one.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
from collections import OrderedDict

from lxml import etree

from .soap import WSSE, WSU, SoapFault

_UT_PROFILE_URI = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
)
_DIGEST_TYPE = _UT_PROFILE_URI + "#PasswordDigest"
_TEXT_TYPE = _UT_PROFILE_URI + "#PasswordText"
_MAX_NONCE_BYTES = 64
_MAX_FIELD = 256


def _not_authorized(reason: str) -> SoapFault:
    return SoapFault(reason, subcode="ter:NotAuthorized")


def _field(token: etree._Element, namespace: str, name: str) -> etree._Element:
    found = token.find(f"{{{namespace}}}{name}")
    if found is None or len(found.text or "") > _MAX_FIELD:
        raise _not_authorized(f"UsernameToken without a usable {name}")
    return found


def password_digest(nonce: bytes, created: str, password: str) -> str:
    """Base64(SHA1(nonce + created + password)), the WS-Security digest."""
    raw = hashlib.sha1(nonce + created.encode() + password.encode()).digest()  # noqa: S324
    return base64.b64encode(raw).decode()


class UsernameTokenVerifier:
    """Checks the Security header of each authenticated request.

    `clock_skew` (seconds) bounds how far `Created` may be from the camera's
    clock either way; `nonce_cache_size` bounds the replay cache.
    """

    def __init__(
        self,
        *,
        username: str,
        password: str,
        clock_skew: float = 300.0,
        nonce_cache_size: int = 4096,
        allow_password_text: bool = False,
    ) -> None:
        self._username = username.encode()
        self._password = password
        self._skew = dt.timedelta(seconds=clock_skew)
        self._cache_size = nonce_cache_size
        self._allow_text = allow_password_text
        # nonce -> the time after which a replay would fail the skew check anyway
        self._seen: OrderedDict[bytes, dt.datetime] = OrderedDict()

    def verify(self, security: etree._Element | None, *, now: dt.datetime) -> None:
        """Return when the header authenticates the configured user; raise `SoapFault`.

        The fault is always ``ter:NotAuthorized``; the reason says what was
        wrong (the simulator is a test tool, so it favours diagnosability).
        """
        if security is None:
            raise _not_authorized("authentication required")
        token = security.find(f"{{{WSSE}}}UsernameToken")
        if token is None:
            raise _not_authorized("Security header without a UsernameToken")
        username = (_field(token, WSSE, "Username").text or "").strip().encode()
        password_el = _field(token, WSSE, "Password")
        supplied = (password_el.text or "").strip()
        password_type = password_el.get("Type", _TEXT_TYPE)
        user_ok = hmac.compare_digest(username, self._username)
        if password_type == _TEXT_TYPE:
            if not self._allow_text:
                raise _not_authorized("PasswordText is not accepted; use PasswordDigest")
            pass_ok = hmac.compare_digest(supplied.encode(), self._password.encode())
            if not (user_ok and pass_ok):
                raise _not_authorized("wrong username or password")
            return
        if password_type != _DIGEST_TYPE:
            raise _not_authorized("unknown password type")
        created_text = (_field(token, WSU, "Created").text or "").strip()
        nonce = self._decode_nonce(_field(token, WSSE, "Nonce").text or "")
        created = self._check_created(created_text, now=now)
        expected = password_digest(nonce, created_text, self._password)
        pass_ok = hmac.compare_digest(supplied.encode(), expected.encode())
        if not (user_ok and pass_ok):
            raise _not_authorized("wrong username or password")
        self._remember(nonce, created, now=now)

    def _decode_nonce(self, value: str) -> bytes:
        try:
            nonce = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise _not_authorized("nonce is not base64") from None
        if not 8 <= len(nonce) <= _MAX_NONCE_BYTES:
            raise _not_authorized("nonce length out of range")
        return nonce

    def _check_created(self, value: str, *, now: dt.datetime) -> dt.datetime:
        try:
            created = dt.datetime.fromisoformat(value)
        except ValueError:
            raise _not_authorized("Created is not a dateTime") from None
        if created.tzinfo is None:
            created = created.replace(tzinfo=dt.UTC)
        if abs(created - now) > self._skew:
            raise _not_authorized("Created is outside the allowed clock skew")
        return created

    def _remember(self, nonce: bytes, created: dt.datetime, *, now: dt.datetime) -> None:
        while self._seen:
            oldest, replayable_until = next(iter(self._seen.items()))
            if replayable_until >= now:
                break
            del self._seen[oldest]
        if nonce in self._seen:
            raise _not_authorized("nonce was already used")
        if len(self._seen) >= self._cache_size:
            self._seen = OrderedDict((n, t) for n, t in self._seen.items() if t >= now)
        if len(self._seen) >= self._cache_size:
            # Full of nonces that could still be replayed: refuse rather than forget one.
            raise SoapFault("too many recent requests", subcode="ter:TooManyRequests", sender=False)
        self._seen[nonce] = created + self._skew
