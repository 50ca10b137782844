"""The RTSP server against ffprobe and a raw client: protocol, auth, pacing, faults."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import struct
from collections.abc import AsyncIterator, Mapping

import pytest

from nvrshare.simulators.h264clip import clip
from nvrshare.simulators.rtsp_server import RtspServer, RtspServerConfig, StreamSpec
from tests.simulators.ffprobe import needs_ffprobe, probe
from tests.simulators.rtsp_client import RawRtsp

LIVE = "/Streaming/Channels/101"


def resolver(path: str, query: Mapping[str, str]) -> StreamSpec | None:
    if path == LIVE:
        return StreamSpec(clip=clip(320, 180, seconds=1))
    if path == "/Streaming/tracks/101" and "starttime" in query:
        return StreamSpec(clip=clip(320, 180, seconds=1), duration=1.2)
    return None


@pytest.fixture
async def server() -> AsyncIterator[RtspServer]:
    async with RtspServer(RtspServerConfig(username="admin", password="pw"), resolver) as srv:
        yield srv


@pytest.fixture
async def open_server() -> AsyncIterator[RtspServer]:
    async with RtspServer(RtspServerConfig(username=""), resolver) as srv:
        yield srv


async def start_play(server: RtspServer, path: str = LIVE) -> tuple[RawRtsp, str]:
    client = await RawRtsp.connect(server.port)
    client.auth = (server.config.username, server.config.password)
    url = server.url(path)
    status, headers, body = await client.request("DESCRIBE", url, {"Accept": "application/sdp"})
    assert status == 200
    assert b"sprop-parameter-sets=" in body
    base = headers["content-base"]
    status, headers, _ = await client.request(
        "SETUP", base + "trackID=0", {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"}
    )
    assert status == 200
    assert "interleaved=0-1" in headers["transport"]
    session = headers["session"].split(";")[0]
    status, headers, _ = await client.request("PLAY", base, {"Session": session})
    assert status == 200
    assert "rtptime=" in headers["rtp-info"]
    return client, session


@needs_ffprobe
async def test_ffprobe_reads_live_stream_with_digest_auth(server: RtspServer) -> None:
    result = await probe(server.url(LIVE, with_credentials=True), seconds=2)
    assert (result.codec_name, result.width, result.height) == ("h264", 320, 180)
    assert result.frames >= 25


def video_frames(frames: list[tuple[int, bytes]]) -> list[bytes]:
    """The RTP packets that end a video frame (marker bit set)."""
    return [payload for channel, payload in frames if channel == 0 and payload[1] & 0x80]


async def test_stream_loops_with_continuous_timestamps(server: RtspServer) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    client, session = await start_play(server)
    # The clip is 25 frames (1 s): 30 frames cross a loop.  A generous deadline for a slow
    # machine; pacing is checked below against the time it took.
    frames = await client.read_frames(15.0, until=lambda got: len(video_frames(got)) >= 30)
    elapsed = loop.time() - started
    rtp = [payload for channel, payload in frames if channel == 0]
    sequences = [struct.unpack("!H", p[2:4])[0] for p in rtp]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(sequences))
    stamps = [struct.unpack("!I", p[4:8])[0] for p in video_frames(frames)]
    assert len(stamps) == 30
    # Paced at 25 fps, not sent as fast as possible: the 30th frame is due 29/25 s in.
    assert elapsed >= 29 / 25 - 0.05, elapsed
    assert all((b - a) & 0xFFFFFFFF == 3600 for a, b in itertools.pairwise(stamps))
    assert any(channel == 1 for channel, _ in frames)  # an RTCP sender report
    status, _, _ = await client.request("PAUSE", server.url(LIVE), {"Session": session})
    assert status == 200
    assert await client.read_frames(0.3) == []
    status, _, _ = await client.request("GET_PARAMETER", server.url(LIVE), {"Session": session})
    assert status == 200
    status, _, _ = await client.request("TEARDOWN", server.url(LIVE), {"Session": session})
    assert status == 200
    await client.close()


async def test_playback_ends_with_bye(server: RtspServer) -> None:
    client, _ = await start_play(server, "/Streaming/tracks/101?starttime=20260101T000000Z")
    frames = await client.read_frames(15, until_bye=True)
    video = [p for c, p in frames if c == 0 and p[1] & 0x80]
    assert 28 <= len(video) <= 31  # 1.2 s at 25 fps
    assert frames[-1][0] == 1
    assert frames[-1][1][-7] == 203  # the BYE closes the compound packet
    await client.close()


async def test_auth_is_required(server: RtspServer) -> None:
    client = await RawRtsp.connect(server.port)
    status, headers, _ = await client.request("OPTIONS", server.url(LIVE))
    assert status == 200
    assert "DESCRIBE" in headers["public"]
    status, headers, _ = await client.request("DESCRIBE", server.url(LIVE))
    assert status == 401
    assert headers["www-authenticate"].startswith("Digest realm=")
    client.auth, client.challenge = ("admin", "wrong"), headers["www-authenticate"]
    status, _, _ = await client.request("DESCRIBE", server.url(LIVE))
    assert status == 401
    await client.close()


async def test_protocol_errors(open_server: RtspServer) -> None:
    client = await RawRtsp.connect(open_server.port)
    assert (await client.request("DESCRIBE", open_server.url("/nope")))[0] == 404
    udp = {"Transport": "RTP/AVP;unicast;client_port=5000-5001"}
    assert (await client.request("SETUP", open_server.url(LIVE), udp))[0] == 461
    assert (await client.request("PLAY", open_server.url(LIVE), {"Session": "X"}))[0] == 454
    assert (await client.request("RECORD", open_server.url(LIVE)))[0] == 501
    client.writer.write(b"GARBAGE\r\n\r\n")
    status, _, _ = await client.response()
    assert status == 400
    assert await client.reader.read() == b""  # and the connection is closed
    await client.close()


async def test_fault_refuse_connections(open_server: RtspServer) -> None:
    open_server.faults.refuse_connections = True
    client = await RawRtsp.connect(open_server.port)
    with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
        await client.request("OPTIONS", open_server.url(LIVE))
    await client.close()


async def test_fault_drop_and_stall(open_server: RtspServer) -> None:
    client, _ = await start_play(open_server)
    assert await client.read_frames(10, until=bool)  # media flows (at least one packet)
    open_server.faults.stall = True
    await client.read_frames(0.2)  # what was already in flight
    assert await client.read_frames(0.3) == []  # connection open, no media
    open_server.faults.stall = False
    assert await client.read_frames(10, until=bool)  # media flows again
    assert open_server.drop_streams() == 1
    assert await client.reader.read() == b""
    await client.close()


async def test_fault_slow_responses(open_server: RtspServer) -> None:
    open_server.faults.response_delay = 0.3
    client = await RawRtsp.connect(open_server.port)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await client.request("OPTIONS", open_server.url(LIVE)))[0] == 200
    assert loop.time() - started >= 0.3
    await client.close()


async def test_garbage_never_takes_the_server_down(open_server: RtspServer) -> None:
    payloads = [
        b"\x00" * 70_000,
        b"$\x00\xff\xff" + b"x" * 10,
        b"DESCRIBE rtsp://[::1/x RTSP/1.0\r\nCSeq: 1\r\n\r\n",
        b"SETUP * RTSP/1.0\r\nContent-Length: 99999999\r\n\r\n",
        bytes(range(256)) * 10,
    ]
    for payload in payloads:
        reader, writer = await asyncio.open_connection("127.0.0.1", open_server.port)
        writer.write(payload)
        # Either a 400 and a close, or (a partial frame) the server waits for more.
        with contextlib.suppress(ConnectionError, TimeoutError):
            await writer.drain()
            async with asyncio.timeout(0.5):
                await reader.read(4096)
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    client = await RawRtsp.connect(open_server.port)
    assert (await client.request("OPTIONS", open_server.url(LIVE)))[0] == 200
    await client.close()


async def test_idle_connections_are_dropped_but_playing_ones_are_not() -> None:
    # Short, as the test needs it to fire, but well above a slow machine's request gaps.
    config = RtspServerConfig(username="", idle_timeout=1.0)
    async with RtspServer(config, resolver) as srv:
        idle = await RawRtsp.connect(srv.port)
        client, session = await start_play(srv)
        async with asyncio.timeout(10):
            assert await idle.reader.read() == b""  # silent and not playing: closed
        # Playing, silent client: still served for twice the idle timeout, and still open.
        frames = await client.read_frames(2.0)
        assert len(frames) >= 5
        status, _, _ = await client.request("GET_PARAMETER", srv.url(LIVE), {"Session": session})
        assert status == 200
        await idle.close()
        await client.close()
