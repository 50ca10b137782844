"""The gate's side of RTSP authentication towards the recorder (RFC 2617 Digest, or Basic).

The app never holds recorder credentials: the gate answers the recorder's
challenges itself with the credentials the firmware shim hands out.  Digest is
preferred whenever it is offered; Basic is only used when it is the only
scheme (some older cameras), and only ever towards the recorder on the LAN.
MD5 here is the protocol's own digest function, not a choice of ours.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass

from nvrshare.agent.sessions.errors import UpstreamError

__all__ = ["Challenge", "UpstreamAuth", "parse_challenges"]

MAX_CHALLENGE = 2048
_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')


@dataclass(frozen=True, kw_only=True, slots=True)
class Challenge:
    """One `WWW-Authenticate` challenge."""

    scheme: str
    params: dict[str, str]


def parse_challenges(values: list[str]) -> list[Challenge]:
    """Parse `WWW-Authenticate` header values; unparseable ones are skipped."""
    challenges: list[Challenge] = []
    for value in values:
        if len(value) > MAX_CHALLENGE:
            continue
        scheme, _, rest = value.strip().partition(" ")
        params: dict[str, str] = {}
        position = 0
        while position < len(rest):
            match = _PARAM.match(rest, position)
            if match is None or match.end() == position:
                break
            raw = match.group(2)
            if raw.startswith('"'):
                raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
            params[match.group(1).lower()] = raw
            position = match.end()
        challenges.append(Challenge(scheme=scheme.lower(), params=params))
    return challenges


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


class UpstreamAuth:
    """Builds `Authorization` headers for requests to the recorder.

    Call `authorization(method, uri)` before sending each request (None until a
    challenge was seen), and `challenge(values)` with the `WWW-Authenticate`
    values of a 401; it returns False when retrying cannot help.
    """

    def __init__(self, username: str, password: str) -> None:
        self._username = username
        self._password = password
        self._challenge: Challenge | None = None
        self._nonce_count = 0

    @property
    def has_credentials(self) -> bool:
        return bool(self._username)

    def challenge(self, values: list[str]) -> bool:
        """Adopt the best challenge of a 401; False if none is usable."""
        if not self.has_credentials:
            return False
        by_scheme = {c.scheme: c for c in parse_challenges(values)}
        digest = by_scheme.get("digest")
        if digest is not None and "nonce" in digest.params and "realm" in digest.params:
            algorithm = digest.params.get("algorithm", "MD5").upper()
            if algorithm != "MD5":
                raise UpstreamError(f"recorder wants digest algorithm {algorithm}")
            self._challenge = digest
            self._nonce_count = 0
            return True
        if "basic" in by_scheme:
            self._challenge = by_scheme["basic"]
            return True
        return False

    def authorization(self, method: str, uri: str) -> str | None:
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            pair = f"{self._username}:{self._password}".encode()
            return "Basic " + base64.b64encode(pair).decode("ascii")
        realm = challenge.params["realm"]
        nonce = challenge.params["nonce"]
        ha1 = _md5(f"{self._username}:{realm}:{self._password}")
        ha2 = _md5(f"{method}:{uri}")
        fields = [
            f'username="{self._username}"',
            f'realm="{realm}"',
            f'nonce="{nonce}"',
            f'uri="{uri}"',
        ]
        qops = [q.strip() for q in challenge.params.get("qop", "").split(",") if q.strip()]
        if "auth" in qops:
            self._nonce_count += 1
            nc = f"{self._nonce_count:08x}"
            cnonce = secrets.token_hex(8)
            response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
            fields += ["qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
        else:
            response = _md5(f"{ha1}:{nonce}:{ha2}")
        fields.append(f'response="{response}"')
        if "opaque" in challenge.params:
            fields.append(f'opaque="{challenge.params["opaque"]}"')
        return "Digest " + ", ".join(fields)
