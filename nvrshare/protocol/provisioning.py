"""The bootstrap claim a factory-fresh device sends to get its broker credential.

The claim binds a serial to the device's Ed25519 key and proves knowledge of
the verification code without sending it to be stored: the MAC key is derived
from the code and the serial, so a manufacturing manifest can hold that derived
key instead of the code.  Agent (builds) and relay (verifies) share these
definitions, so the two sides cannot drift apart.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

__all__ = ["CLAIM_CONTEXT", "CODE_KEY_CONTEXT", "claim_mac", "claim_payload", "code_key"]

CLAIM_CONTEXT = b"nvrshare/provision/v1"
CODE_KEY_CONTEXT = b"nvrshare/verification-code/v1"


def code_key(serial: str, verification_code: str) -> bytes:
    """The MAC key derived from the verification code (what a manifest may store)."""
    return hmac.new(
        verification_code.encode(), CODE_KEY_CONTEXT + b"\x00" + serial.encode(), hashlib.sha256
    ).digest()


def claim_payload(serial: str, public_key: bytes, timestamp: int, nonce: bytes) -> bytes:
    """The exact bytes the claim's MAC and signature cover."""
    return serial.encode() + b"\x00" + public_key + struct.pack(">Q", timestamp) + nonce


def claim_mac(key: bytes, payload: bytes) -> bytes:
    """HMAC-SHA256 over the payload under `CLAIM_CONTEXT`, keyed by `code_key(...)`."""
    return hmac.new(key, CLAIM_CONTEXT + b"\x00" + payload, hashlib.sha256).digest()
