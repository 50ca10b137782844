"""Ed25519 keys with key ids, and detached signatures with domain separation.

One algorithm, no agility: a signature is Ed25519 over `context || 0x00 ||
payload`, where the context names what is signed (a share token, a grant set,
a registration), so a signature made for one purpose never verifies as
another.  A key id is derived from the public key, so it cannot lie about it.
A `KeyRing` maps key ids to public keys; rotation is two live keys.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from nvrshare.protocol.errors import LocalProtocolError, RemoteProtocolError, SignatureError

__all__ = [
    "CONTEXT_GRANT_SET",
    "CONTEXT_REGISTRATION",
    "CONTEXT_SHARE_TOKEN",
    "KeyRing",
    "SigningKey",
    "key_id_for",
    "load_public_key",
    "public_key_bytes",
]

CONTEXT_SHARE_TOKEN = b"nvrshare/share-token/v1"
CONTEXT_GRANT_SET = b"nvrshare/grant-set/v1"
CONTEXT_REGISTRATION = b"nvrshare/registration/v1"

KEY_ID_LENGTH = 16  # hex characters: 64 bits of SHA-256 over the raw public key
SIGNATURE_LENGTH = 64
PUBLIC_KEY_LENGTH = 32


def public_key_bytes(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_public_key(raw: object) -> Ed25519PublicKey:
    """A public key from its 32 raw bytes; `RemoteProtocolError` for anything else."""
    if not isinstance(raw, bytes) or len(raw) != PUBLIC_KEY_LENGTH:
        raise RemoteProtocolError("an Ed25519 public key is 32 raw bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def key_id_for(public_key: Ed25519PublicKey) -> str:
    return hashlib.sha256(public_key_bytes(public_key)).hexdigest()[:KEY_ID_LENGTH]


def _message(context: bytes, payload: bytes) -> bytes:
    return context + b"\x00" + payload


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private Ed25519 key and its derived key id."""

    private_key: Ed25519PrivateKey
    key_id: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_id", key_id_for(self.private_key.public_key()))

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> SigningKey:
        """Load from the 32-byte raw seed; `LocalProtocolError` if it is not one."""
        if len(raw) != 32:
            raise LocalProtocolError("an Ed25519 private key is 32 raw bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    def private_bytes(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def sign(self, context: bytes, payload: bytes) -> bytes:
        return self.private_key.sign(_message(context, payload))


class KeyRing(Mapping[str, Ed25519PublicKey]):
    """An immutable set of trusted public keys, looked up by key id."""

    __slots__ = ("_keys",)

    def __init__(self, public_keys: Iterable[Ed25519PublicKey] = ()) -> None:
        self._keys = {key_id_for(key): key for key in public_keys}

    @classmethod
    def from_raw(cls, raw_keys: Iterable[bytes]) -> KeyRing:
        return cls(load_public_key(raw) for raw in raw_keys)

    def raw_keys(self) -> list[bytes]:
        return [public_key_bytes(key) for _, key in sorted(self._keys.items())]

    def __getitem__(self, key_id: str) -> Ed25519PublicKey:
        return self._keys[key_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def verify(self, key_id: str, context: bytes, payload: bytes, signature: bytes) -> None:
        """Check `signature` over `payload` by the key `key_id`.

        Raises `SignatureError` (with `unknown_key` set accordingly).
        """
        public_key = self._keys.get(key_id)
        if public_key is None:
            raise SignatureError(f"unknown key id {key_id!r}", unknown_key=True)
        if len(signature) != SIGNATURE_LENGTH:
            raise SignatureError("signature has the wrong length", unknown_key=False)
        try:
            public_key.verify(signature, _message(context, payload))
        except InvalidSignature:
            raise SignatureError("signature does not verify", unknown_key=False) from None
