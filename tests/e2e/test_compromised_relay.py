"""A compromised relay cannot widen a grant: the device decides on its own synced grant set.

The attacker holds everything the relay's data dir holds: the broker's admin
credential (so it can give itself a relay account on the broker) and the
relay's token-signing keys.  It publishes its own `SessionOffer`s to the
device over MQTT.  The agent refuses each (with a typed `SessionRefuse`) and
never dials the data port for them; a control offer with a genuine token
shows the same path does make the agent dial.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Mapping

import aiohttp
import aiomqtt
import pytest

from nvrshare.protocol.codec import decode, encode
from nvrshare.protocol.messages import (
    SessionAccept,
    SessionKind,
    SessionOffer,
    SessionRefuse,
    SessionRequest,
)
from nvrshare.protocol.permissions import ALL_PERMISSIONS, Permission
from nvrshare.protocol.reasons import RefusalReason
from nvrshare.protocol.signing import SigningKey
from nvrshare.protocol.tokens import Audience, TokenIssuer, TokenVerifier
from nvrshare.protocol.topics import TopicKind, device_topic
from nvrshare.relay.broker import (
    BrokerCredential,
    DynsecConfig,
    DynsecProvisioner,
    generate_password,
    relay_acl,
)
from nvrshare.relay.services.keystore import KeyStore
from tests.e2e.conftest import NEEDS_TOOLS, SLOW_PROCESSES, Product

pytestmark = [pytest.mark.e2e, pytest.mark.mosquitto, NEEDS_TOOLS, SLOW_PROCESSES]

AGENT_DIAL_REFUSALS = 'nvrshare_relay_refusals_total{reason="token_invalid"}'


async def _metric(product: Product, name: str) -> float:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
        http.get(str(product.run.status["metrics"])) as response,
    ):
        text = await response.text()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rpartition(" ")[2])
    return 0.0


async def _rogue_credential(product: Product) -> BrokerCredential:
    """What anyone holding the relay's data dir can do: a relay account of its own."""
    raw = json.loads((product.relay_data_dir / "broker" / "admin.json").read_text())
    admin = BrokerCredential(**raw)
    rogue = BrokerCredential(
        username="relay:rogue", password=generate_password(), client_id="rogue-relay"
    )
    status = product.run.status
    config = DynsecConfig(host=status["broker_host"], port=status["broker_port"], admin=admin)
    async with DynsecProvisioner(config) as provisioner:
        await provisioner.provision_service(rogue, relay_acl())
    return rogue


async def _answers(
    messages: aiomqtt.Client, wanted: set[bytes], within: float
) -> dict[bytes, object]:
    answers: dict[bytes, object] = {}
    async with asyncio.timeout(within):
        async for message in messages.messages:
            answer = decode(bytes(message.payload))  # type: ignore[arg-type]
            session_id = getattr(answer, "session_id", None)
            if session_id in wanted:
                answers[session_id] = answer
                if wanted <= set(answers):
                    return answers
    return answers


async def test_forged_offers_are_refused_by_the_device_which_never_dials(
    product: Product,
) -> None:
    serial = product.serial
    rogue = await _rogue_credential(product)
    keys = KeyStore(product.relay_data_dir)  # the relay's own signing keys
    genuine = await product.story.tokens()
    claims = TokenVerifier(keys.key_ring, Audience.RELAY).verify(genuine, now=time.time())
    now = int(time.time())
    host, _, port = str(product.run.status["data_endpoint"]).rpartition(":")

    def token(key: SigningKey, account_id: str, channels: Mapping[int, Permission]) -> bytes:
        return TokenIssuer(key, claims.issuer).issue(
            account_id=account_id, device_serial=serial, channels=channels,
            not_before=now - 5, expires_at=now + 300, share_epoch=claims.share_epoch,
        )  # fmt: skip

    def offer(token: bytes, channel: int, kind: SessionKind) -> SessionOffer:
        return SessionOffer(
            session_id=secrets.token_bytes(16),
            token=token,
            request=SessionRequest(device_serial=serial, channel=channel, kind=kind),
            relay_host=host,  # the real data port: only the device's own checks stop it
            relay_port=int(port),
            session_secret=secrets.token_bytes(32),
            expires_at=now + 30,
        )

    relay_key, stranger_key = keys.signing_key, SigningKey.generate()
    friend = claims.account_id
    hostile = {
        "unshared channel, genuine token": (
            offer(genuine, 3, SessionKind.LIVE_MAIN),
            {RefusalReason.CHANNEL_NOT_GRANTED},
        ),
        "token signed by an unknown key": (
            offer(token(stranger_key, friend, {3: ALL_PERMISSIONS}), 3, SessionKind.LIVE_MAIN),
            {RefusalReason.TOKEN_INVALID},
        ),
        "relay-signed token widened to channel 3": (
            offer(token(relay_key, friend, {3: ALL_PERMISSIONS}), 3, SessionKind.LIVE_MAIN),
            {RefusalReason.CHANNEL_NOT_GRANTED, RefusalReason.PERMISSION_DENIED},
        ),
        "relay-signed token widened to two-way audio": (
            offer(token(relay_key, friend, {1: ALL_PERMISSIONS}), 1, SessionKind.TALK),
            {RefusalReason.PERMISSION_DENIED},
        ),
        "relay-signed token for an account with no share": (
            offer(token(relay_key, "mallory", {1: Permission.LIVE_VIEW}), 1, SessionKind.LIVE_MAIN),
            {RefusalReason.CHANNEL_NOT_GRANTED, RefusalReason.PERMISSION_DENIED},
        ),
    }
    down = device_topic(serial, TopicKind.DOWN_SESSION)
    dials_before = await _metric(product, AGENT_DIAL_REFUSALS)
    async with aiomqtt.Client(
        str(product.run.status["broker_host"]),
        int(product.run.status["broker_port"]),
        username=rogue.username,
        password=rogue.password,
        identifier=rogue.client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
    ) as client:
        await client.subscribe(device_topic(serial, TopicKind.UP_SESSION), qos=1)
        for forged, _ in hostile.values():
            await client.publish(down, encode(forged), qos=1)
        answers = await _answers(client, {o.session_id for o, _ in hostile.values()}, 10)
        for case, (forged, reasons) in hostile.items():
            answer = answers.get(forged.session_id)
            assert isinstance(answer, SessionRefuse), (case, answer)
            assert answer.reason in reasons, (case, answer.reason)
            print(f"{case}: refused by the device: {answer.reason.value}")
        await asyncio.sleep(1.0)  # a dial would have reached the data port by now
        assert await _metric(product, AGENT_DIAL_REFUSALS) == dials_before

        # Control: a genuine token for what is shared, same path: the agent dials
        # (and the relay refuses its hello, since no client session waits for it).
        control = offer(genuine, 1, SessionKind.LIVE_MAIN)
        await client.publish(down, encode(control), qos=1)
        deadline = time.monotonic() + 10
        while await _metric(product, AGENT_DIAL_REFUSALS) == dials_before:
            assert time.monotonic() < deadline, "the agent never dialled for a genuine offer"
            await asyncio.sleep(0.1)
        answer = (await _answers(client, {control.session_id}, 5)).get(control.session_id)
        assert not isinstance(answer, SessionAccept)  # nothing was served
        print(f"control offer: the agent dialled; it reported {answer!r}")
