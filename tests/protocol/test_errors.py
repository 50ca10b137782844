from __future__ import annotations

from nvrshare.protocol.errors import (
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    SignatureError,
    TokenError,
    TokenRejection,
)


def test_hierarchy() -> None:
    assert issubclass(LocalProtocolError, ProtocolError)
    assert issubclass(RemoteProtocolError, ProtocolError)
    assert issubclass(TokenError, RemoteProtocolError)
    assert issubclass(SignatureError, RemoteProtocolError)
    assert not issubclass(LocalProtocolError, RemoteProtocolError)


def test_token_error_carries_its_reason() -> None:
    bare = TokenError(TokenRejection.EXPIRED)
    assert (str(bare), bare.reason, bare.detail) == ("expired", TokenRejection.EXPIRED, "")
    detailed = TokenError(TokenRejection.MALFORMED, "bad aud")
    assert str(detailed) == "malformed: bad aud"


def test_signature_error_says_whether_the_key_was_known() -> None:
    assert SignatureError("x", unknown_key=True).unknown_key
    assert not SignatureError("x", unknown_key=False).unknown_key
