"""Typed refusals through the real processes, and a stopped share cutting a live session."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from nvrshare.client.errors import RelayRefused
from nvrshare.client.stream_cli import TokenCache
from nvrshare.client.streams import StreamRefused, open_session
from nvrshare.protocol.messages import SessionKind, SessionRequest
from nvrshare.protocol.reasons import RefusalReason
from tests.e2e.conftest import NEEDS_TOOLS, SLOW_PROCESSES, Product

pytestmark = [pytest.mark.e2e, pytest.mark.mosquitto, NEEDS_TOOLS, SLOW_PROCESSES]

OPTIONS = b"OPTIONS rtsp://127.0.0.1/live/1/main RTSP/1.0\r\nCSeq: 1\r\n\r\n"


async def _cli_refusal(product: Product, env: dict[str, str], *argv: str) -> str:
    name = f"{argv[0]}-{argv[argv.index('--channel') + 1]}"
    child = await product.children.start(
        name, *argv, "--device", product.serial,
        "--data", str(product.run.status["data_endpoint"]), env=env,
    )  # fmt: skip
    assert await child.wait(within=20) == 1, child.log_tail()
    return child.log_tail(3)


async def _metrics(product: Product) -> str:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
        http.get(str(product.run.status["metrics"])) as response,
    ):
        return await response.text()


async def test_refusals_are_typed_and_a_stopped_share_cuts_the_live_session(
    product: Product, tmp_path: Path
) -> None:
    """One product for all of it (each start costs seconds): CLI refusals, then the stop."""
    await _cli_processes_get_typed_refusals(product, tmp_path)
    await _stopping_a_share_cuts_the_live_session(product)


async def _cli_processes_get_typed_refusals(product: Product, tmp_path: Path) -> None:
    env = await product.login_cli("demo-friend")
    # Channel 3 is not shared at all; /metrics counts the refusal by its reason.
    key = 'nvrshare_relay_refusals_total{reason="channel_not_granted"}'
    assert key not in await _metrics(product)
    said = await _cli_refusal(product, env, "alarms", "--channel", "3")
    assert "refused: channel_not_granted" in said
    assert f"{key} 1" in await _metrics(product)
    # Channel 1 is shared, but not for two-way audio.
    audio = tmp_path / "hello.ul"
    audio.write_bytes(b"\xff" * 800)
    said = await _cli_refusal(product, env, "talk", "--channel", "1", "--in", str(audio))
    assert "refused: permission_denied" in said
    # Channel 2 is shared for playback only: no live view.
    said = await _cli_refusal(product, env, "alarms", "--channel", "2")
    assert "refused: permission_denied" in said
    # PTZ on channel 2 (playback only) is refused by the device, with its reason.
    ptz = await product.children.start(
        "ptz-2", "ptz", "--device", product.serial, "--channel", "2", "--pan", "0.5", env=env
    )
    assert await ptz.wait(within=20) == 1
    assert "permission_denied" in ptz.log_tail(3)


async def _cut_time(product: Product, change: Callable[[], Awaitable[object]]) -> float:
    """Open a live session on channel 1, make `change`; seconds until the session is cut."""
    story = product.story
    request = SessionRequest(device_serial=product.serial, channel=1, kind=SessionKind.LIVE_MAIN)
    async with await open_session(story.data, await story.tokens(), request) as session:
        session.writer.write(OPTIONS)
        await session.writer.drain()
        async with asyncio.timeout(5):
            answer = await session.reader.readuntil(b"\r\n\r\n")
        assert answer.startswith(b"RTSP/1.0 200")
        started = time.monotonic()  # from the owner's request (HTTP, to the relay process)
        await change()
        async with asyncio.timeout(10):
            while await session.reader.read(65536):
                pass
        return time.monotonic() - started


async def _stopping_a_share_cuts_the_live_session(product: Product) -> None:
    story = product.story
    share_id = (await story.friend.shared_with_me())["items"][0]["id"]
    revoked = 'nvrshare_relay_sessions_closed_total{reason="revoked"}'

    # Editing live view away from channel 1 (PTZ stays) cuts that live session.
    took = await _cut_time(
        product,
        lambda: story.owner.update_share(share_id, permissions={1: ["ptz"], 2: ["playback"]}),
    )
    print(f"owner removes live view → live session closed {took * 1000:.0f} ms later")
    assert took < 1.0, f"the session lived {took:.2f} s after live view was removed"
    assert f"{revoked} 1" in await _metrics(product)  # closed by the relay itself
    await story.owner.update_share(share_id, permissions={1: ["live_view", "ptz"], 2: ["playback"]})
    await story.wait_for_grant()
    story.tokens = TokenCache(story.friend, product.serial)  # the cached token is stale now

    # Stopping the share cuts it too; its token opens nothing any more.
    token = await story.tokens()
    took = await _cut_time(product, lambda: story.owner.revoke_share(share_id))
    print(f"owner stops the share → live session closed {took * 1000:.0f} ms later")
    assert took < 1.0, f"the session lived {took:.2f} s after the share stopped"
    assert f"{revoked} 2" in await _metrics(product)
    request = SessionRequest(device_serial=product.serial, channel=1, kind=SessionKind.LIVE_MAIN)
    with pytest.raises(StreamRefused) as refused:
        async with await open_session(story.data, token, request):
            pass
    assert refused.value.reason in {RefusalReason.REVOKED, RefusalReason.TOKEN_EXPIRED}
    print(f"the old token after the stop: refused: {refused.value.reason.value}")
    with pytest.raises(RelayRefused):
        await story.friend.issue_token(product.serial)
