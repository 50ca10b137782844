"""Verifying a device's bootstrap claim (pure functions, no I/O).

The claim format lives in `nvrshare.protocol.provisioning`, shared with the
agent that builds it: the MAC key is derived from the verification code and
the serial, so a manufacturing manifest can hold that derived key instead of
the code.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hmac
import io
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from nvrshare.protocol.provisioning import CLAIM_CONTEXT, claim_mac, claim_payload, code_key
from nvrshare.protocol.validation import is_valid_serial

__all__ = [
    "CLAIM_CONTEXT",
    "Claim",
    "ClaimInvalid",
    "Manifest",
    "ManifestEntry",
    "code_key",
    "parse_claim",
]

MAX_CODE = 64
MAX_MANIFEST_ENTRIES = 1_000_000


class ClaimInvalid(Exception):
    """The claim is malformed or does not verify (the message is safe to return)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Claim:
    serial: str
    public_key: bytes
    timestamp: int
    nonce: bytes
    mac: bytes
    signature: bytes
    verification_code: str = field(repr=False)

    def payload(self) -> bytes:
        return claim_payload(self.serial, self.public_key, self.timestamp, self.nonce)

    def mac_matches(self, key: bytes) -> bool:
        return hmac.compare_digest(claim_mac(key, self.payload()), self.mac)

    def signature_valid(self) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                self.signature, CLAIM_CONTEXT + b"\x00" + self.payload()
            )
        except (InvalidSignature, ValueError):
            return False
        return True


def _b64(body: Mapping[str, object], name: str, length: int) -> bytes:
    value = body.get(name)
    if not isinstance(value, str) or len(value) > 4 * length:
        raise ClaimInvalid(f"{name} must be base64")
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error:
        raise ClaimInvalid(f"{name} must be base64") from None
    if len(raw) != length:
        raise ClaimInvalid(f"{name} must be {length} bytes")
    return raw


def parse_claim(body: object) -> Claim:
    """Validate the JSON body's shape; `ClaimInvalid` for anything off."""
    expected = {"serial", "public_key", "timestamp", "nonce", "mac", "signature"}
    if not isinstance(body, dict) or not expected <= body.keys() <= expected | {
        "verification_code"
    }:
        raise ClaimInvalid(
            f"a claim has exactly the fields {sorted(expected)} (+verification_code)"
        )
    serial, timestamp = body["serial"], body["timestamp"]
    code = body.get("verification_code", "")
    if not is_valid_serial(serial):
        raise ClaimInvalid("invalid serial")
    if type(timestamp) is not int or not 0 <= timestamp < 2**40:
        raise ClaimInvalid("timestamp must be an integer")
    if not isinstance(code, str) or len(code) > MAX_CODE:
        raise ClaimInvalid("verification_code must be a short string")
    return Claim(
        serial=serial,
        public_key=_b64(body, "public_key", 32),
        timestamp=timestamp,
        nonce=_b64(body, "nonce", 16),
        mac=_b64(body, "mac", 32),
        signature=_b64(body, "signature", 64),
        verification_code=code,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class ManifestEntry:
    """What the manufacturer says about one serial: its code key and/or its public key."""

    code_key: bytes | None = field(default=None, repr=False)
    public_key: bytes | None = None


class Manifest:
    """The operator-imported manufacturing manifest: serial → `ManifestEntry`.

    CSV, one device per line: `serial,verification_code` or
    `serial,key:<base64 Ed25519 public key>`; `#` starts a comment.  Codes
    are turned into derived keys at import and not kept.
    """

    def __init__(self, entries: Mapping[str, ManifestEntry] | None = None) -> None:
        self._entries = dict(entries or {})

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, serial: str) -> ManifestEntry | None:
        return self._entries.get(serial)

    @classmethod
    def from_csv(cls, text: str) -> Manifest:
        """Parse a manifest; `ValueError` naming the line for anything invalid."""
        entries: dict[str, ManifestEntry] = {}
        for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
            if not row or row[0].lstrip().startswith("#"):
                continue
            if len(row) != 2:
                raise ValueError(f"manifest line {number}: expected serial,code-or-key")
            serial, value = row[0].strip(), row[1].strip()
            if not is_valid_serial(serial):
                raise ValueError(f"manifest line {number}: invalid serial")
            if value.startswith("key:"):
                try:
                    key = base64.b64decode(value[4:], validate=True)
                except binascii.Error:
                    key = b""
                if len(key) != 32:
                    raise ValueError(f"manifest line {number}: bad public key")
                entries[serial] = ManifestEntry(public_key=key)
            elif 6 <= len(value) <= MAX_CODE:
                entries[serial] = ManifestEntry(code_key=code_key(serial, value))
            else:
                raise ValueError(f"manifest line {number}: bad verification code")
            if len(entries) > MAX_MANIFEST_ENTRIES:
                raise ValueError("manifest too large")
        return cls(entries)
