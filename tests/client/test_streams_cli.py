"""The stream verbs end to end: real control plane (tokens), real data plane, agent, simulated NVR.

The CLI logs in with the stored session, fetches share tokens from the
relay's HTTP API, and opens sessions on the data port; ffprobe reads `view`'s
local URL; `talk` reaches the recorder's speaker; `alarms` prints events;
refusals exit 1 with the typed reason.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nvrshare.cli import build_parser
from nvrshare.client import stream_cli
from nvrshare.client.sdk import RelayClient
from nvrshare.client.session_file import SavedSession, save_session
from nvrshare.firmware_shim.backends.sim import SimRecorder
from nvrshare.firmware_shim.models import AlarmKind
from nvrshare.protocol.messages import SessionRefuse
from nvrshare.protocol.permissions import ALL_PERMISSIONS, Permission
from nvrshare.protocol.reasons import RefusalReason
from nvrshare.relay.app import Relay
from nvrshare.simulators.recorder import RecorderSimConfig, RecorderSimulator
from tests.agent.sessions.harness import SERIAL, Harness
from tests.client.conftest import PASSWORD, register_device
from tests.simulators.ffprobe import needs_ffprobe, probe

pytestmark = pytest.mark.e2e


@pytest.fixture
async def recorder_sim() -> AsyncIterator[RecorderSimulator]:
    async with RecorderSimulator(RecorderSimConfig(channels=2, password="pw-rec")) as sim:
        yield sim


class Stack:
    def __init__(self, relay: Relay, harness: Harness, account_id: str) -> None:
        self.relay = relay
        self.harness = harness
        self.account_id = account_id

    def argv(self, verb: str, *extra: str) -> list[str]:
        assert self.harness.plane is not None
        return [verb, "--device", SERIAL, "--data", f"127.0.0.1:{self.harness.plane.port}", *extra]

    async def run(self, verb: str, *extra: str) -> int:
        args = build_parser().parse_args(self.argv(verb, *extra))
        return int(await args.func(args))


@pytest.fixture
async def stack(
    relay: Relay,
    recorder_sim: RecorderSimulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Stack]:
    await register_device(relay.services, SERIAL, code="CODE42", channels=2)
    async with RelayClient(relay.url) as client:
        await client.register(name="owner1", password=PASSWORD, region="EU")
        login = await client.login("owner1", PASSWORD)
        client.token = login["token"]
        await client.add_device(SERIAL, "CODE42")
        issued = await client.issue_token(SERIAL)
    monkeypatch.setenv("NVRSHARE_HOME", str(tmp_path / "home"))
    save_session(
        SavedSession(
            relay=relay.url,
            token=login["token"],
            account_id=login["account"]["id"],
            expires_at=float(login["expires_at"]),
        )
    )
    backend = SimRecorder(
        recorder_sim.device,
        rtsp_base=recorder_sim.rtsp.url(""),
        username="admin",
        password="pw-rec",
        logger=logging.getLogger("test.recorder"),
    )
    harness = Harness(
        tmp_path / "agent", backend, token_keys=relay.services.tokens.verifier().key_ring
    )
    harness.state.epoch = int(issued["share_epoch"])
    async with backend, harness.running():
        yield Stack(relay, harness, login["account"]["id"])


@needs_ffprobe
async def test_view_serves_a_local_rtsp_url_that_ffprobe_decodes(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.harness.publish_grants({stack.account_id: {1: ALL_PERMISSIONS}})
    # Port 0: `view` binds a free port itself and prints its URL (no port to race for).
    view = asyncio.create_task(
        stack.run("view", "--channel", "1", "--listen", "127.0.0.1:0", "--duration", "20")
    )
    try:
        printed = ""
        async with asyncio.timeout(15):
            while (url := re.search(r"rtsp://127\.0\.0\.1:\d+/\S+", printed)) is None:
                assert not view.done(), (view, printed)
                await asyncio.sleep(0.05)
                printed += capsys.readouterr().out
        result = await probe(url[0], seconds=2.5)
        assert (result.codec_name, result.frames >= 25) == ("h264", True)
    finally:
        view.cancel()
        await asyncio.gather(view, return_exceptions=True)


def pcm_wav(path: Path, seconds: float) -> bytes:
    frames = int(8000 * seconds)
    pcm = b"".join(
        (3000 if (i // 40) % 2 else -3000).to_bytes(2, "little", signed=True) for i in range(frames)
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(pcm)
    return stream_cli.pcm16_to_ulaw(pcm)


async def test_talk_sends_the_file_to_the_speaker(
    stack: Stack, recorder_sim: RecorderSimulator, tmp_path: Path
) -> None:
    stack.harness.publish_grants({stack.account_id: {1: Permission.TWO_WAY_AUDIO}})
    expected = pcm_wav(tmp_path / "hello.wav", 0.4)
    out = tmp_path / "heard.ul"
    code = await stack.run(
        "talk", "--in", str(tmp_path / "hello.wav"), "--out", str(out), "--linger", "0.3"
    )
    assert code == 0
    assert recorder_sim.talk_received(1) == expected
    assert out.stat().st_size > 0


async def test_refusals_exit_1_with_the_reason(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.harness.publish_grants({stack.account_id: {1: Permission.LIVE_VIEW}})
    pcm_wav(tmp_path / "a.wav", 0.1)
    # The recorder has two channels: the relay itself refuses channel 3.
    code = await stack.run("talk", "--channel", "3", "--in", str(tmp_path / "a.wav"))
    assert code == 1
    assert "refused: channel_not_granted" in capsys.readouterr().err
    assert not stack.harness.offers

    # The owner's token allows talk on channel 2, the device's synced grant does not: the
    # agent refuses with its typed reason on up/session; the relay does not relay that
    # reason yet, so the client sees the relay's timeout.
    code = await stack.run("talk", "--channel", "2", "--in", str(tmp_path / "a.wav"))
    assert code == 1
    assert "refused: timeout" in capsys.readouterr().err
    refusals = [m for _, m in stack.harness.uplink.sent if isinstance(m, SessionRefuse)]
    assert [r.reason for r in refusals] == [RefusalReason.CHANNEL_NOT_GRANTED]
    assert stack.harness.dials == 0


async def test_alarms_prints_events_until_the_device_ends_the_stream(
    stack: Stack, recorder_sim: RecorderSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.harness.publish_grants({stack.account_id: {1: Permission.ALARM}})
    alarms = asyncio.create_task(stack.run("alarms", "--json"))
    # An alarm raised before the agent subscribes reaches nobody: wait for the
    # subscription (it queues every later alarm), failing loudly if it never comes.
    deadline = time.monotonic() + 15
    while not recorder_sim.device.subscriber_count:
        assert not alarms.done(), alarms
        assert time.monotonic() < deadline, "the agent never subscribed to the recorder's alarms"
        await asyncio.sleep(0.02)
    recorder_sim.device.trigger_alarm(AlarmKind.MOTION, channel=1)
    printed = ""
    deadline = time.monotonic() + 10
    while '"motion"' not in printed:
        assert time.monotonic() < deadline, f"no alarm printed: {printed!r}"
        await asyncio.sleep(0.02)
        printed += capsys.readouterr().out
    stack.harness.publish_grants(
        {stack.account_id: {1: Permission.LIVE_VIEW}}, service_enabled=False
    )
    assert await asyncio.wait_for(alarms, 10) == 0


async def test_ptz_without_a_relay_endpoint_says_so(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await stack.run("ptz", "--pan", "0.5")
    assert code == 1
    assert "no PTZ endpoint" in capsys.readouterr().err


def test_ulaw_encoding_matches_g711() -> None:
    samples = [0, -1, 32767, -32768, 1000, -1000]
    pcm = b"".join(s.to_bytes(2, "little", signed=True) for s in samples)
    assert stream_cli.pcm16_to_ulaw(pcm) == bytes([0xFF, 0x7F, 0x80, 0x00, 0xCE, 0x4E])


def test_audio_input_formats(tmp_path: Path) -> None:
    ulaw = tmp_path / "in.ul"
    ulaw.write_bytes(b"\x01\x02")
    assert stream_cli.read_ulaw_audio(ulaw) == b"\x01\x02"
    stereo = tmp_path / "stereo.wav"
    with wave.open(str(stereo), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(44100)
        out.writeframes(b"\x00" * 400)
    with pytest.raises(stream_cli.UsageError, match="8 kHz mono"):
        stream_cli.read_ulaw_audio(stereo)
    (tmp_path / "x.mp3").write_bytes(b"ID3")
    with pytest.raises(stream_cli.UsageError, match="neither"):
        stream_cli.read_ulaw_audio(tmp_path / "x.mp3")


def test_endpoint_parsing() -> None:
    assert stream_cli.parse_endpoint("relay.example:9000", default_port=1).port == 9000
    assert stream_cli.parse_endpoint("[::1]", default_port=8481).host == "::1"
    assert stream_cli.parse_endpoint("127.0.0.1:0", default_port=8554).port == 0
    with pytest.raises(stream_cli.UsageError):
        stream_cli.parse_endpoint("host:notaport", default_port=1)


def test_the_advertised_data_endpoint_is_used_and_validated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NVRSHARE_DATA", raising=False)
    parse = stream_cli.advertised_endpoint
    endpoint, tls = parse({"host": "relay.example", "port": 7443, "tls": True}) or (None, None)
    assert (endpoint, tls) == (stream_cli.RelayEndpoint(host="relay.example", port=7443), True)
    assert parse("relay.example:9000") == (
        stream_cli.RelayEndpoint(host="relay.example", port=9000), False
    )
    assert parse(None) is None
    for hostile in (
        {"host": "", "port": 1, "tls": False}, {"host": "h", "port": 0, "tls": False},
        {"host": "h", "port": True, "tls": False}, {"host": "h", "port": 1, "tls": "yes"},
        {"host": "h" * 300, "port": 1, "tls": False}, {"port": 1}, 7, ["h", 1],
    ):  # fmt: skip
        with pytest.raises(stream_cli.UsageError):
            parse(hostile)

    def args(**values: object) -> argparse.Namespace:
        return argparse.Namespace(**{"data": None, "data_tls": False, "data_ca": None, **values})

    issued = {"data_endpoint": {"host": "127.0.0.1", "port": 7443, "tls": True}}
    chosen = stream_cli._data_endpoint(args(), "http://relay.example:8480", issued)
    assert (chosen.host, chosen.port) == ("127.0.0.1", 7443)
    assert chosen.tls is not None  # the relay said TLS: verified against the system CAs
    chosen = stream_cli._data_endpoint(args(data="other:1"), "http://relay.example", issued)
    assert (chosen.host, chosen.port, chosen.tls) == ("other", 1, None)  # explicit wins
    chosen = stream_cli._data_endpoint(args(data_tls=True), "http://relay.example", {})
    assert (chosen.host, chosen.port) == ("relay.example", stream_cli.DEFAULT_DATA_PORT)
    assert chosen.tls is not None
    with pytest.raises(stream_cli.UsageError, match="CA"):
        stream_cli._data_endpoint(args(data_ca="/nonexistent.pem"), "http://r", {})


async def test_token_cache_refreshes_before_expiry_and_after_its_uses() -> None:
    class FakeClient:
        calls = 0

        async def issue_token(self, serial: str) -> dict[str, object]:
            FakeClient.calls += 1
            return {"token": "AAAA", "expires_at": time.time() + (10 if self.calls == 1 else 300)}

    cache = stream_cli.TokenCache(FakeClient(), SERIAL, max_uses=3)  # type: ignore[arg-type]
    await cache()
    await cache()  # the first expires within the refresh margin: fetched again
    await cache()
    assert cache.fetched == 2
    await cache()
    await cache()  # the second token's fourth use: a fresh one
    assert cache.fetched == 3


def test_verbs_are_registered() -> None:
    parser = build_parser()
    for verb in ("view", "playback", "talk", "ptz", "alarms"):
        args = parser.parse_args(
            [
                verb,
                "--device",
                SERIAL,
                *(
                    ["--from", "2026-01-01T00:00", "--to", "2026-01-01T00:10"]
                    if verb == "playback"
                    else ["--in", "x.wav"]
                    if verb == "talk"
                    else []
                ),
            ]
        )
        assert isinstance(args, argparse.Namespace)
        assert "not built" not in repr(args.func)


async def test_bad_playback_times_fail_before_any_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NVRSHARE_HOME", str(tmp_path / "nobody"))
    for times in (
        ["--from", "yesterday", "--to", "today"],
        ["--from", "2026-01-01T10:00", "--to", "2026-01-01T09:00"],
    ):
        args = build_parser().parse_args(["playback", "--device", SERIAL, *times])
        assert await args.func(args) == 2
    assert "error:" in capsys.readouterr().err
