"""scrypt hashes for passwords and device verification codes.

Encoded form: `scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>`, so the cost can be
raised later and old hashes still verify.  Parameters read back from a stored
hash are bounded: a hash written by someone else (the device registry supplies
verification-code hashes) cannot make the relay burn unbounded CPU or memory.
Hashing runs in a worker thread so the event loop never stalls on it.

Verification codes: the device registry hashes the code the recorder reports
at registration with `hash_secret` and passes the result as
`verification_code_hash`; the relay never stores the code itself.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import os

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from nvrshare.relay.config import ScryptParams

__all__ = [
    "MAX_SECRET_LENGTH",
    "hash_secret",
    "hash_secret_async",
    "is_valid_hash",
    "verify_secret",
    "verify_secret_async",
]

MAX_SECRET_LENGTH = 256
SALT_BYTES = 16
HASH_BYTES = 32
MAX_N = 2**20


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _derive(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=HASH_BYTES, n=n, r=r, p=p).derive(secret.encode("utf-8"))


def hash_secret(secret: str, params: ScryptParams) -> str:
    """The encoded scrypt hash of `secret` with a fresh random salt."""
    salt = os.urandom(SALT_BYTES)
    digest = _derive(secret, salt, params.n, params.r, params.p)
    return f"scrypt${params.n}${params.r}${params.p}${_b64(salt)}${_b64(digest)}"


def _parse(encoded: str) -> tuple[int, int, int, bytes, bytes] | None:
    parts = encoded.split("$") if isinstance(encoded, str) and len(encoded) <= 200 else []
    if len(parts) != 6 or parts[0] != "scrypt":
        return None
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        digest = base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error):
        return None
    if n < 2 or n & (n - 1) or n > MAX_N or not 1 <= r <= 32 or not 1 <= p <= 16:
        return None
    if not 8 <= len(salt) <= 64 or len(digest) != HASH_BYTES:
        return None
    return n, r, p, salt, digest


def is_valid_hash(encoded: object) -> bool:
    """Whether `encoded` is a well-formed hash this module can verify."""
    return isinstance(encoded, str) and _parse(encoded) is not None


def verify_secret(secret: str, encoded: str) -> bool:
    """Whether `secret` matches `encoded`; False (never an exception) for a bad hash."""
    parsed = _parse(encoded)
    if parsed is None or not isinstance(secret, str) or len(secret) > MAX_SECRET_LENGTH:
        return False
    n, r, p, salt, digest = parsed
    return hmac.compare_digest(_derive(secret, salt, n, r, p), digest)


async def hash_secret_async(secret: str, params: ScryptParams) -> str:
    return await asyncio.to_thread(hash_secret, secret, params)


async def verify_secret_async(secret: str, encoded: str) -> bool:
    return await asyncio.to_thread(verify_secret, secret, encoded)
