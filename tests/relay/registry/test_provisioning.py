"""Bootstrap provisioning: claims, manifest, trust-on-first-claim, rate limits, HTTP."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from nvrshare.agent.bootstrap import build_claim
from nvrshare.agent.bootstrap import code_key as agent_code_key
from nvrshare.protocol.signing import SigningKey, public_key_bytes
from nvrshare.relay.broker import BrokerCredential, TopicAcl
from nvrshare.relay.registry import (
    ClaimRefused,
    Manifest,
    ProvisioningConfig,
    ProvisioningService,
    provisioning_routes,
)
from nvrshare.relay.registry.claims import code_key, parse_claim

NOW = 1_800_000_000.0


@dataclass
class Outcome:
    accepted: bool
    reason: object = None
    message: str = ""
    grant_version: int = 0


@dataclass
class FakeDirectory:
    pinned: dict[str, bytes] = field(default_factory=dict)
    hashes: dict[str, object] = field(default_factory=dict)

    async def apply_registration(self, *, serial, public_key, verification_code_hash, **_):
        if self.pinned.setdefault(serial, public_key) != public_key:
            return Outcome(accepted=False, reason="key_mismatch", message="key mismatch")
        self.hashes[serial] = verification_code_hash
        return Outcome(accepted=True)


@dataclass
class FakeBroker:
    accounts: dict[str, tuple[BrokerCredential, TopicAcl]] = field(default_factory=dict)

    async def provision_device(self, credential: BrokerCredential, acl: TopicAcl) -> None:
        self.accounts[credential.username] = (credential, acl)


def _service(
    *, trust: bool = False, manifest: Manifest | None = None
) -> tuple[ProvisioningService, FakeDirectory, FakeBroker]:
    directory, broker = FakeDirectory(), FakeBroker()
    service = ProvisioningService(
        ProvisioningConfig(trust_first_claim=trust),
        directory=directory,
        broker=broker,
        hash_code=lambda code: f"hashed:{len(code)}",
        manifest=manifest,
    )
    return service, directory, broker


def _claim(serial: str = "DEVP1", code: str = "ABCDEF", key: SigningKey | None = None) -> dict:
    return build_claim(
        serial=serial, verification_code=code, key=key or SigningKey.generate(), now=NOW
    )


def test_agent_and_relay_agree_on_the_claim_format() -> None:
    assert agent_code_key("S1", "ABCDEF") == code_key("S1", "ABCDEF")
    key = SigningKey.generate()
    claim = parse_claim(_claim(key=key))
    assert claim.public_key == public_key_bytes(key.public_key)
    assert claim.signature_valid()
    assert claim.mac_matches(code_key("DEVP1", "ABCDEF"))
    assert not claim.mac_matches(code_key("DEVP1", "ABCDEG"))


async def test_trust_first_claim_pins_and_provisions_exactly_that_device() -> None:
    service, directory, broker = _service(trust=True)
    key = SigningKey.generate()
    credential = await service.claim(_claim(key=key), source="10.0.0.1", now=NOW)
    assert credential.username == credential.client_id == "DEVP1"
    _cred, acl = broker.accounts["DEVP1"]
    assert all("/dev/DEVP1/" in topic for topic in (*acl.publish, *acl.subscribe))
    assert directory.pinned["DEVP1"] == public_key_bytes(key.public_key)
    assert directory.hashes["DEVP1"] == "hashed:6"
    # Same key again: a new password (lost credential file); another key: refused.
    again = await service.claim(_claim(key=key), source="10.0.0.1", now=NOW)
    assert again.password != credential.password
    with pytest.raises(ClaimRefused) as info:
        await service.claim(_claim(), source="10.0.0.2", now=NOW)
    assert info.value.status == 409


async def test_without_manifest_or_trust_nothing_is_provisioned() -> None:
    service, _directory, broker = _service(trust=False)
    with pytest.raises(ClaimRefused, match="manifest"):
        await service.claim(_claim(), source="s", now=NOW)
    assert not broker.accounts


async def test_manifest_code_and_key_entries() -> None:
    known = SigningKey.generate()
    raw = base64.b64encode(public_key_bytes(known.public_key)).decode()
    manifest = Manifest.from_csv(f"# serial,code\nDEVM1,ABCDEF\nDEVM2,key:{raw}\n")
    assert len(manifest) == 2
    service, _directory, broker = _service(manifest=manifest)
    await service.claim(_claim("DEVM1", "ABCDEF"), source="a", now=NOW)
    with pytest.raises(ClaimRefused):
        await service.claim(_claim("DEVM1", "WRONG1"), source="b", now=NOW)
    await service.claim(_claim("DEVM2", "ANYCODE", key=known), source="c", now=NOW)
    with pytest.raises(ClaimRefused, match="manufacturer"):
        await service.claim(_claim("DEVM2", "ANYCODE"), source="d", now=NOW)
    assert sorted(broker.accounts) == ["DEVM1", "DEVM2"]
    for bad in ("DEV/X,ABCDEF", "DEVX", "DEVX,key:AAAA", "DEVX,abc"):
        with pytest.raises(ValueError, match="line 1"):
            Manifest.from_csv(bad)


async def test_forged_stale_and_malformed_claims_are_refused() -> None:
    service, _directory, broker = _service(trust=True)
    claim = _claim()
    forged = dict(claim, signature=base64.b64encode(bytes(64)).decode())
    other_key = dict(claim, public_key=_claim()["public_key"])
    wrong_mac = dict(claim, mac=base64.b64encode(bytes(32)).decode())
    stale = build_claim(
        serial="DEVP1", verification_code="ABCDEF", key=SigningKey.generate(), now=NOW - 3600
    )
    for body in (forged, other_key, wrong_mac):
        with pytest.raises(ClaimRefused) as info:
            await service.claim(body, source=f"s{id(body)}", now=NOW)
        assert info.value.status == 403
    with pytest.raises(ClaimRefused, match="clock"):
        await service.claim(stale, source="x", now=NOW)
    assert not broker.accounts
    service, _directory, broker = _service(trust=True)  # fresh failure counters
    for body in ([], {"serial": "x"}, dict(claim, extra=1), dict(claim, timestamp="1"),
                 dict(claim, serial="a/b"), dict(claim, nonce="!!")):  # fmt: skip
        with pytest.raises(ClaimRefused) as info:
            await service.claim(body, source="y", now=NOW)
        assert info.value.status == 400
    assert not broker.accounts


async def test_failures_are_rate_limited_per_serial_and_per_source() -> None:
    service, _directory, _broker = _service(trust=True)
    bad = dict(_claim(), mac=base64.b64encode(bytes(32)).decode())
    for i in range(5):
        with pytest.raises(ClaimRefused):
            await service.claim(bad, source=f"10.0.0.{i}", now=NOW)
    with pytest.raises(ClaimRefused) as info:
        await service.claim(_claim(), source="10.9.9.9", now=NOW)  # even a good claim
    assert info.value.status == 429
    assert info.value.retry_after
    assert info.value.retry_after > 0
    later = build_claim(
        serial="DEVP1", verification_code="ABCDEF", key=SigningKey.generate(), now=NOW + 601
    )
    await service.claim(later, source="10.9.9.9", now=NOW + 601)
    for i in range(20):
        with pytest.raises(ClaimRefused):
            await service.claim(dict(bad, serial=f"OTHER{i}"), source="6.6.6.6", now=NOW)
    with pytest.raises(ClaimRefused) as info:
        await service.claim(_claim("FRESH1"), source="6.6.6.6", now=NOW)
    assert info.value.status == 429


@pytest.fixture
async def http_url() -> AsyncIterator[str]:
    service, _directory, _broker = _service(trust=True)
    app = web.Application()
    app.add_routes([provisioning_routes(service, time.time)])
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = int(runner.addresses[0][1])
    try:
        yield f"http://127.0.0.1:{port}/api/v1/provision"
    finally:
        await runner.cleanup()


async def test_http_endpoint(http_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        claim = build_claim(
            serial="DEVH1", verification_code="ABCDEF", key=SigningKey.generate(), now=time.time()
        )
        async with session.post(http_url, json=claim) as response:
            assert response.status == 200
            body = await response.json()
            assert body["username"] == "DEVH1"
        async with session.post(http_url, data=b"not json") as response:
            assert response.status == 400
            assert (await response.json())["error"]["code"] == "provisioning_refused"
        async with session.post(http_url, data=b"x" * 9000) as response:
            assert response.status == 413


async def test_a_known_device_gets_a_new_credential_without_touching_its_record() -> None:
    key = SigningKey.generate()
    raw = public_key_bytes(key.public_key)
    directory, broker = FakeDirectory(), FakeBroker()

    async def pinned_key(serial: str) -> bytes | None:
        return raw if serial == "DEVK1" else None

    service = ProvisioningService(
        ProvisioningConfig(trust_first_claim=True),
        directory=directory,
        broker=broker,
        hash_code=lambda code: "h",
        pinned_key=pinned_key,
    )
    credential = await service.claim(_claim("DEVK1", key=key), source="a", now=NOW)
    assert credential.username == "DEVK1"
    assert directory.pinned == {}  # apply_registration was not called
    with pytest.raises(ClaimRefused) as info:
        await service.claim(_claim("DEVK1"), source="b", now=NOW)
    assert info.value.status == 409


async def test_even_valid_claims_are_bounded_per_source() -> None:
    service, _directory, broker = _service(trust=True)
    for i in range(60):
        await service.claim(_claim(f"MINT{i}"), source="1.2.3.4", now=NOW)
    with pytest.raises(ClaimRefused) as info:
        await service.claim(_claim("MINT60"), source="1.2.3.4", now=NOW)
    assert info.value.status == 429
    await service.claim(_claim("OTHER1"), source="5.6.7.8", now=NOW)
    assert len(broker.accounts) == 61
