import hashlib
import hmac
import struct

from nvrshare.protocol.provisioning import (
    CLAIM_CONTEXT,
    CODE_KEY_CONTEXT,
    claim_mac,
    claim_payload,
    code_key,
)


def test_code_key_is_bound_to_serial_and_code() -> None:
    expected = hmac.new(b"ABCDEF", CODE_KEY_CONTEXT + b"\x00S1", hashlib.sha256).digest()
    assert code_key("S1", "ABCDEF") == expected
    assert code_key("S2", "ABCDEF") != expected
    assert code_key("S1", "ABCDEG") != expected


def test_claim_mac_covers_the_exact_payload() -> None:
    payload = claim_payload("S1", b"k" * 32, 7, b"n" * 16)
    assert payload == b"S1\x00" + b"k" * 32 + struct.pack(">Q", 7) + b"n" * 16
    key = code_key("S1", "ABCDEF")
    expected = hmac.new(key, CLAIM_CONTEXT + b"\x00" + payload, hashlib.sha256).digest()
    assert claim_mac(key, payload) == expected
    assert claim_mac(key, payload + b"x") != expected
