"""Accounts and sessions, against SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from nvrshare.relay.errors import AccountExists, InvalidRequest, RateLimited, Unauthorized
from tests.relay.conftest import PASSWORD, World


async def test_register_by_email_phone_or_name(world: World) -> None:
    accounts = world.services.accounts
    a = await accounts.register(email="Alice@Example.COM", password=PASSWORD)
    b = await accounts.register(phone="+49 151 1234-5678", password=PASSWORD, region="NA")
    c = await accounts.register(name="Carol_1", password=PASSWORD)
    assert (a.email, a.region) == ("alice@example.com", "EU")
    assert (b.phone, b.region) == ("+4915112345678", "NA")
    assert c.name == "carol_1"
    assert len({a.id, b.id, c.id}) == 3
    assert all(len(x.id) >= 20 for x in (a, b, c))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "needs an email"),
        ({"email": "not-an-email"}, "email"),
        ({"phone": "12"}, "phone"),
        ({"name": "1abc"}, "account name"),
        ({"name": "alice", "region": "MARS"}, "region"),
    ],
)
async def test_register_refuses_bad_fields(world: World, fields: dict, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        await world.services.accounts.register(password=PASSWORD, **fields)


async def test_register_refuses_short_password(world: World) -> None:
    with pytest.raises(InvalidRequest, match="password"):
        await world.services.accounts.register(name="alice", password="short")


async def test_identifiers_are_unique_case_insensitively(world: World) -> None:
    await world.account("alice")
    with pytest.raises(AccountExists):
        await world.services.accounts.register(name="ALICE", password=PASSWORD)
    with pytest.raises(AccountExists):
        await world.services.accounts.register(email="ALICE@example.com", password=PASSWORD)


async def test_login_with_any_identifier_and_session_expiry(world: World) -> None:
    accounts = world.services.accounts
    alice = await accounts.register(
        email="alice@example.com", phone="+15551234567", name="alice", password=PASSWORD
    )
    for login in ("alice@example.com", "+1 555 123 4567", "Alice"):
        session = await accounts.login(login=login, password=PASSWORD, source="10.0.0.1")
        assert (await accounts.authenticate(session.token)).id == alice.id
    world.clock.advance(world.services.context.config.session_ttl + 1)
    with pytest.raises(Unauthorized, match="expired"):
        await accounts.authenticate(session.token)


async def test_logout_ends_the_session(world: World) -> None:
    await world.account("alice")
    accounts = world.services.accounts
    session = await accounts.login(login="alice", password=PASSWORD, source="s")
    await accounts.logout(session.token)
    with pytest.raises(Unauthorized):
        await accounts.authenticate(session.token)


async def test_wrong_password_and_unknown_account_look_the_same(world: World) -> None:
    await world.account("alice")
    accounts = world.services.accounts
    with pytest.raises(Unauthorized) as wrong:
        await accounts.login(login="alice", password="wrong password", source="s")
    with pytest.raises(Unauthorized) as unknown:
        await accounts.login(login="nobody", password="wrong password", source="s")
    assert wrong.value.message == unknown.value.message


async def test_failed_logins_are_limited_per_account(world: World) -> None:
    await world.account("alice")
    accounts = world.services.accounts
    limit = world.services.context.config.login_failures_per_account
    for i in range(limit):
        with pytest.raises(Unauthorized):
            await accounts.login(login="alice", password="wrong", source=f"10.0.0.{i}")
    # Even the right password is refused while limited, from any source.
    with pytest.raises(RateLimited) as limited:
        await accounts.login(login="alice", password=PASSWORD, source="10.9.9.9")
    assert limited.value.retry_after
    assert limited.value.retry_after > 0
    world.clock.advance(world.services.context.config.login_window + 1)
    await accounts.login(login="alice", password=PASSWORD, source="10.9.9.9")


async def test_failed_logins_are_limited_per_source(world: World) -> None:
    await world.account("victim")
    accounts = world.services.accounts
    limit = world.services.context.config.login_failures_per_source
    for i in range(limit):
        with pytest.raises(Unauthorized):
            await accounts.login(login=f"user{i:03d}", password="wrong", source="203.0.113.7")
    with pytest.raises(RateLimited):
        await accounts.login(login="victim", password=PASSWORD, source="203.0.113.7")
    await accounts.login(login="victim", password=PASSWORD, source="198.51.100.1")


async def test_account_qr_round_trip_and_expiry(world: World) -> None:
    alice = await world.account("alice")
    accounts = world.services.accounts
    payload, expires_at = accounts.qr_payload(alice)
    assert accounts.account_id_from_qr(payload) == alice.id
    tampered = payload[:-3] + ("AAA" if payload[-3:] != "AAA" else "BBB")
    with pytest.raises(InvalidRequest):
        accounts.account_id_from_qr(tampered)
    with pytest.raises(InvalidRequest):
        accounts.account_id_from_qr("nvrshare:account:v1:garbage")
    world.clock.now = expires_at + 1
    with pytest.raises(InvalidRequest, match="expired"):
        accounts.account_id_from_qr(payload)


async def test_expired_sessions_are_purged(world: World) -> None:
    await world.account("alice")
    accounts = world.services.accounts
    session = await accounts.login(login="alice", password=PASSWORD, source="s")
    assert await accounts.purge_expired_sessions() == 0
    world.clock.advance(world.services.context.config.session_ttl)
    assert await accounts.purge_expired_sessions() == 1
    with pytest.raises(Unauthorized):
        await accounts.authenticate(session.token)
