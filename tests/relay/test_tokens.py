"""Share tokens and the persisted key ring."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from nvrshare.protocol.errors import TokenError, TokenRejection
from nvrshare.protocol.permissions import ALL_PERMISSIONS, Permission
from nvrshare.protocol.tokens import Audience, TokenVerifier, token_from_text
from nvrshare.relay.config import RelayConfig
from nvrshare.relay.errors import Forbidden, RelayConfigError, RelayError
from nvrshare.relay.services import KeyStore, RecipientKind, RecipientRef
from nvrshare.relay.services.models import DataEndpoint
from tests.relay.conftest import World


async def test_owner_and_recipient_tokens(world: World) -> None:
    alice, bob = await world.account("alice"), await world.account("bob")
    serial = await world.owned_device(alice, "SN1", channels=2)
    services = world.services
    share = await services.shares.create(
        alice, serial=serial, recipient=RecipientRef(kind=RecipientKind.NAME, value="bob"),
        permissions={2: Permission.PLAYBACK},
    )  # fmt: skip
    with pytest.raises(Forbidden, match="accept"):
        await services.tokens.issue(bob, serial)
    await services.shares.accept(bob, share.id)
    verifier = services.tokens.verifier(Audience.AGENT)
    owner = await services.tokens.issue(alice, serial)
    claims = verifier.verify(token_from_text(owner.token), now=world.clock(), device_serial=serial)
    assert claims.account_id == alice.id
    assert claims.channels == {1: ALL_PERMISSIONS, 2: ALL_PERMISSIONS}
    recipient = await services.tokens.issue(bob, serial)
    claims = verifier.verify(token_from_text(recipient.token), now=world.clock())
    assert claims.channels == {2: Permission.PLAYBACK}
    assert claims.share_epoch == recipient.share_epoch
    assert claims.expires_at - claims.not_before == services.context.config.token_ttl == 300
    with pytest.raises(TokenError) as expired:
        verifier.verify(token_from_text(recipient.token), now=world.clock() + 301)
    assert expired.value.reason is TokenRejection.EXPIRED
    # After a revocation the recipient gets no new token; the epoch has moved on.
    await services.shares.revoke(alice, share.id)
    with pytest.raises(RelayError):
        await services.tokens.issue(bob, serial)
    assert (await services.tokens.issue(alice, serial)).share_epoch > recipient.share_epoch


def test_key_store_persists_with_0600_and_rotates(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path)
    first = keys.signing_key
    key_file = tmp_path / "keys" / f"{first.key_id}.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert KeyStore(tmp_path).signing_key.key_id == first.key_id
    second = keys.rotate()
    reloaded = KeyStore(tmp_path)
    assert reloaded.signing_key.key_id == second.key_id
    assert set(reloaded.key_ring) == {first.key_id, second.key_id}
    with pytest.raises(RelayError):
        reloaded.retire(second.key_id)
    reloaded.retire(first.key_id)
    assert set(KeyStore(tmp_path).key_ring) == {second.key_id}
    assert not key_file.exists()


def test_key_store_refuses_readable_keys(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path)
    (tmp_path / "keys" / f"{keys.signing_key.key_id}.key").chmod(0o644)
    with pytest.raises(RelayConfigError, match="chmod 600"):
        KeyStore(tmp_path)


def test_key_store_refuses_a_corrupt_ring(tmp_path: Path) -> None:
    KeyStore(tmp_path)
    (tmp_path / "keys" / "ring.json").write_text("{not json")
    with pytest.raises(RelayConfigError):
        KeyStore(tmp_path)


async def test_tokens_from_before_a_rotation_still_verify(world: World) -> None:
    alice = await world.account("alice")
    serial = await world.owned_device(alice, "SN1")
    services = world.services
    old = await services.tokens.issue(alice, serial)
    services.keys.rotate()
    new = await services.tokens.issue(alice, serial)
    verifier = TokenVerifier(services.keys.key_ring, Audience.RELAY)
    for issued in (old, new):
        verifier.verify(token_from_text(issued.token), now=world.clock())
    assert token_from_text(old.token) != token_from_text(new.token)


async def test_tokens_name_the_data_endpoint_once_one_is_advertised(world: World) -> None:
    alice = await world.account("alice")
    serial = await world.owned_device(alice, "SN1", channels=1)
    tokens = world.services.tokens
    assert (await tokens.issue(alice, serial)).data_endpoint is None  # no data port runs
    tokens.data_endpoint = DataEndpoint(host="relay.example", port=7443, tls=True)
    issued = await tokens.issue(alice, serial)
    assert issued.data_endpoint == DataEndpoint(host="relay.example", port=7443, tls=True)
    with pytest.raises(ValueError, match="port"):
        DataEndpoint(host="relay.example", port=0, tls=False)


def test_token_ttl_is_configurable(tmp_path: Path) -> None:
    assert RelayConfig(data_dir=tmp_path, token_ttl=60).token_ttl == 60
    with pytest.raises(RelayConfigError):
        RelayConfig(data_dir=tmp_path, token_ttl=0)
