"""A data plane on a loopback port, a fake control plane, and in-process peers.

The fake publisher plays the device agent: for each offer it dials the data
port over real loopback TCP, proves the session with the offer's secret and
then serves the stream (echo, or a fixed payload), like the real agent will.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

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
from nvrshare.relay.dataplane.admission import SessionLimits
from nvrshare.relay.dataplane.relaying import RelayConfig
from nvrshare.relay.dataplane.server import DataPlane, DataPlaneConfig

SERIAL = "DS-7608NI-K2-0001"
OTHER_SERIAL = "DS-7608NI-K2-0002"


@dataclass
class FakeControlPlane:
    epochs: dict[str, int] = field(default_factory=lambda: {SERIAL: 3, OTHER_SERIAL: 1})
    revoked: set[bytes] = field(default_factory=set)
    online: set[str] = field(default_factory=lambda: {SERIAL, OTHER_SERIAL})

    async def share_epoch(self, device_serial: str) -> int | None:
        return self.epochs.get(device_serial)

    async def is_token_revoked(self, token_id: bytes) -> bool:
        return token_id in self.revoked

    async def is_online(self, device_serial: str) -> bool:
        return device_serial in self.online


AgentBehaviour = Callable[[socket.socket, SessionOffer], Awaitable[None]]


async def echo(sock: socket.socket, offer: SessionOffer) -> None:
    del offer
    loop = asyncio.get_running_loop()
    while data := await loop.sock_recv(sock, 65536):
        await loop.sock_sendall(sock, data)
    sock.shutdown(socket.SHUT_WR)


class FakeAgent:
    """The offer publisher: plays the device's agent in-process over loopback."""

    def __init__(self) -> None:
        self.offers: list[SessionOffer] = []
        self.behaviour: AgentBehaviour | None = echo  # None: never dial in
        self.answers: list[object] = []
        self.fail_publish = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def publish(self, offer: SessionOffer) -> None:
        if self.fail_publish:
            raise ConnectionError("broker unreachable")
        self.offers.append(offer)
        if self.behaviour is not None:
            task = asyncio.create_task(self._dial(offer, self.behaviour))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _dial(self, offer: SessionOffer, behaviour: AgentBehaviour) -> None:
        sock = await open_socket(offer.relay_port)
        try:
            hello = AgentHello(
                session_id=offer.session_id,
                proof=agent_proof(offer.session_secret, offer.session_id),
            )
            answer, early = await handshake(sock, Role.AGENT, hello)
            self.answers.append(answer)
            if isinstance(answer, HelloAccepted):
                assert early == b""
                await behaviour(sock, offer)
        except OSError:
            pass
        finally:
            sock.close()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def open_socket(port: int) -> socket.socket:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    return sock


async def handshake(
    sock: socket.socket, role: Role, hello: ClientHello | AgentHello
) -> tuple[HelloAccepted | HelloRefused | None, bytes]:
    """Send `hello`, read the relay's answer; (None, b"") if it closed without one."""
    loop = asyncio.get_running_loop()
    connection = HandshakeConnection(role)
    await loop.sock_sendall(sock, connection.send(hello))
    while True:
        event = connection.next_event()
        if isinstance(event, FrameReceived):
            assert isinstance(event.message, HelloAccepted | HelloRefused)
            early = (
                connection.switch_to_raw()[0] if isinstance(event.message, HelloAccepted) else b""
            )
            return event.message, early
        if event is not NEED_DATA:
            return None, b""
        connection.receive_data(await loop.sock_recv(sock, 4096))


@dataclass
class Harness:
    plane: DataPlane
    control: FakeControlPlane
    agent: FakeAgent
    issuer: TokenIssuer
    key: SigningKey
    now: list[float]
    sockets: list[socket.socket] = field(default_factory=list)

    def token(self, **overrides: object) -> bytes:
        claims: dict[str, object] = {
            "account_id": "viewer@example.com",
            "device_serial": SERIAL,
            "channels": {1: Permission.LIVE_VIEW | Permission.PLAYBACK, 2: Permission.ALARM},
            "not_before": int(self.now[0]) - 60,
            "expires_at": int(self.now[0]) + 3600,
            "share_epoch": 3,
        }
        claims.update(overrides)
        return self.issuer.issue(**claims)  # type: ignore[arg-type]

    async def connect(
        self,
        token: bytes | None = None,
        request: SessionRequest | None = None,
    ) -> tuple[socket.socket, HelloAccepted | HelloRefused | None]:
        sock = await open_socket(self.plane.port)
        self.sockets.append(sock)
        hello = ClientHello(
            token=token if token is not None else self.token(),
            request=request
            or SessionRequest(device_serial=SERIAL, channel=1, kind=SessionKind.LIVE_MAIN),
            client_nonce=b"n" * 16,
        )
        answer, early = await handshake(sock, Role.CLIENT, hello)
        assert early == b""
        return sock, answer


# The timeouts only bound success paths here, so they are generous for loaded CI
# machines; a test whose point is that one fires shortens it with `plane_config_with`.
BASE_CONFIG = DataPlaneConfig(
    hello_timeout=5.0,
    agent_timeout=5.0,
    relay=RelayConfig(idle_timeout=60),
    limits=SessionLimits(per_account=4, per_device=8, per_channel=3),
)


def plane_config_with(**changes: Any) -> DataPlaneConfig:
    """The harness's configuration with some settings changed."""
    return replace(BASE_CONFIG, **changes)


@pytest.fixture
def plane_config() -> DataPlaneConfig:
    return BASE_CONFIG


@pytest.fixture
async def harness(plane_config: DataPlaneConfig) -> AsyncIterator[Harness]:
    key = SigningKey.generate()
    control = FakeControlPlane()
    agent = FakeAgent()
    now = [time.time()]
    plane = DataPlane(
        plane_config,
        key_ring=KeyRing([key.public_key]),
        grant_state=control,
        presence=control,
        publish_offer=agent.publish,
        clock=lambda: now[0],
    )
    harness = Harness(
        plane=plane,
        control=control,
        agent=agent,
        issuer=TokenIssuer(key, "test-relay"),
        key=key,
        now=now,
    )
    async with plane:
        try:
            yield harness
        finally:
            for sock in harness.sockets:
                sock.close()
            await agent.close()
