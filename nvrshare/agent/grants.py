"""The grant set the device enforces: verified, pinned, never rolled back, persisted.

Theory of operation.  The relay publishes a signed `GrantSet` (retained) on the
device's `down/grants` topic.  `GrantStore.apply(data, now)`:

1. verifies the envelope.  Keys: the relay keys pinned so far; before the
   first set, the keys from the agent's config if any, else trust on first
   use (the set must be signed by one of the keys it carries, as with SSH
   host keys).  A set signed by no pinned key is refused: rotation happens
   only through a set signed by a key already pinned, and the pinned keys
   then become the ones that set lists;
2. checks it is for this device and strictly newer than the one held (a
   replay of the same version with the same bytes is a no-op, since retained
   messages are redelivered after every reconnect; anything else at or below
   the current version is a rollback);
3. writes envelope + pinned keys to `grants.bin` atomically (temp file,
   fsync, rename, fsync of the directory) *before* switching to it, so that
   after a power cut the device enforces either the old or the new set,
   never a mix and never nothing.

   Then the pinned keys, the version and a digest of that set go to a
   second small file, `relay-trust.bin`, written the same way.

On start-up the persisted set is loaded and re-verified, so a device that
reboots without network still enforces its last grants.  Any failure leaves
the previous set in force and raises `GrantRejected`.

Why two files: the grant set is big and churns; losing or corrupting it must
not reset trust.  `relay-trust.bin` keeps the pinned keys and the highest
version ever accepted, so after `grants.bin` is lost the device still only
accepts sets signed by the pinned keys, and nothing older than that version
(the same version only with the very same bytes, i.e. the relay's retained
copy).  If a store file exists but is unusable and no pinned keys survive,
trust on first use is refused (ALERT): an operator must configure the relay
keys, because "the file went bad" is exactly what an attacker would arrange.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
from collections.abc import Callable
from pathlib import Path

from nvrshare.agent.errors import GrantRejected, GrantRejection
from nvrshare.protocol.codec import decode, decode_signed, open_envelope
from nvrshare.protocol.errors import RemoteProtocolError, SignatureError
from nvrshare.protocol.messages import GrantSet
from nvrshare.protocol.permissions import Grant
from nvrshare.protocol.signing import CONTEXT_GRANT_SET, KeyRing
from nvrshare.protocol.wire import WireLimits, pack, unpack

__all__ = ["GRANTS_FILE", "GrantStore"]

GRANTS_FILE = "grants.bin"
TRUST_FILE = "relay-trust.bin"
STORE_FORMAT = 1
TRUST_FORMAT = 1
# A grant set for a 256-channel recorder shared with hundreds of accounts
# stays well under this; anything bigger is hostile.
GRANT_LIMITS = WireLimits(max_size=512 * 1024, max_string=64 * 1024, max_items=4096, max_depth=8)
_FILE_LIMITS = WireLimits(max_size=600 * 1024, max_string=512 * 1024, max_items=16, max_depth=3)
_TRUST_LIMITS = WireLimits(max_size=8 * 1024, max_string=256, max_items=32, max_depth=3)


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _write_atomically(directory: Path, path: Path, blob: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(blob)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class GrantStore:
    """What this device currently enforces, and the relay keys it trusts.

    Args:
        state_dir: where `grants.bin` lives.
        serial: this device; sets for another device are refused.
        bootstrap_keys: relay public keys from the config to trust before the
            first set (empty: trust on first use).
    """

    def __init__(
        self,
        state_dir: Path,
        serial: str,
        *,
        bootstrap_keys: tuple[bytes, ...] = (),
        logger: logging.Logger | None = None,
    ) -> None:
        self._path = state_dir / GRANTS_FILE
        self._trust_path = state_dir / TRUST_FILE
        self._dir = state_dir
        self._serial = serial
        self._bootstrap = KeyRing.from_raw(bootstrap_keys)
        self._log = logger or logging.getLogger("nvrshare.agent.grants")
        self._pinned: KeyRing | None = None
        self._current: GrantSet | None = None
        self._raw: bytes | None = None
        self._listeners: list[Callable[[GrantSet], None]] = []
        # From relay-trust.bin: the highest version accepted and its digest.
        self._floor = 0
        self._floor_digest = b""
        # False once a store file was found unusable with no pinned keys left.
        self._first_use_allowed = True

    # -- queries ---------------------------------------------------------------

    @property
    def current(self) -> GrantSet | None:
        return self._current

    @property
    def version(self) -> int:
        return self._current.version if self._current is not None else 0

    @property
    def pinned_keys(self) -> KeyRing:
        """The relay keys that may sign grant sets and (the agent checks) share tokens."""
        return self._pinned if self._pinned is not None else self._bootstrap

    @property
    def service_enabled(self) -> bool:
        """False until a set arrives, and whenever the owner disabled the service."""
        return self._current is not None and self._current.service_enabled

    @property
    def share_epoch(self) -> int:
        return self._current.share_epoch if self._current is not None else 0

    def grant_for(self, account_id: str, now: float) -> Grant | None:
        """The account's grant if it may use the device at all at `now`, else None.

        None when no set is held, the service is disabled, the account is
        revoked or absent.  Per-channel and per-permission checks are
        `nvrshare.protocol.permissions.check` on the returned grant (it also
        applies the grant's validity period against `now`).
        """
        del now  # the validity period lives in the Grant; `check` applies it
        if self._current is None or not self._current.service_enabled:
            return None
        return self._current.grant_for(account_id)

    def is_token_revoked(self, token_id: bytes) -> bool:
        return self._current is not None and token_id in self._current.revoked_token_ids

    def is_account_revoked(self, account_id: str) -> bool:
        return self._current is not None and account_id in self._current.revoked_accounts

    def on_change(self, listener: Callable[[GrantSet], None]) -> None:
        """Call `listener(new_set)` after each applied set (e.g. to cut revoked sessions)."""
        self._listeners.append(listener)

    # -- updates ---------------------------------------------------------------

    def apply(self, data: bytes) -> bool:
        """Verify and adopt a signed grant set; True if it changed what is enforced.

        Raises `GrantRejected`; the set in force is then unchanged.  Blocks
        for an fsync: from the event loop, prefer `apply_async`.
        """
        if self._raw is not None and data == self._raw:
            return False
        grant_set, keys = self._check(data)
        self._persist(data, keys, grant_set.version)
        self._adopt(grant_set, data, keys)
        return True

    async def apply_async(self, data: bytes) -> bool:
        """`apply`, with the file write and fsync in a worker thread.

        Callers must not run two of these at once for one store (the control
        loop applies sets one after the other); listeners run on the loop.
        """
        if self._raw is not None and data == self._raw:
            return False
        grant_set, keys = self._check(data)
        await asyncio.to_thread(self._persist, data, keys, grant_set.version)
        # Checked again: the set in force may have moved on while we wrote.
        if self._current is not None and grant_set.version <= self._current.version:
            raise GrantRejected(GrantRejection.ROLLBACK, "a newer set arrived meanwhile")
        self._adopt(grant_set, data, keys)
        return True

    def _check(self, data: bytes) -> tuple[GrantSet, KeyRing]:
        grant_set, keys = self._verify(data)
        if grant_set.device_serial != self._serial:
            raise GrantRejected(GrantRejection.WRONG_DEVICE, grant_set.device_serial)
        held = self._current.version if self._current is not None else 0
        floor = max(held, self._floor)
        # With no set held, the set at the floor itself is welcome back (the
        # relay's retained copy after grants.bin was lost), but only byte for byte.
        same_as_floor = (
            self._current is None
            and grant_set.version == self._floor
            and hmac.compare_digest(_digest(data), self._floor_digest)
        )
        if grant_set.version < floor or (grant_set.version == floor and not same_as_floor):
            raise GrantRejected(
                GrantRejection.ROLLBACK,
                f"version {grant_set.version} is not newer than {floor}",
            )
        return grant_set, keys

    def _adopt(self, grant_set: GrantSet, data: bytes, keys: KeyRing) -> None:
        self._current, self._raw, self._pinned = grant_set, data, keys
        self._floor, self._floor_digest = grant_set.version, _digest(data)
        for listener in self._listeners:
            try:
                listener(grant_set)
            except Exception:  # a listener's bug must not undo a persisted set
                self._log.exception("grant-set listener failed")

    def load(self) -> bool:
        """Load the pinned keys and the persisted set if there are any; True if a set loaded.

        A corrupt or unverifiable file is logged and ignored (the device then
        enforces nothing until the relay sends a set): failing closed.  The
        pinned keys and the rollback floor in `relay-trust.bin` survive a
        lost `grants.bin`, and the other way round.
        """
        trusted = self._load_trust()
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            if trusted:
                self._log.warning("%s is missing: waiting for the relay's set", self._path)
            return False
        try:
            message, data, keys = self._decode_store(raw)
        except (RemoteProtocolError, ValueError) as exc:
            self._unusable(self._path, exc)
            return False
        if message.device_serial != self._serial:
            self._unusable(self._path, f"it is for device {message.device_serial}")
            return False
        if message.version < self._floor or (
            message.version == self._floor
            and self._floor_digest
            and not hmac.compare_digest(_digest(data), self._floor_digest)
        ):
            self._unusable(self._path, f"version {message.version} is older than {self._floor}")
            return False
        self._current, self._raw, self._pinned = message, data, keys
        if not trusted or message.version > self._floor:
            # Upgrading from a store without relay-trust.bin, or it was lost.
            self._floor, self._floor_digest = message.version, _digest(data)
            try:
                self._persist_trust(keys, message.version, data)
            except OSError as exc:
                self._log.error("cannot write %s: %s", self._trust_path, exc)
        return True

    def _decode_store(self, raw: bytes) -> tuple[GrantSet, bytes, KeyRing]:
        stored = unpack(raw, _FILE_LIMITS)
        if (
            not isinstance(stored, list)
            or len(stored) != 3
            or stored[0] != STORE_FORMAT
            or not isinstance(stored[1], list)
            or not isinstance(stored[2], bytes)
        ):
            raise RemoteProtocolError("unknown grant store layout")
        keys = KeyRing.from_raw(stored[1])
        if self._floor_digest and hmac.compare_digest(_digest(stored[2]), self._floor_digest):
            # Byte for byte the set the trust record names: verified when it
            # was accepted (a set that rotated the keys is signed by the
            # previous ones, which are no longer pinned).
            envelope = open_envelope(stored[2], limits=GRANT_LIMITS)
            message = decode(envelope.body, limits=GRANT_LIMITS, accept=(GrantSet,))
            assert isinstance(message, GrantSet)
            keys = KeyRing.from_raw(message.relay_public_keys)
        else:
            # Otherwise the pinned keys, once known, must have signed it.
            verify_with = self._pinned if self._pinned is not None else keys
            message, _key_id = decode_signed(
                stored[2],
                verify_with,
                context=CONTEXT_GRANT_SET,
                limits=GRANT_LIMITS,
                accept=(GrantSet,),
            )
        assert isinstance(message, GrantSet)
        return message, stored[2], keys

    def _load_trust(self) -> bool:
        try:
            raw = self._trust_path.read_bytes()
        except FileNotFoundError:
            return False
        try:
            stored = unpack(raw, _TRUST_LIMITS)
            if (
                not isinstance(stored, list)
                or len(stored) != 4
                or stored[0] != TRUST_FORMAT
                or not isinstance(stored[1], list)
                or not isinstance(stored[2], int)
                or stored[2] < 0
                or not isinstance(stored[3], bytes)
                or len(stored[3]) != hashlib.sha256().digest_size
            ):
                raise RemoteProtocolError("unknown relay trust layout")
            keys = KeyRing.from_raw(stored[1])
            if not keys:
                raise RemoteProtocolError("no pinned keys")
        except (RemoteProtocolError, ValueError) as exc:
            self._unusable(self._trust_path, exc)
            return False
        self._pinned, self._floor, self._floor_digest = keys, stored[2], stored[3]
        return True

    def _unusable(self, path: Path, why: object) -> None:
        if self._pinned is None and not self._bootstrap:
            self._first_use_allowed = False
            self._log.error(
                "ALERT: %s is unusable (%s) and no pinned relay keys are known: trust on "
                "first use is refused; configure the relay's keys to recover",
                path,
                why,
            )
        else:
            self._log.error("ignoring unusable %s: %s", path, why)

    # -- internals ---------------------------------------------------------------

    def _verify(self, data: bytes) -> tuple[GrantSet, KeyRing]:
        try:
            if self._pinned is not None or self._bootstrap:
                trusted = self.pinned_keys
                message, _kid = decode_signed(
                    data,
                    trusted,
                    context=CONTEXT_GRANT_SET,
                    limits=GRANT_LIMITS,
                    accept=(GrantSet,),
                )
            elif self._first_use_allowed:
                message = self._verify_first_use(data)
            else:
                raise GrantRejected(
                    GrantRejection.UNKNOWN_KEY,
                    "the stored relay keys are unusable; trust on first use is refused",
                )
        except SignatureError as exc:
            reason = GrantRejection.UNKNOWN_KEY if exc.unknown_key else GrantRejection.BAD_SIGNATURE
            raise GrantRejected(reason, str(exc)) from None
        except RemoteProtocolError as exc:
            raise GrantRejected(GrantRejection.MALFORMED, str(exc)) from None
        assert isinstance(message, GrantSet)
        if not message.relay_public_keys:
            raise GrantRejected(GrantRejection.NO_KEYS, "a grant set must list the relay's keys")
        try:
            keys = KeyRing.from_raw(message.relay_public_keys)
        except (RemoteProtocolError, ValueError) as exc:
            raise GrantRejected(GrantRejection.MALFORMED, str(exc)) from None
        return message, keys

    def _verify_first_use(self, data: bytes) -> GrantSet:
        # Trust on first use: the envelope must be signed by a key the set lists.

        envelope = open_envelope(data, limits=GRANT_LIMITS)
        message = decode(envelope.body, limits=GRANT_LIMITS, accept=(GrantSet,))
        assert isinstance(message, GrantSet)
        try:
            ring = KeyRing.from_raw(message.relay_public_keys)
        except ValueError as exc:
            raise RemoteProtocolError(str(exc)) from None
        ring.verify(envelope.key_id, CONTEXT_GRANT_SET, envelope.body, envelope.signature)
        self._log.warning(
            "pinning relay keys %s on first grant set (trust on first use)", sorted(ring)
        )
        return message

    def _persist(self, data: bytes, keys: KeyRing, version: int) -> None:
        # The set first, then the trust record: a cut in between leaves a
        # newer set with the older trust record, which load() then raises.
        _write_atomically(self._dir, self._path, pack([STORE_FORMAT, keys.raw_keys(), data]))
        self._persist_trust(keys, version, data)

    def _persist_trust(self, keys: KeyRing, version: int, data: bytes) -> None:
        blob = pack([TRUST_FORMAT, keys.raw_keys(), version, _digest(data)])
        _write_atomically(self._dir, self._trust_path, blob)
