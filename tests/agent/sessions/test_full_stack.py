"""The whole product path for a share, on loopback with real processes and real code:

control plane (accounts, binding, shares, tokens) → registry → mosquitto → the real
`Agent` (grant sync, SessionHandler wired by the agent) ← offer over MQTT ← the real
data plane ← the app's `LocalRtspEndpoint` ← ffprobe.  Then the owner stops the share:
the recipient's open session is cut by the agent when the new grant set arrives.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nvrshare.agent import Agent
from nvrshare.client.streams import LocalRtspEndpoint, RelayEndpoint, open_session
from nvrshare.protocol.codec import encode
from nvrshare.protocol.messages import (
    PtzAction,
    PtzCommand,
    PtzResult,
    SessionClose,
    SessionKind,
    SessionRequest,
)
from nvrshare.protocol.permissions import Permission
from nvrshare.protocol.reasons import CloseReason
from nvrshare.protocol.tokens import token_from_text
from nvrshare.protocol.topics import TopicKind
from nvrshare.relay.dataplane import DataPlane, DataPlaneConfig
from nvrshare.relay.services import RecipientKind, RecipientRef
from nvrshare.relay.services.dataplane_view import DataPlaneView
from nvrshare.simulators.recorder import RecorderSimConfig, RecorderSimulator
from tests.relay.registry.harness import CODE, RelaySide, relay_side
from tests.simulators.ffprobe import needs_ffprobe, probe
from tests.support.tls import make_certificate

pytestmark = [pytest.mark.e2e, pytest.mark.mosquitto]

SERIAL = "DEVSTREAM1"
PASSWORD = "a long enough password"
OPTIONS = b"OPTIONS rtsp://127.0.0.1/live/1/main RTSP/1.0\r\nCSeq: 1\r\n\r\n"


class SessionMessages:
    """The relay side's view of what agents report on up/session and up/alarm."""

    def __init__(self) -> None:
        self.received: list[tuple[str, object]] = []

    async def on_alarm(self, serial: str, event: object) -> None:
        self.received.append((serial, event))

    async def on_session_message(self, serial: str, message: object) -> None:
        self.received.append((serial, message))


MESSAGES = SessionMessages()


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[RelaySide, Agent, DataPlane]]:
    MESSAGES.received.clear()
    async with (
        relay_side(tmp_path, uplink=MESSAGES) as relay,
        RecorderSimulator(RecorderSimConfig(channels=2, password="rec-pw")) as recorder,
    ):
        recorder_table = {
            "backend": "sim",
            "username": "admin",
            "password": "rec-pw",
            "settings": {"channels": "2", "serial": SERIAL, "rtsp_base": recorder.rtsp.url("")},
        }
        view = DataPlaneView(relay.services.context)
        plane = DataPlane(
            DataPlaneConfig(host="127.0.0.1", port=0, agent_timeout=5.0),
            key_ring=relay.services.tokens.verifier().key_ring,
            grant_state=view,
            presence=view,
            publish_offer=relay.registry.publish_offer,
        )
        async with Agent(relay.agent_config(SERIAL, recorder=recorder_table)) as agent, plane:
            assert agent.control is not None
            async with asyncio.timeout(10):
                await agent.control.status.registered.wait()
            yield relay, agent, plane


