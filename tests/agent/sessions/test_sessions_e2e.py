"""Sessions end to end on loopback: client → real relay data plane → agent → gate → simulated NVR.

ffprobe decodes through the whole chain (live and a playback window); an
open session is cut when the grant set revokes it; talk and alarms carry
what the grant allows and nothing more.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nvrshare.client.streams import (
    LocalRtspEndpoint,
    StreamRefused,
    open_session,
    read_alarms,
    talk,
)
from nvrshare.firmware_shim.backends.sim import SimRecorder
from nvrshare.firmware_shim.models import AlarmKind
from nvrshare.protocol.messages import SessionClose, SessionKind, SessionRefuse, SessionRequest
from nvrshare.protocol.permissions import Permission, TimeWindow
from nvrshare.protocol.reasons import CloseReason, RefusalReason
from nvrshare.simulators.recorder import RecorderSimulator
from tests.agent.sessions.harness import ACCOUNT, SERIAL, Harness
from tests.relay.registry.harness import eventually
from tests.simulators.ffprobe import needs_ffprobe, probe
from tests.support.tls import make_certificate

LIVE = Permission.LIVE_VIEW
OPTIONS = b"OPTIONS rtsp://127.0.0.1/live/1/main RTSP/1.0\r\nCSeq: 1\r\n\r\n"


@pytest.fixture
async def harness(tmp_path: Path, recorder: SimRecorder) -> AsyncIterator[Harness]:
    h = Harness(tmp_path, recorder)
    async with h.running():
        yield h


def request(
    kind: SessionKind = SessionKind.LIVE_MAIN, channel: int = 1, window: TimeWindow | None = None
) -> SessionRequest:
    return SessionRequest(device_serial=SERIAL, channel=channel, kind=kind, playback_window=window)


def yesterday_window(minutes: int = 10) -> TimeWindow:
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    start = day + timedelta(hours=9)
    return TimeWindow(
        start=int(start.timestamp()), end=int((start + timedelta(minutes=minutes)).timestamp())
    )


@needs_ffprobe
async def test_ffprobe_decodes_a_shared_live_channel_through_the_relay(harness: Harness) -> None:
    h = harness
    h.publish_grants({ACCOUNT: {1: LIVE}})
    token = h.token({1: LIVE})

    async def tokens() -> bytes:
        return token

    async with LocalRtspEndpoint(h.endpoint, tokens, request(), port=0) as endpoint:
        result = await probe(endpoint.url, seconds=2.5)
    assert (result.codec_name, result.width, result.height) == ("h264", 640, 360)
    assert result.frames >= 25
    assert endpoint.sessions_opened >= 1
    assert not endpoint.refusals


@needs_ffprobe
async def test_ffprobe_decodes_a_playback_window_through_the_relay(harness: Harness) -> None:
    h = harness
    window = yesterday_window()
    h.publish_grants({ACCOUNT: {1: Permission.PLAYBACK}})
    token = h.token({1: Permission.PLAYBACK})

    async def tokens() -> bytes:
        return token

    wanted = request(SessionKind.PLAYBACK, window=window)
    async with LocalRtspEndpoint(h.endpoint, tokens, wanted, port=0) as endpoint:
        result = await probe(endpoint.url, seconds=2.5)
    assert result.codec_name == "h264"
    assert result.frames >= 25


async def test_the_relay_refuses_what_the_token_does_not_grant(harness: Harness) -> None:
    h = harness
    h.publish_grants({ACCOUNT: {1: LIVE, 2: LIVE}})
    with pytest.raises(StreamRefused) as caught:
        await open_session(h.endpoint, h.token({1: LIVE}), request(channel=2))
    assert caught.value.reason == RefusalReason.CHANNEL_NOT_GRANTED
    assert not h.offers


async def rtsp_options(
    session_reader: asyncio.StreamReader, writer: asyncio.StreamWriter, initial: bytes
) -> bytes:
    writer.write(OPTIONS)
    await writer.drain()
    data = initial
    async with asyncio.timeout(5):
        while b"\r\n\r\n" not in data:
            data += await session_reader.read(4096)
    return data


@pytest.mark.parametrize("how", ["revoke_account", "unshare_channel", "disable_service"])
async def test_a_new_grant_set_cuts_open_sessions(harness: Harness, how: str) -> None:
    h = harness
    h.publish_grants({ACCOUNT: {1: LIVE, 2: LIVE}})
    session = await open_session(h.endpoint, h.token({1: LIVE}), request())
    async with session:
        answer = await rtsp_options(session.reader, session.writer, session.initial)
        assert answer.startswith(b"RTSP/1.0 200")
        assert len(h.handler.sessions) == 1
        cut_at = time.monotonic()
        if how == "revoke_account":
            h.publish_grants({}, revoked_accounts=(ACCOUNT,))
        elif how == "unshare_channel":
            h.publish_grants({ACCOUNT: {2: LIVE}})
        else:
            h.publish_grants({ACCOUNT: {1: LIVE}}, service_enabled=False)
        async with asyncio.timeout(10):
            while await session.reader.read(65536):
                pass
        took = time.monotonic() - cut_at  # includes the grant file's fsync
        print(f"{how}: session cut {took * 1000:.0f} ms after the new grant set")
        assert took < 1.0  # as the relay side: revocation reaches a live session within 1 s
    closed = await h.uplink.wait_for(SessionClose)
    assert isinstance(closed, SessionClose)
    expected = CloseReason.SERVICE_DISABLED if how == "disable_service" else CloseReason.REVOKED
    assert closed.reason == expected
    assert not h.handler.sessions
    with pytest.raises(StreamRefused):  # and new sessions are refused
        await open_session(h.endpoint, h.token({1: LIVE}), request(), time_limit=8)


async def test_talk_reaches_the_speaker_only_with_two_way_audio(
    harness: Harness, recorder_sim: RecorderSimulator
) -> None:
    h = harness
    h.publish_grants({ACCOUNT: {1: Permission.TWO_WAY_AUDIO}})
    audio = bytes(range(256)) * 5
    talk_request = request(SessionKind.TALK)
    async with await open_session(h.endpoint, h.token(), talk_request) as session:
        heard = await talk(session, audio, pace=False, linger=0.3)
    assert recorder_sim.talk_received(1) == audio
    assert heard  # the recorder's microphone came back

    h.publish_grants({ACCOUNT: {1: LIVE}})
    with pytest.raises(StreamRefused):
        await open_session(h.endpoint, h.token(), talk_request, time_limit=8)


async def test_alarms_stream_only_granted_channels(
    harness: Harness, recorder_sim: RecorderSimulator
) -> None:
    h = harness
    h.publish_grants({ACCOUNT: {1: Permission.ALARM, 2: LIVE}})
    device = recorder_sim.device
    async with await open_session(h.endpoint, h.token(), request(SessionKind.ALARM)) as session:
        events = read_alarms(session)
        # The agent subscribes once the session is accepted; an alarm raised before
        # that reaches nobody, so wait for the subscription (it queues every later one).
        await eventually(lambda: device.subscriber_count, 15)
        device.trigger_alarm(AlarmKind.MOTION, channel=2)
        device.trigger_alarm(AlarmKind.VIDEO_LOSS, channel=1)
        async with asyncio.timeout(10):
            first = await anext(events)
        assert (first.channel, first.event_type, first.active) == (1, "video_loss", True)
        assert first.device_serial == SERIAL
        h.publish_grants({ACCOUNT: {2: LIVE}})  # alarms no longer shared: the stream ends
        async with asyncio.timeout(10):
            rest = [event async for event in events]
        assert rest == []


async def test_sessions_work_over_a_tls_data_port(tmp_path: Path, recorder: SimRecorder) -> None:
    cert, key = make_certificate(tmp_path)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    h = Harness(tmp_path / "agent", recorder, tls=(server, client))
    async with h.running():
        h.publish_grants({ACCOUNT: {1: LIVE}})
        async with await open_session(h.endpoint, h.token({1: LIVE}), request()) as session:
            answer = await rtsp_options(session.reader, session.writer, session.initial)
    assert answer.startswith(b"RTSP/1.0 200")
    assert h.dials == 1


async def test_busy_device_refuses_extra_sessions(
    harness: Harness, recorder_sim: RecorderSimulator
) -> None:
    h = harness
    h.publish_grants({ACCOUNT: {1: LIVE | Permission.TWO_WAY_AUDIO}})
    token = h.token()
    limit = h.handler.config.max_sessions_per_token
    sessions = [await open_session(h.endpoint, token, request()) for _ in range(limit)]
    local_talk = recorder_sim.device.talk_open(1)  # someone at the recorder holds the speaker
    try:
        results = await asyncio.gather(
            open_session(h.endpoint, token, request(), time_limit=8),  # one token, too many
            open_session(h.endpoint, h.token(), request(SessionKind.TALK), time_limit=8),
            return_exceptions=True,
        )
        assert all(isinstance(r, StreamRefused) for r in results), results
        refusals = [m.reason for _, m in h.uplink.sent if isinstance(m, SessionRefuse)]
        assert refusals == [RefusalReason.DEVICE_BUSY] * 2
    finally:
        local_talk.close()
        for session in sessions:
            await session.close()


async def test_a_revocation_during_setup_is_not_missed(harness: Harness) -> None:
    h = harness
    h.publish_grants({ACCOUNT: {1: LIVE}})
    h.during_dial = lambda: h.publish_grants({}, revoked_accounts=(ACCOUNT,))
    try:
        session = await open_session(h.endpoint, h.token({1: LIVE}), request(), time_limit=8)
    except StreamRefused:
        pass  # the relay may learn it before pairing, or not: either way nothing is served
    else:
        async with session, asyncio.timeout(3):
            while await session.reader.read(65536):
                pass
    refusal = await h.uplink.wait_for(SessionRefuse)
    assert isinstance(refusal, SessionRefuse)
    assert refusal.reason == RefusalReason.REVOKED
    assert not h.handler.sessions
