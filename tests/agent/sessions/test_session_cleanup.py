"""The agent's end of a tunnel is closed on every path, including the racy ones.

A session task cancelled before its first step never runs its own cleanup;
the handler must still close the dialled socket (an unclosed StreamWriter is
a leaked fd, and a ResourceWarning that fails the suite at random).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from nvrshare.agent.sessions.errors import SessionRefused
from nvrshare.agent.sessions.tunnel import dial_relay
from nvrshare.client.streams import StreamRefused, open_session
from nvrshare.firmware_shim.backends.sim import SimRecorder
from nvrshare.protocol.messages import SessionKind, SessionOffer, SessionRequest
from nvrshare.protocol.permissions import Permission
from nvrshare.protocol.reasons import RefusalReason
from tests.agent.sessions.harness import ACCOUNT, SERIAL, Harness

LIVE = Permission.LIVE_VIEW


async def test_a_session_revoked_before_it_starts_still_closes_its_tunnel(
    tmp_path: Path, recorder: SimRecorder
) -> None:
    h = Harness(tmp_path, recorder)
    writers: list[asyncio.StreamWriter] = []
    dial = h._dial

    async def recording_dial(
        host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await dial(host, port)
        writers.append(writer)
        return reader, writer

    h.handler._dialer = recording_dial
    accepted = asyncio.Event()
    serving: list[asyncio.Task[None]] = []

    async def offer_then_revoke(offer: SessionOffer) -> None:
        # The serve task exists but has not run a single step when the revocation lands.
        await h.handler.on_session_offer(offer, h.uplink)
        serving.extend(h.handler._tasks)
        h.publish_grants({}, revoked_accounts=(ACCOUNT,))
        accepted.set()

    async def publish(offer: SessionOffer) -> None:
        task = asyncio.create_task(offer_then_revoke(offer))
        h._pending.add(task)
        task.add_done_callback(h._pending.discard)

    h._publish = publish  # type: ignore[method-assign]
    async with h.running():
        h.publish_grants({ACCOUNT: {1: LIVE}})
        wanted = SessionRequest(device_serial=SERIAL, channel=1, kind=SessionKind.LIVE_MAIN)
        try:
            session = await open_session(h.endpoint, h.token({1: LIVE}), wanted, time_limit=8)
        except StreamRefused:
            session = None
        await asyncio.wait_for(accepted.wait(), 5)
        # The handler's own done-callbacks were added before gather's, so they have run.
        await asyncio.gather(*serving, return_exceptions=True)
        assert writers
        assert all(w.transport.is_closing() for w in writers)
        assert not h.handler.sessions
        if session is not None:
            await session.close()


async def test_a_dial_that_times_out_is_refused_with_timeout() -> None:
    never = asyncio.Event()

    async def stuck(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        await never.wait()
        raise AssertionError

    offer = SessionOffer(
        session_id=bytes(16),
        token=b"t",
        request=SessionRequest(device_serial=SERIAL, channel=1, kind=SessionKind.LIVE_MAIN),
        relay_host="127.0.0.1",
        relay_port=9,
        session_secret=bytes(32),
        expires_at=int(time.time()) + 60,
    )
    with pytest.raises(SessionRefused) as caught:
        await dial_relay(offer, time_limit=0.05, dialer=stuck)
    assert caught.value.reason == RefusalReason.TIMEOUT
