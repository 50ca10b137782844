"""The data port with TLS configured: handshake, relaying and revocation over TLS."""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nvrshare.protocol.framing import NEED_DATA, FrameReceived, HandshakeConnection
from nvrshare.protocol.handshake import (
    AgentHello,
    ClientHello,
    HelloAccepted,
    HelloRefused,
    agent_proof,
)
from nvrshare.protocol.handshake_state import Role
from nvrshare.protocol.messages import SessionKind, SessionOffer, SessionRequest
from nvrshare.protocol.permissions import Permission
from nvrshare.protocol.signing import KeyRing, SigningKey
from nvrshare.protocol.tokens import TokenIssuer
from nvrshare.relay.dataplane.relaying import RelayConfig
from nvrshare.relay.dataplane.server import DataPlane, DataPlaneConfig
from tests.relay.dataplane.conftest import SERIAL, FakeControlPlane
from tests.support.tls import make_certificate

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]

# Bounds what happens at once on a quiet machine: generous, it costs nothing when all is well.
DEADLINE = 10.0


async def tls_handshake(
    streams: Streams, role: Role, hello: ClientHello | AgentHello
) -> HelloAccepted | HelloRefused | None:
    reader, writer = streams
    connection = HandshakeConnection(role)
    writer.write(connection.send(hello))
    await writer.drain()
    while True:
        event = connection.next_event()
        if isinstance(event, FrameReceived):
            assert isinstance(event.message, HelloAccepted | HelloRefused)
            if isinstance(event.message, HelloAccepted):
                assert connection.switch_to_raw()[0] == b""
            return event.message
        if event is not NEED_DATA:
            return None
        connection.receive_data(await reader.read(4096))


class TlsRig:
    def __init__(self, plane: DataPlane, client_context: ssl.SSLContext, key: SigningKey) -> None:
        self.plane = plane
        self.client_context = client_context
        self.issuer = TokenIssuer(key, "test-relay")
        self.writers: list[asyncio.StreamWriter] = []
        self.agent_tasks: set[asyncio.Task[None]] = set()

    async def open(self) -> Streams:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", self.plane.port, ssl=self.client_context
        )
        self.writers.append(writer)
        return reader, writer

    async def publish(self, offer: SessionOffer) -> None:
        task = asyncio.create_task(self._agent(offer))
        self.agent_tasks.add(task)
        task.add_done_callback(self.agent_tasks.discard)

    async def _agent(self, offer: SessionOffer) -> None:
        reader, writer = await self.open()
        proof = agent_proof(offer.session_secret, offer.session_id)
        hello = AgentHello(session_id=offer.session_id, proof=proof)
        if isinstance(await tls_handshake((reader, writer), Role.AGENT, hello), HelloAccepted):
            with_errors_ignored = (ConnectionError, ssl.SSLError)
            try:
                while data := await reader.read(65536):  # echo
                    writer.write(data)
                    await writer.drain()
            except with_errors_ignored:
                pass

    async def client(self) -> tuple[Streams, HelloAccepted | HelloRefused | None]:
        streams = await self.open()
        now = int(time.time())
        token = self.issuer.issue(
            account_id="viewer@example.com",
            device_serial=SERIAL,
            channels={1: Permission.LIVE_VIEW},
            not_before=now - 60,
            expires_at=now + 3600,
            share_epoch=3,
        )
        request = SessionRequest(device_serial=SERIAL, channel=1, kind=SessionKind.LIVE_MAIN)
        hello = ClientHello(token=token, request=request, client_nonce=os.urandom(16))
        return streams, await tls_handshake(streams, Role.CLIENT, hello)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[TlsRig]:
    cert, key_file = make_certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key_file)
    client_context = ssl.create_default_context(cafile=str(cert))
    key = SigningKey.generate()
    control = FakeControlPlane()
    holder: list[TlsRig] = []

    async def publish(offer: SessionOffer) -> None:
        await holder[0].publish(offer)

    plane = DataPlane(
        DataPlaneConfig(
            tls=server_context,
            hello_timeout=10,
            agent_timeout=10,
            relay=RelayConfig(idle_timeout=60),
        ),
        key_ring=KeyRing([key.public_key]),
        grant_state=control,
        presence=control,
        publish_offer=publish,
    )
    async with plane:
        rig = TlsRig(plane, client_context, key)
        holder.append(rig)
        try:
            yield rig
        finally:
            for writer in rig.writers:
                writer.transport.abort()
            for task in list(rig.agent_tasks):
                task.cancel()
            await asyncio.gather(*rig.agent_tasks, return_exceptions=True)


async def test_session_over_tls_relays_bytes(rig: TlsRig) -> None:
    (reader, writer), answer = await rig.client()
    assert isinstance(answer, HelloAccepted)
    payload = os.urandom(2 * 1024 * 1024)
    writer.write(payload)
    await writer.drain()
    assert await asyncio.wait_for(reader.readexactly(len(payload)), DEADLINE) == payload
    live = rig.plane.live_sessions[0]
    assert (live.relay.bytes_up, live.relay.bytes_down) == (len(payload), len(payload))


async def test_revocation_cuts_a_tls_session(rig: TlsRig) -> None:
    (reader, _), answer = await rig.client()
    assert isinstance(answer, HelloAccepted)
    assert rig.plane.revoke(SERIAL) == 1
    with pytest.raises((ConnectionError, ssl.SSLError, asyncio.IncompleteReadError)):
        await asyncio.wait_for(reader.readexactly(1), DEADLINE)


async def test_plain_tcp_is_dropped_when_tls_is_required(rig: TlsRig) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", rig.plane.port)
    rig.writers.append(writer)
    writer.write(b"\x00\x05hello")
    assert await asyncio.wait_for(reader.read(), DEADLINE) == b""
    assert 'reason="tls_failed"' in rig.plane.metrics.render()


async def test_a_side_closing_ends_the_tls_session(rig: TlsRig) -> None:
    (_, writer), answer = await rig.client()
    assert isinstance(answer, HelloAccepted)
    [live] = rig.plane.live_sessions
    writer.close()
    reason = await asyncio.wait_for(live.relay.wait_closed(), DEADLINE)
    assert reason.value in {"eof", "reset"}
    async with asyncio.timeout(DEADLINE):
        while rig.plane.live_sessions:  # noqa: ASYNC110 (the plane exposes no event for this)
            await asyncio.sleep(0.01)
