"""GrantStore: signature, pinning, rotation, rollback, persistence across restarts."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from nvrshare.agent.errors import GrantRejected, GrantRejection
from nvrshare.agent.grants import GRANTS_FILE, TRUST_FILE, GrantStore
from nvrshare.protocol.codec import decode, encode, encode_signed
from nvrshare.protocol.messages import AccountGrant, GrantSet
from nvrshare.protocol.permissions import Permission, check
from nvrshare.protocol.signing import (
    CONTEXT_GRANT_SET,
    CONTEXT_REGISTRATION,
    SigningKey,
    public_key_bytes,
)
from nvrshare.protocol.wire import pack, unpack

SERIAL = "DEV1"


def _raw(key: SigningKey) -> bytes:
    return public_key_bytes(key.public_key)


def make_set(
    key: SigningKey,
    version: int,
    *,
    keys: tuple[SigningKey, ...] | None = None,
    serial: str = SERIAL,
    enabled: bool = True,
    channels: dict | None = None,
    revoked: tuple[str, ...] = (),
) -> bytes:
    grant_set = GrantSet(
        device_serial=serial,
        version=version,
        share_epoch=version,
        issued_at=1_700_000_000,
        service_enabled=enabled,
        grants=(AccountGrant(account_id="alice", channels=channels or {1: Permission.LIVE_VIEW}),),
        revoked_token_ids=(b"\x01" * 16,),
        revoked_accounts=revoked,
        relay_public_keys=tuple(_raw(k) for k in (keys or (key,))),
    )
    return encode_signed(grant_set, key, CONTEXT_GRANT_SET)


def test_first_set_is_pinned_and_enforced(tmp_path: Path) -> None:
    relay = SigningKey.generate()
    store = GrantStore(tmp_path, SERIAL)
    assert store.grant_for("alice", 0) is None
    assert not store.service_enabled
    assert store.apply(make_set(relay, 1))
    grant = store.grant_for("alice", 0)
    assert grant is not None
    assert check(grant, 1, Permission.LIVE_VIEW, 0)
    assert not check(grant, 1, Permission.PTZ, 0)
    assert not check(grant, 2, Permission.LIVE_VIEW, 0)
    assert store.grant_for("bob", 0) is None
    assert store.is_token_revoked(b"\x01" * 16)
    assert list(store.pinned_keys) == [relay.key_id]


def test_tampered_unsigned_foreign_and_old_sets_are_refused(tmp_path: Path) -> None:
    relay = SigningKey.generate()
    store = GrantStore(tmp_path, SERIAL)
    store.apply(make_set(relay, 5))
    good = make_set(relay, 6)
    envelope = unpack(good)
    envelope[2]["body"] = envelope[2]["body"].replace(b"alice", b"mallo")
    cases = {
        GrantRejection.BAD_SIGNATURE: pack(envelope),
        GrantRejection.MALFORMED: b"\x93\x01garbage",
        GrantRejection.UNKNOWN_KEY: make_set(SigningKey.generate(), 7),
        GrantRejection.ROLLBACK: make_set(relay, 4),
        GrantRejection.WRONG_DEVICE: make_set(relay, 8, serial="OTHER"),
    }
    unsigned = encode(
        GrantSet(
            device_serial=SERIAL,
            version=9,
            share_epoch=0,
            issued_at=0,
            service_enabled=True,
            grants=(),
            revoked_token_ids=(),
            revoked_accounts=(),
            relay_public_keys=(_raw(relay),),
        )
    )
    wrong_context = encode_signed(unpack_set(good), relay, CONTEXT_REGISTRATION)
    for reason, data in cases.items():
        with pytest.raises(GrantRejected) as info:
            store.apply(data)
        assert info.value.reason is reason
    for data in (unsigned, wrong_context):
        with pytest.raises(GrantRejected):
            store.apply(data)
    same_version = make_set(relay, 5, channels={1: Permission.PTZ})
    with pytest.raises(GrantRejected, match="rollback"):
        store.apply(same_version)
    assert store.version == 5  # the old set stays in force
    assert not store.apply(store._raw)  # a redelivered retained set is a no-op
    assert store.apply(good)
    assert store.version == 6


def unpack_set(data: bytes) -> GrantSet:
    return decode(unpack(data)[2]["body"])


def test_rotation_only_through_a_pinned_key(tmp_path: Path) -> None:
    old, new = SigningKey.generate(), SigningKey.generate()
    store = GrantStore(tmp_path, SERIAL)
    store.apply(make_set(old, 1))
    with pytest.raises(GrantRejected, match="unknown_key"):
        store.apply(make_set(new, 2, keys=(new,)))
    store.apply(make_set(old, 2, keys=(old, new)))  # announced by the pinned key
    store.apply(make_set(new, 3, keys=(new,)))  # now the new key signs; old retired
    with pytest.raises(GrantRejected, match="unknown_key"):
        store.apply(make_set(old, 4, keys=(old,)))


def test_bootstrap_keys_replace_trust_on_first_use(tmp_path: Path) -> None:
    relay, attacker = SigningKey.generate(), SigningKey.generate()
    store = GrantStore(tmp_path, SERIAL, bootstrap_keys=(_raw(relay),))
    with pytest.raises(GrantRejected, match="unknown_key"):
        store.apply(make_set(attacker, 1))
    assert store.apply(make_set(relay, 1))


def test_persisted_set_survives_a_restart_and_corruption_fails_closed(tmp_path: Path) -> None:
    relay = SigningKey.generate()
    store = GrantStore(tmp_path, SERIAL)
    store.apply(make_set(relay, 3, revoked=("bob",)))
    rebooted = GrantStore(tmp_path, SERIAL)
    assert rebooted.load()
    assert rebooted.version == 3
    assert rebooted.grant_for("alice", 0) is not None
    assert rebooted.is_account_revoked("bob")
    with pytest.raises(GrantRejected, match="rollback"):
        rebooted.apply(make_set(relay, 2))
    (tmp_path / GRANTS_FILE).write_bytes(secrets.token_bytes(100))
    broken = GrantStore(tmp_path, SERIAL)
    assert not broken.load()
    assert broken.grant_for("alice", 0) is None
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_disabled_service_grants_nothing(tmp_path: Path) -> None:
    relay = SigningKey.generate()
    store = GrantStore(tmp_path, SERIAL)
    seen = []
    store.on_change(lambda s: seen.append(s.version))
    store.apply(make_set(relay, 1, enabled=False))
    assert store.grant_for("alice", 0) is None
    assert seen == [1]


async def test_apply_async_persists_off_the_loop_and_keeps_the_rules(tmp_path: Path) -> None:
    relay = SigningKey.generate()
    store = GrantStore(tmp_path, SERIAL)
    assert await store.apply_async(make_set(relay, 2))
    with pytest.raises(GrantRejected, match="rollback"):
        await store.apply_async(make_set(relay, 2, enabled=False))  # same version
    with pytest.raises(GrantRejected, match="rollback"):
        await store.apply_async(make_set(relay, 1))
    rebooted = GrantStore(tmp_path, SERIAL)
    assert rebooted.load()
    assert rebooted.version == 2


@pytest.mark.parametrize("damage", ["delete", "corrupt"])
def test_losing_grants_bin_keeps_pinning_and_rollback_protection(
    tmp_path: Path, damage: str
) -> None:
    relay, attacker = SigningKey.generate(), SigningKey.generate()
    store = GrantStore(tmp_path, SERIAL)
    store.apply(make_set(relay, 4))
    retained = make_set(relay, 5)
    store.apply(retained)
    assert (tmp_path / TRUST_FILE).exists()
    if damage == "delete":
        (tmp_path / GRANTS_FILE).unlink()
    else:
        (tmp_path / GRANTS_FILE).write_bytes(secrets.token_bytes(100))
    rebooted = GrantStore(tmp_path, SERIAL)
    assert not rebooted.load()
    assert list(rebooted.pinned_keys) == [relay.key_id]
    # No trust on first use: a self-signed set from anyone else is refused.
    with pytest.raises(GrantRejected, match="unknown_key"):
        rebooted.apply(make_set(attacker, 99))
    # No rollback below the highest version accepted, nor a different set at it.
    with pytest.raises(GrantRejected, match="rollback"):
        rebooted.apply(make_set(relay, 4))
    with pytest.raises(GrantRejected, match="rollback"):
        rebooted.apply(make_set(relay, 5, enabled=False))
    # The relay's retained copy of the last set (same bytes) is welcome back.
    assert rebooted.apply(retained)
    assert rebooted.version == 5
    assert rebooted.apply(make_set(relay, 6))


def test_an_older_grants_bin_put_back_is_refused(tmp_path: Path) -> None:
    relay = SigningKey.generate()
    store = GrantStore(tmp_path, SERIAL)
    store.apply(make_set(relay, 1, revoked=()))
    old_file = (tmp_path / GRANTS_FILE).read_bytes()
    store.apply(make_set(relay, 2, revoked=("alice",)))
    (tmp_path / GRANTS_FILE).write_bytes(old_file)
    rebooted = GrantStore(tmp_path, SERIAL)
    assert not rebooted.load()
    assert rebooted.grant_for("alice", 0) is None


def test_unusable_store_without_trust_refuses_first_use(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    relay, attacker = SigningKey.generate(), SigningKey.generate()
    GrantStore(tmp_path, SERIAL).apply(make_set(relay, 3))
    (tmp_path / GRANTS_FILE).write_bytes(b"\x00garbage")
    (tmp_path / TRUST_FILE).write_bytes(b"\x00garbage")
    rebooted = GrantStore(tmp_path, SERIAL)
    assert not rebooted.load()
    assert "ALERT" in caplog.text
    with pytest.raises(GrantRejected, match="unknown_key"):
        rebooted.apply(make_set(attacker, 1))
    # Configured relay keys are the way back.
    recovered = GrantStore(tmp_path, SERIAL, bootstrap_keys=(_raw(relay),))
    assert not recovered.load()
    assert recovered.apply(make_set(relay, 4))


def test_a_store_without_trust_file_is_upgraded_on_load(tmp_path: Path) -> None:
    relay = SigningKey.generate()
    GrantStore(tmp_path, SERIAL).apply(make_set(relay, 7))
    (tmp_path / TRUST_FILE).unlink()  # as written by the previous version
    rebooted = GrantStore(tmp_path, SERIAL)
    assert rebooted.load()
    assert (tmp_path / TRUST_FILE).exists()
    (tmp_path / GRANTS_FILE).unlink()
    again = GrantStore(tmp_path, SERIAL)
    assert not again.load()
    with pytest.raises(GrantRejected, match="rollback"):
        again.apply(make_set(relay, 6))


def test_a_set_that_rotated_the_keys_reloads_after_a_reboot(tmp_path: Path) -> None:
    old, new = SigningKey.generate(), SigningKey.generate()
    store = GrantStore(tmp_path, SERIAL)
    store.apply(make_set(old, 1))
    store.apply(make_set(old, 2, keys=(new,)))  # signed by the old key, pins the new one
    rebooted = GrantStore(tmp_path, SERIAL)
    assert rebooted.load()
    assert list(rebooted.pinned_keys) == [new.key_id]
    with pytest.raises(GrantRejected, match="unknown_key"):
        rebooted.apply(make_set(old, 3))
    assert rebooted.apply(make_set(new, 3))
