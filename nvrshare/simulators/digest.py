"""Server side of HTTP/RTSP Digest authentication (RFC 2617, MD5).

Shared by the RTSP server and the recorder's ISAPI surface.  Nonces are
stateless: `<hex time>:<hmac(secret, time)>`, so they cannot be forged and
expire after `nonce_ttl` (an expired but genuine nonce gets `stale=true`, which
clients answer by retrying without asking the user).  Responses are compared in
constant time.  Header parsing is bounded and never raises on garbage.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
import re
import time
from collections.abc import Callable

__all__ = ["AuthResult", "DigestAuthenticator", "parse_digest_header"]

MAX_HEADER = 4096
_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*(?:,|$)')


class AuthResult(enum.Enum):
    OK = "ok"
    MISSING = "missing"
    STALE = "stale"
    DENIED = "denied"


def parse_digest_header(value: str) -> dict[str, str] | None:
    """Parse `Digest k=v, k="v"` into a dict; None if it is not a sane Digest header."""
    if len(value) > MAX_HEADER:
        return None
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    params: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        match = _PARAM.match(rest, pos)
        if match is None or match.end() == pos:
            return None
        key = match.group(1).lower()
        quoted = match.group(2)
        params[key] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else match.group(3)
        pos = match.end()
        if len(params) > 20:
            return None
    return params


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


class DigestAuthenticator:
    """Issue challenges and check `Authorization: Digest ...` for one user."""

    def __init__(
        self,
        *,
        realm: str,
        username: str,
        password: str,
        qop: bool = True,
        nonce_ttl: float = 300.0,
        clock: Callable[[], float] = time.time,
        secret: bytes | None = None,
    ) -> None:
        self.realm = realm
        self.username = username
        self._password = password
        self.qop = qop
        self.nonce_ttl = nonce_ttl
        self._clock = clock
        self._secret = secret or os.urandom(32)

    def change_password(self, password: str) -> None:
        """Rotate the expected password (existing nonces stay valid; responses won't)."""
        self._password = password

    def _sign(self, stamp: str) -> str:
        return hmac.new(self._secret, stamp.encode("ascii"), hashlib.sha256).hexdigest()[:32]

    def new_nonce(self) -> str:
        stamp = f"{int(self._clock() * 1000):x}"
        return f"{stamp}:{self._sign(stamp)}"

    def challenge(self, *, stale: bool = False) -> str:
        """The `WWW-Authenticate` header value for a 401."""
        parts = [f'Digest realm="{self.realm}"', f'nonce="{self.new_nonce()}"', "algorithm=MD5"]
        if self.qop:
            parts.append('qop="auth"')
        if stale:
            parts.append("stale=true")
        return ", ".join(parts)

    def _nonce_state(self, nonce: str) -> AuthResult:
        stamp, _, signature = nonce.partition(":")
        if not stamp or len(stamp) > 16 or not hmac.compare_digest(signature, self._sign(stamp)):
            return AuthResult.DENIED
        try:
            issued = int(stamp, 16) / 1000
        except ValueError:
            return AuthResult.DENIED
        age = self._clock() - issued
        if age < -5 or age > self.nonce_ttl:
            return AuthResult.STALE
        return AuthResult.OK

    def verify(self, method: str, uri: str, authorization: str | None) -> AuthResult:
        """Check a request's Authorization header.

        `uri` is the request target as received; the digest's `uri` must match
        it (ignoring a scheme/host prefix some RTSP clients include or omit).
        """
        if not authorization:
            return AuthResult.MISSING
        params = parse_digest_header(authorization)
        if params is None:
            return AuthResult.DENIED
        nonce = params.get("nonce", "")
        response = params.get("response", "")
        digest_uri = params.get("uri", "")
        if params.get("username") != self.username or params.get("realm") != self.realm:
            return AuthResult.DENIED
        if not _same_target(digest_uri, uri):
            return AuthResult.DENIED
        if params.get("algorithm", "MD5").upper() != "MD5":
            return AuthResult.DENIED
        state = self._nonce_state(nonce)
        if state is not AuthResult.OK:
            return state
        ha1 = _md5(f"{self.username}:{self.realm}:{self._password}")
        ha2 = _md5(f"{method}:{digest_uri}")
        qop = params.get("qop")
        if qop is not None:
            if qop != "auth" or not params.get("nc") or not params.get("cnonce"):
                return AuthResult.DENIED
            expected = _md5(f"{ha1}:{nonce}:{params['nc']}:{params['cnonce']}:{qop}:{ha2}")
        else:
            expected = _md5(f"{ha1}:{nonce}:{ha2}")
        if hmac.compare_digest(expected.encode(), response.lower().encode()[:64]):
            return AuthResult.OK
        return AuthResult.DENIED


def _path_of(uri: str) -> str:
    if "://" in uri:
        rest = uri.split("://", 1)[1]
        slash = rest.find("/")
        return rest[slash:] if slash >= 0 else "/"
    return uri


def _same_target(digest_uri: str, request_uri: str) -> bool:
    if digest_uri == request_uri:
        return True
    return bool(digest_uri) and _path_of(digest_uri) == _path_of(request_uri)
