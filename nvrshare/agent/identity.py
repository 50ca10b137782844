"""The device's Ed25519 identity key: created on first run, kept 0600 in the state dir.

A serial is a name, never a credential (ThroughTek Kalay, CVE-2021-28372): the
relay pins this key at first registration and refuses the serial from any
other key afterwards.  The key never leaves the device; registrations and the
bootstrap claim are signed with it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nvrshare.agent.errors import IdentityError
from nvrshare.protocol.signing import SigningKey, public_key_bytes

__all__ = ["KEY_FILE", "load_or_create_identity", "public_key_raw"]

KEY_FILE = "device-key.pem"
MAX_KEY_FILE = 4096


def public_key_raw(key: SigningKey) -> bytes:
    return public_key_bytes(key.public_key)


def _load(path: Path) -> SigningKey:
    mode = path.stat().st_mode
    if stat.S_IMODE(mode) & 0o077:
        raise IdentityError(
            f"{path}: the device key must be readable by its owner only (chmod 600 {path})"
        )
    data = path.read_bytes()
    if len(data) > MAX_KEY_FILE:
        raise IdentityError(f"{path}: not a device key (too large)")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise IdentityError(f"{path}: not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise IdentityError(f"{path}: the device key must be Ed25519")
    return SigningKey(key)


def load_or_create_identity(state_dir: Path) -> SigningKey:
    """The device key from `state_dir`, generated (0600, fsynced) if there is none.

    Raises `IdentityError` if the file exists but is unusable: a device must
    never silently replace its identity, since the relay would refuse it.
    """
    path = state_dir / KEY_FILE
    if path.exists():
        return _load(path)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = SigningKey.generate()
    pem = key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(pem)
            file.flush()
            os.fsync(file.fileno())
        # link() fails if another process created the key meanwhile: then use theirs.
        try:
            os.link(tmp, path)
        except FileExistsError:
            return _load(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _fsync_dir(state_dir)
    return key


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
