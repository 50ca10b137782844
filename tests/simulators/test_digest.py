"""Server-side Digest: the client computations it must accept, and what it must refuse."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from nvrshare.simulators.digest import AuthResult, DigestAuthenticator, parse_digest_header


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def answer(challenge: str, *, method: str, uri: str, user: str, password: str) -> str:
    params = parse_digest_header(challenge)
    assert params is not None
    ha1 = md5(f"{user}:{params['realm']}:{password}")
    ha2 = md5(f"{method}:{uri}")
    if "qop" in params:
        response = md5(f"{ha1}:{params['nonce']}:00000001:abcd:auth:{ha2}")
        extra = ', qop=auth, nc=00000001, cnonce="abcd"'
    else:
        response = md5(f"{ha1}:{params['nonce']}:{ha2}")
        extra = ""
    return (
        f'Digest username="{user}", realm="{params["realm"]}", nonce="{params["nonce"]}", '
        f'uri="{uri}", response="{response}"{extra}'
    )


def test_round_trip_with_and_without_qop() -> None:
    for qop in (True, False):
        auth = DigestAuthenticator(realm="r", username="admin", password="pw", qop=qop)
        header = answer(auth.challenge(), method="GET", uri="/a?b=1", user="admin", password="pw")
        assert auth.verify("GET", "/a?b=1", header) is AuthResult.OK
        assert auth.verify("POST", "/a?b=1", header) is AuthResult.DENIED
        assert auth.verify("GET", "/other", header) is AuthResult.DENIED


def test_rtsp_absolute_uri_matches_by_path() -> None:
    auth = DigestAuthenticator(realm="r", username="u", password="p", qop=False)
    uri = "rtsp://127.0.0.1:554/Streaming/Channels/101"
    header = answer(auth.challenge(), method="DESCRIBE", uri=uri, user="u", password="p")
    assert auth.verify("DESCRIBE", uri, header) is AuthResult.OK


def test_wrong_password_missing_and_stale() -> None:
    now = [1000.0]
    auth = DigestAuthenticator(realm="r", username="u", password="p", clock=lambda: now[0])
    bad = answer(auth.challenge(), method="GET", uri="/", user="u", password="nope")
    assert auth.verify("GET", "/", bad) is AuthResult.DENIED
    assert auth.verify("GET", "/", None) is AuthResult.MISSING
    good = answer(auth.challenge(), method="GET", uri="/", user="u", password="p")
    now[0] += 10_000
    assert auth.verify("GET", "/", good) is AuthResult.STALE
    assert "stale=true" in auth.challenge(stale=True)


def test_forged_nonce_is_denied() -> None:
    auth = DigestAuthenticator(realm="r", username="u", password="p")
    other = DigestAuthenticator(realm="r", username="u", password="p")
    header = answer(other.challenge(), method="GET", uri="/", user="u", password="p")
    assert auth.verify("GET", "/", header) is AuthResult.DENIED


@given(st.text(max_size=300))
def test_garbage_headers_never_raise(header: str) -> None:
    auth = DigestAuthenticator(realm="r", username="u", password="p")
    assert auth.verify("GET", "/", header) in (AuthResult.DENIED, AuthResult.MISSING)
    parse_digest_header(header)
