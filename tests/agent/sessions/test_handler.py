"""The agent's own verdict on offers: every refusal reason, and a compromised relay widens nothing.

Offers are handed to the handler directly, as a relay (honest or not) would
publish them; a refused offer must never make the agent dial out.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nvrshare.agent.config import config_from_mapping
from nvrshare.agent.sessions.authorize import Authorizer, ReplayGuard
from nvrshare.agent.sessions.config import SessionConfig, session_config_for
from nvrshare.agent.sessions.errors import SessionRefused
from nvrshare.firmware_shim.backends.sim import SimRecorder
from nvrshare.protocol.messages import (
    PtzAction,
    PtzCommand,
    PtzResult,
    SessionKind,
    SessionRefuse,
    SessionRequest,
)
from nvrshare.protocol.permissions import ALL_PERMISSIONS, Permission, TimeWindow
from nvrshare.protocol.reasons import RefusalReason
from nvrshare.protocol.signing import SigningKey
from nvrshare.protocol.tokens import Audience, TokenVerifier
from tests.agent.sessions.harness import ACCOUNT, OTHER, SERIAL, Harness
from tests.support.net import free_port

LIVE = Permission.LIVE_VIEW


@pytest.fixture
async def harness(tmp_path: Path, recorder: SimRecorder) -> AsyncIterator[Harness]:
    h = Harness(tmp_path, recorder)
    async with h.running():
        yield h


def live(channel: int = 1) -> SessionRequest:
    return SessionRequest(device_serial=SERIAL, channel=channel, kind=SessionKind.LIVE_MAIN)


async def refusal_for(h: Harness, token: bytes, request: SessionRequest) -> RefusalReason:
    before = h.dials
    await h.handler.on_session_offer(h.offer(token, request), h.uplink)
    refusals = [m for _, m in h.uplink.sent if isinstance(m, SessionRefuse)]
    assert refusals, "the agent accepted"
    assert h.dials == before, "a refused offer must not dial the relay"
    assert not h.handler.sessions
    return refusals[-1].reason


def forge_signature(token: bytes) -> bytes:
    return token[:-1] + bytes([token[-1] ^ 0x01])


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unshared_channel", RefusalReason.CHANNEL_NOT_GRANTED),
        ("token_lacks_channel", RefusalReason.CHANNEL_NOT_GRANTED),
        ("missing_permission", RefusalReason.PERMISSION_DENIED),
        ("expired_token", RefusalReason.TOKEN_EXPIRED),
        ("forged_signature", RefusalReason.TOKEN_INVALID),
        ("unknown_key", RefusalReason.TOKEN_INVALID),
        ("other_device", RefusalReason.WRONG_DEVICE),
        ("revoked_account", RefusalReason.REVOKED),
        ("revoked_token", RefusalReason.REVOKED),
        ("stale_epoch", RefusalReason.REVOKED),
        ("not_in_synced_set", RefusalReason.PERMISSION_DENIED),
        ("service_disabled", RefusalReason.SERVICE_DISABLED),
        ("outside_playback_window", RefusalReason.OUTSIDE_PLAYBACK_WINDOW),
    ],
)
async def test_agent_refuses_with_a_typed_reason(
    harness: Harness, case: str, expected: RefusalReason
) -> None:
    h = harness
    request = live(1)
    grants: dict[str, dict[int, Permission]] = {ACCOUNT: {1: LIVE}}
    token = h.token({1: ALL_PERMISSIONS, 2: ALL_PERMISSIONS})  # a relay may sign too much
    options: dict[str, object] = {}
    if case == "unshared_channel":
        request = live(2)
    elif case == "token_lacks_channel":
        grants = {ACCOUNT: {1: LIVE, 2: LIVE}}
        token, request = h.token({1: LIVE}), live(2)
    elif case == "missing_permission":
        now = int(time.time())
        window = TimeWindow(start=now - 7200, end=now - 3600)
        request = SessionRequest(
            device_serial=SERIAL, channel=1, kind=SessionKind.PLAYBACK, playback_window=window
        )
    elif case == "expired_token":
        token = h.token(ttl=60, issued=time.time() - 120)
    elif case == "forged_signature":
        token = forge_signature(token)
    elif case == "unknown_key":
        token = h.token(key=SigningKey.generate())
    elif case == "other_device":
        token = h.token(device="OTHERDEVICE0001")
    elif case == "revoked_account":
        options["revoked_accounts"] = (ACCOUNT,)
    elif case == "revoked_token":
        claims = TokenVerifier(h.grants.pinned_keys, Audience.AGENT).verify(token, now=time.time())
        options["revoked_token_ids"] = (claims.token_id,)
    elif case == "stale_epoch":
        options["epoch"] = 5
    elif case == "not_in_synced_set":
        grants = {OTHER: {1: LIVE}}
    elif case == "service_disabled":
        options["service_enabled"] = False
    elif case == "outside_playback_window":
        now = int(time.time())
        grants = {ACCOUNT: {1: LIVE | Permission.PLAYBACK}}
        options["playback_window"] = TimeWindow(start=now - 7200, end=now - 3600)
        request = SessionRequest(
            device_serial=SERIAL,
            channel=1,
            kind=SessionKind.PLAYBACK,
            playback_window=TimeWindow(start=now - 3000, end=now - 2000),
        )
    h.publish_grants(grants, **options)  # type: ignore[arg-type]
    assert await refusal_for(h, token, request) == expected


async def test_no_grant_set_yet_means_nothing_is_served(harness: Harness) -> None:
    assert await refusal_for(harness, harness.token(), live(1)) == RefusalReason.SERVICE_DISABLED


async def test_replayed_session_id_is_refused(harness: Harness) -> None:
    h = harness
    h.publish_grants({ACCOUNT: {1: LIVE}})
    offer = h.offer(h.token(), live(1), port=free_port())  # nothing listens there
    await h.handler.on_session_offer(offer, h.uplink)
    first = [m for _, m in h.uplink.sent if isinstance(m, SessionRefuse)]
    assert [r.reason for r in first] == [RefusalReason.TIMEOUT]
    assert h.dials == 1
    await h.handler.on_session_offer(offer, h.uplink)
    second = [m for _, m in h.uplink.sent if isinstance(m, SessionRefuse)]
    assert second[-1].reason == RefusalReason.REPLAYED
    assert h.dials == 1


async def test_expired_offer_is_refused(harness: Harness) -> None:
    h = harness
    h.publish_grants({ACCOUNT: {1: LIVE}})
    offer = h.offer(h.token(), live(1))
    stale = dataclasses.replace(offer, expires_at=int(time.time()) - 1)
    await h.handler.on_session_offer(stale, h.uplink)
    refusal = await h.uplink.wait_for(SessionRefuse)
    assert isinstance(refusal, SessionRefuse)
    assert refusal.reason == RefusalReason.TIMEOUT
    assert h.dials == 0


def test_token_allowance_is_bounded(tmp_path: Path) -> None:
    harness = Harness(tmp_path, SimRecorder())
    harness.publish_grants({ACCOUNT: {1: LIVE}})
    authorizer = Authorizer(harness.grants, SERIAL, ReplayGuard(max_uses_per_token=2))
    token, now = harness.token(), time.time()
    for _ in range(2):
        authorizer.admit(token=token, request=live(1), session_id=secrets.token_bytes(16), now=now)
    with pytest.raises(SessionRefused) as caught:
        authorizer.admit(token=token, request=live(1), session_id=secrets.token_bytes(16), now=now)
    assert caught.value.reason == RefusalReason.REPLAYED


def test_replay_memory_is_bounded_and_expires() -> None:
    guard = ReplayGuard(max_entries=3)
    for i in range(10):
        assert guard.claim_id(bytes([i]), expires_at=100, now=0)
    assert not guard.claim_id(bytes([9]), expires_at=100, now=0)
    assert guard.claim_id(bytes([9]), expires_at=300, now=200)  # expired, forgotten


def ptz(
    h: Harness, token: bytes, action: PtzAction = PtzAction.CONTINUOUS_MOVE, **fields: object
) -> PtzCommand:
    defaults: dict[str, object] = {"pan": 0.5} if action is PtzAction.CONTINUOUS_MOVE else {}
    return PtzCommand(
        request_id=secrets.token_bytes(16),
        token=token,
        channel=1,
        action=action,
        **{**defaults, **fields},
    )  # type: ignore[arg-type]


async def last_ptz(h: Harness) -> PtzResult:
    results = [m for _, m in h.uplink.sent if isinstance(m, PtzResult)]
    return results[-1]


async def test_ptz_runs_only_with_the_ptz_grant(harness: Harness, recorder: SimRecorder) -> None:
    h = harness
    h.publish_grants({ACCOUNT: {1: LIVE}})
    await h.handler.on_ptz_command(ptz(h, h.token()), h.uplink)
    refused = await last_ptz(h)
    assert (refused.ok, refused.reason) == (False, RefusalReason.PERMISSION_DENIED)
    assert not (await recorder.ptz_status(1)).moving

    h.publish_grants({ACCOUNT: {1: LIVE | Permission.PTZ}})
    command = ptz(h, h.token())
    await h.handler.on_ptz_command(command, h.uplink)
    accepted = await last_ptz(h)
    assert (accepted.ok, accepted.request_id) == (True, command.request_id)
    assert (await recorder.ptz_status(1)).moving
    await h.handler.on_ptz_command(command, h.uplink)  # the same request again
    assert (await last_ptz(h)).reason == RefusalReason.REPLAYED
    await h.handler.on_ptz_command(ptz(h, h.token(), PtzAction.STOP), h.uplink)
    assert (await last_ptz(h)).ok
    assert not (await recorder.ptz_status(1)).moving
    await h.handler.on_ptz_command(ptz(h, h.token(), PtzAction.GOTO_PRESET, preset=99), h.uplink)
    failed = await last_ptz(h)
    assert (failed.ok, failed.reason) == (False, RefusalReason.BAD_REQUEST)


async def test_ptz_token_signed_by_an_unknown_key_does_nothing(
    harness: Harness, recorder: SimRecorder
) -> None:
    h = harness
    h.publish_grants({ACCOUNT: {1: Permission.PTZ}})
    await h.handler.on_ptz_command(ptz(h, h.token(key=SigningKey.generate())), h.uplink)
    assert (await last_ptz(h)).reason == RefusalReason.TOKEN_INVALID
    assert not (await recorder.ptz_status(1)).moving


async def test_offers_naming_an_unknown_relay_are_not_dialled(
    tmp_path: Path, recorder: SimRecorder
) -> None:
    h = Harness(tmp_path, recorder)
    h.handler.config = dataclasses.replace(
        h.handler.config, allowed_relays=frozenset({("relay.example", 7000)})
    )
    h.publish_grants({ACCOUNT: {1: LIVE}})
    async with h.running():
        assert await refusal_for(h, h.token(), live(1)) == RefusalReason.BAD_REQUEST


def test_agent_session_config_dials_only_its_configured_relay(tmp_path: Path) -> None:
    mapping: dict[str, object] = {
        "serial": SERIAL,
        "domain": "dev1",
        "verification_code": "ABCDEF",
        "state_dir": str(tmp_path),
        "relay": {
            "broker_url": "mqtt://127.0.0.1:1884",
            "provisioning_url": "http://127.0.0.1:9/api/v1/provision",
            "data_endpoint": "relay.example:7000",
        },
        "recorder": {"backend": "sim"},
    }
    config = session_config_for(config_from_mapping(mapping, "test"))
    assert config.allowed_relays == frozenset({("relay.example", 7000)})
    del mapping["relay"]["data_endpoint"]  # type: ignore[attr-defined]
    assert session_config_for(config_from_mapping(mapping, "test")).allowed_relays == frozenset()
    with pytest.raises(ValueError, match="at least 1"):
        SessionConfig(max_sessions=0)
