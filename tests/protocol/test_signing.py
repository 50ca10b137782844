from __future__ import annotations

import re

import pytest

from nvrshare.protocol.errors import LocalProtocolError, RemoteProtocolError, SignatureError
from nvrshare.protocol.signing import (
    CONTEXT_GRANT_SET,
    CONTEXT_REGISTRATION,
    CONTEXT_SHARE_TOKEN,
    KeyRing,
    SigningKey,
    key_id_for,
    load_public_key,
    public_key_bytes,
)


def test_key_ids_are_derived_from_the_public_key() -> None:
    key = SigningKey.generate()
    assert re.fullmatch(r"[0-9a-f]{16}", key.key_id)
    assert key.key_id == key_id_for(key.public_key)
    assert SigningKey.from_private_bytes(key.private_bytes()).key_id == key.key_id
    assert key_id_for(load_public_key(public_key_bytes(key.public_key))) == key.key_id


def test_private_key_must_be_32_bytes() -> None:
    with pytest.raises(LocalProtocolError):
        SigningKey.from_private_bytes(b"short")


@pytest.mark.parametrize("raw", [b"x" * 31, "x" * 32, None])
def test_public_key_must_be_32_raw_bytes(raw: object) -> None:
    with pytest.raises(RemoteProtocolError):
        load_public_key(raw)


def test_key_ring_mapping_and_raw_round_trip() -> None:
    first, second = SigningKey.generate(), SigningKey.generate()
    ring = KeyRing([first.public_key, second.public_key])
    assert len(ring) == 2
    assert set(ring) == {first.key_id, second.key_id}
    assert key_id_for(ring[first.key_id]) == first.key_id
    again = KeyRing.from_raw(ring.raw_keys())
    assert set(again) == set(ring)
    assert len(KeyRing()) == 0


def test_verify_and_domain_separation() -> None:
    key = SigningKey.generate()
    ring = KeyRing([key.public_key])
    signature = key.sign(CONTEXT_SHARE_TOKEN, b"payload")
    ring.verify(key.key_id, CONTEXT_SHARE_TOKEN, b"payload", signature)
    for context, payload in (
        (CONTEXT_GRANT_SET, b"payload"),
        (CONTEXT_REGISTRATION, b"payload"),
        (CONTEXT_SHARE_TOKEN, b"payload2"),
        # The separator keeps (context, payload) splits apart.
        (CONTEXT_SHARE_TOKEN[:-1], CONTEXT_SHARE_TOKEN[-1:] + b"\x00payload"),
    ):
        with pytest.raises(SignatureError) as info:
            ring.verify(key.key_id, context, payload, signature)
        assert not info.value.unknown_key


def test_verify_rejections() -> None:
    key = SigningKey.generate()
    ring = KeyRing([key.public_key])
    signature = key.sign(CONTEXT_SHARE_TOKEN, b"p")
    with pytest.raises(SignatureError) as unknown:
        ring.verify("0" * 16, CONTEXT_SHARE_TOKEN, b"p", signature)
    assert unknown.value.unknown_key
    with pytest.raises(SignatureError, match="length"):
        ring.verify(key.key_id, CONTEXT_SHARE_TOKEN, b"p", signature[:-1])
