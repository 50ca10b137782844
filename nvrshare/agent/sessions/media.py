"""Serving the non-RTSP session kinds over an accepted tunnel: two-way audio and alarms.

Talk: the tunnel carries raw G.711 bytes (8 kHz, one byte per sample) both
ways; what the app sends goes to the recorder's speaker in 20 ms frames, what
the recorder's microphone hears goes back.  Alarms: the tunnel carries
length-prefixed codec frames, one `AlarmEvent` each, for the channels the
session may see *at the time of the event* (the allowed set is re-read for
every event, so a narrowed grant takes effect at once).  Each function
returns why it ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from nvrshare.agent.sessions.tunnel import Tunnel
from nvrshare.firmware_shim.errors import ShimError
from nvrshare.firmware_shim.interface import TalkChannel
from nvrshare.firmware_shim.models import AlarmEvent as ShimAlarmEvent
from nvrshare.protocol.codec import encode
from nvrshare.protocol.framing import encode_frame
from nvrshare.protocol.messages import AlarmEvent

__all__ = ["TALK_FRAME_BYTES", "serve_alarms", "serve_talk"]

TALK_FRAME_BYTES = 160  # 20 ms of G.711 at 8 kHz
READ_SIZE = 4096


async def _first_done(named: dict[str, Coroutine[Any, Any, str]]) -> str:
    """Run the coroutines until the first ends; its result (or failure) says why."""
    tasks = [asyncio.create_task(coro, name=name) for name, coro in named.items()]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        task = next(iter(done))
        error = task.exception()
        if isinstance(error, OSError | ShimError):
            return f"{task.get_name()} failed: {error!r}"
        if error is not None:
            raise error
        return task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def serve_talk(tunnel: Tunnel, talk: TalkChannel, *, logger: logging.Logger) -> str:
    """Bridge the tunnel and an open talk channel until either ends."""

    async def speaker() -> str:
        pending = bytearray(tunnel.initial)
        eof = tunnel.peer_closed
        while True:
            while len(pending) >= TALK_FRAME_BYTES:
                await talk.write(bytes(pending[:TALK_FRAME_BYTES]))
                del pending[:TALK_FRAME_BYTES]
            if eof:
                if pending:
                    await talk.write(bytes(pending))
                return "app ended the talk"
            data = await tunnel.reader.read(READ_SIZE)
            eof = not data
            pending += data

    async def microphone() -> str:
        while True:
            frames = await talk.read()
            if not frames:
                return "recorder ended the talk"
            tunnel.writer.write(frames)
            await tunnel.writer.drain()

    try:
        return await _first_done({"talk.speaker": speaker(), "talk.mic": microphone()})
    finally:
        # Shielded: the device holds one talk session per channel, so a cancellation
        # while closing must not leave it open (the next talk would find it busy).
        with contextlib.suppress(ShimError):
            await asyncio.shield(talk.close())
        logger.debug("talk bridge closed")


async def serve_alarms(
    tunnel: Tunnel,
    events: AsyncIterator[ShimAlarmEvent],
    *,
    serial: str,
    allowed: Callable[[], frozenset[int]],
    logger: logging.Logger,
) -> str:
    """Stream alarm events for the allowed channels until the app leaves or the feed ends."""

    async def watch_app() -> str:
        # The app sends nothing on an alarm session; its EOF ends the session.
        while await tunnel.reader.read(READ_SIZE):
            pass
        return "app closed"

    async def forward() -> str:
        try:
            async for event in events:
                if event.channel is None or event.channel not in allowed():
                    continue
                message = AlarmEvent(
                    device_serial=serial,
                    channel=event.channel,
                    event_type=event.kind.value,
                    active=event.active,
                    timestamp=max(0, int(event.at.timestamp())),
                )
                tunnel.writer.write(encode_frame(encode(message)))
                await tunnel.writer.drain()
        finally:
            with contextlib.suppress(Exception):
                await events.aclose()  # type: ignore[attr-defined]
        return "alarm feed ended"

    if tunnel.peer_closed:
        return "app closed"
    reason = await _first_done({"alarms.app": watch_app(), "alarms.feed": forward()})
    logger.debug("alarm stream closed: %s", reason)
    return reason
