"""The relay's Ed25519 key ring, persisted in the data dir.

Layout: `<data_dir>/keys/<key id>.key` holds a raw 32-byte seed (mode 0600,
directory 0700), and `<data_dir>/keys/ring.json` lists the key ids, newest
(the signing key) first.  Rotation adds a new key that signs from then on;
the older keys still verify until `retire` removes them (after the longest
token lifetime has passed, nothing they signed is still valid).  Files are
written to a temporary name, fsynced and renamed, so a crash never leaves a
half-written key or ring.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from nvrshare.protocol.signing import KeyRing, SigningKey
from nvrshare.relay.errors import RelayConfigError, RelayError

__all__ = ["KeyStore"]

MAX_KEYS = 8


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class KeyStore:
    """Loads (or creates) the key ring on construction; rotation persists at once."""

    def __init__(self, data_dir: Path) -> None:
        self.directory = data_dir / "keys"
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        self._ring_file = self.directory / "ring.json"
        self._keys: list[SigningKey] = self._load()
        if not self._keys:
            self.rotate()

    def _load(self) -> list[SigningKey]:
        if not self._ring_file.exists():
            return []
        try:
            key_ids = json.loads(self._ring_file.read_text("utf-8"))["keys"]
            if not isinstance(key_ids, list) or not key_ids or len(key_ids) > MAX_KEYS:
                raise ValueError("bad key list")
            keys = []
            for key_id in key_ids:
                if not isinstance(key_id, str) or not key_id.isalnum():
                    raise ValueError("bad key id")
                path = self.directory / f"{key_id}.key"
                if path.stat().st_mode & 0o077:
                    raise RelayConfigError(f"{path} must not be readable by others (chmod 600)")
                key = SigningKey.from_private_bytes(path.read_bytes())
                if key.key_id != key_id:
                    raise ValueError(f"{path} does not hold key {key_id}")
                keys.append(key)
        except RelayError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RelayConfigError(f"cannot load the key ring in {self.directory}: {exc}") from exc
        return keys

    def _save(self) -> None:
        ring = json.dumps({"keys": [k.key_id for k in self._keys]}).encode()
        _write_private(self._ring_file, ring)

    @property
    def signing_key(self) -> SigningKey:
        """The newest key: it signs everything issued from now on."""
        return self._keys[0]

    @property
    def key_ring(self) -> KeyRing:
        """Every live key's public half: tokens signed by any of them verify."""
        return KeyRing(key.public_key for key in self._keys)

    def rotate(self) -> SigningKey:
        """Create a new signing key; older keys keep verifying until retired."""
        if len(self._keys) >= MAX_KEYS:
            raise RelayError(f"at most {MAX_KEYS} live keys: retire old ones first")
        key = SigningKey.generate()
        _write_private(self.directory / f"{key.key_id}.key", key.private_bytes())
        self._keys.insert(0, key)
        self._save()
        return key

    def retire(self, key_id: str) -> None:
        """Stop trusting an old key; the signing key cannot be retired."""
        if key_id == self.signing_key.key_id:
            raise RelayError("the current signing key cannot be retired: rotate first")
        remaining = [k for k in self._keys if k.key_id != key_id]
        if len(remaining) == len(self._keys):
            raise RelayError(f"no live key {key_id!r}")
        self._keys = remaining
        self._save()
        (self.directory / f"{key_id}.key").unlink(missing_ok=True)