async def wait_until(condition: object, limit: float = 15.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@needs_ffprobe
async def test_a_share_streams_through_everything_and_its_revocation_cuts_it(
    stack: tuple[RelaySide, Agent, DataPlane],
) -> None:
    relay, agent, plane = stack
    services = relay.services
    owner = await services.accounts.register(password=PASSWORD, name="owner-a")
    friend = await services.accounts.register(password=PASSWORD, name="friend-b")
    await services.devices.bind(owner, serial=SERIAL, verification_code=CODE, source="127.0.0.1")
    share = await services.shares.create(
        owner,
        serial=SERIAL,
        recipient=RecipientRef(kind=RecipientKind.NAME, value="friend-b"),
        permissions={1: Permission.LIVE_VIEW},
    )
    await services.shares.accept(friend, share.id)
    await wait_until(lambda: agent.grants.grant_for(friend.id, time.time()) is not None)
    issued = await services.tokens.issue(friend, SERIAL)
    token = token_from_text(issued.token)
    relay_endpoint = RelayEndpoint(host="127.0.0.1", port=plane.port)

    async def tokens() -> bytes:
        return token

    live = SessionRequest(device_serial=SERIAL, channel=1, kind=SessionKind.LIVE_MAIN)
    async with LocalRtspEndpoint(relay_endpoint, tokens, live, port=0) as endpoint:
        result = await probe(endpoint.url, seconds=2.5)
    assert (result.codec_name, result.width, result.height) == ("h264", 640, 360)
    assert result.frames >= 25

    session = await open_session(relay_endpoint, token, live)
    async with session:
        session.writer.write(OPTIONS)
        await session.writer.drain()
        async with asyncio.timeout(5):
            answer = await session.reader.readuntil(b"\r\n\r\n")
        assert answer.startswith(b"RTSP/1.0 200")
        await services.shares.revoke(owner, share.id)
        cut_at = time.monotonic()
        async with asyncio.timeout(10):
            while await session.reader.read(65536):
                pass
        took = time.monotonic() - cut_at
        print(f"share revoked → session cut {took * 1000:.0f} ms later")
        assert took < 1.0  # the issue: cut within 1 s of revocation
    await wait_until(lambda: agent.grants.grant_for(friend.id, time.time()) is None)
    await wait_until(
        lambda: any(
            isinstance(m, SessionClose) and m.reason is CloseReason.REVOKED
            for _, m in MESSAGES.received
        )
    )


async def test_ptz_over_mqtt_runs_only_with_the_ptz_grant(
    stack: tuple[RelaySide, Agent, DataPlane],
) -> None:
    relay, agent, _ = stack
    services = relay.services
    owner = await services.accounts.register(password=PASSWORD, name="owner-p")
    viewer = await services.accounts.register(password=PASSWORD, name="viewer-p")
    await services.devices.bind(owner, serial=SERIAL, verification_code=CODE, source="127.0.0.1")
    share = await services.shares.create(
        owner,
        serial=SERIAL,
        recipient=RecipientRef(kind=RecipientKind.NAME, value="viewer-p"),
        permissions={1: Permission.LIVE_VIEW},
    )
    await services.shares.accept(viewer, share.id)
    await wait_until(lambda: agent.grants.grant_for(viewer.id, time.time()) is not None)
    assert agent.recorder is not None

    async def command(account: object) -> PtzResult:
        issued = await services.tokens.issue(account, SERIAL)  # type: ignore[arg-type]
        order = PtzCommand(
            request_id=secrets.token_bytes(16),
            token=token_from_text(issued.token),
            channel=1,
            action=PtzAction.CONTINUOUS_MOVE,
            pan=0.5,
        )
        await relay.registry.publish(SERIAL, TopicKind.DOWN_PTZ, encode(order), retain=False)
        await wait_until(
            lambda: any(
                isinstance(m, PtzResult) and m.request_id == order.request_id
                for _, m in MESSAGES.received
            )
        )
        return next(
            m
            for _, m in MESSAGES.received
            if isinstance(m, PtzResult) and m.request_id == order.request_id
        )

    refused = await command(viewer)  # live view only: no PTZ
    assert (refused.ok, refused.reason) == (False, "permission_denied")
    assert not (await agent.recorder.ptz_status(1)).moving
    accepted = await command(owner)  # the owner holds every permission
    assert accepted.ok
    assert (await agent.recorder.ptz_status(1)).moving


async def test_the_agent_dials_a_tls_data_port_when_configured(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client_tls = ssl.create_default_context(cafile=str(cert))
    async with (
        relay_side(tmp_path, uplink=MESSAGES) as relay,
        RecorderSimulator(RecorderSimConfig(channels=1, password="rec-pw")) as recorder,
    ):
        view = DataPlaneView(relay.services.context)
        plane = DataPlane(
            DataPlaneConfig(host="127.0.0.1", port=0, agent_timeout=5.0, tls=server),
            key_ring=relay.services.tokens.verifier().key_ring,
            grant_state=view,
            presence=view,
            publish_offer=relay.registry.publish_offer,
        )
        async with plane:
            relay_table = {
                "broker_url": relay.broker.url,
                "provisioning_url": relay.provisioning_url,
                "data_endpoint": f"127.0.0.1:{plane.port}",
                "data_tls": True,
                "data_ca_file": str(cert),
            }
            recorder_table = {
                "backend": "sim",
                "username": "admin",
                "password": "rec-pw",
                "settings": {"channels": "1", "serial": SERIAL, "rtsp_base": recorder.rtsp.url("")},
            }
            config = relay.agent_config(SERIAL, relay=relay_table, recorder=recorder_table)
            assert config.data_tls
            assert config.data_ca_file == cert
            async with Agent(config) as agent:
                assert agent.control is not None
                async with asyncio.timeout(10):
                    await agent.control.status.registered.wait()
                services = relay.services
                owner = await services.accounts.register(password=PASSWORD, name="owner-t")
                await services.devices.bind(
                    owner, serial=SERIAL, verification_code=CODE, source="127.0.0.1"
                )
                await wait_until(lambda: agent.grants.grant_for(owner.id, time.time()) is not None)
                token = token_from_text((await services.tokens.issue(owner, SERIAL)).token)
                endpoint = RelayEndpoint(host="127.0.0.1", port=plane.port, tls=client_tls)
                live = SessionRequest(device_serial=SERIAL, channel=1, kind=SessionKind.LIVE_MAIN)
                async with await open_session(endpoint, token, live) as session:
                    session.writer.write(OPTIONS)
                    await session.writer.drain()
                    async with asyncio.timeout(5):
                        answer = await session.reader.readuntil(b"\r\n\r\n")
                assert answer.startswith(b"RTSP/1.0 200")
