"""The ISAPI alert stream as an endless async iterator of `AlarmEvent`s.

One long-lived `GET /ISAPI/Event/notification/alertStream`; a per-read watchdog
(NVRs send a `videoloss inactive` heartbeat every few seconds) detects a dead
or stalled stream; every failure except bad credentials or a device without
the function reconnects with jittered exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

from nvrshare.firmware_shim.backends.isapi import events
from nvrshare.firmware_shim.backends.isapi.http import IsapiHttp, map_errors
from nvrshare.firmware_shim.errors import (
    AuthFailed,
    BadResponse,
    DeviceError,
    NotSupported,
    ShimError,
)
from nvrshare.firmware_shim.models import AlarmEvent, AlarmKind

__all__ = ["ALERT_PATH", "AlertHub", "alert_events", "is_heartbeat"]

ALERT_PATH = "/ISAPI/Event/notification/alertStream"
BACKOFF_START, BACKOFF_MAX = 0.5, 30.0
SUBSCRIBER_QUEUE = 256


async def alert_events(
    http: IsapiHttp, *, watchdog: float, utc_offset: timedelta, logger: logging.Logger
) -> AsyncIterator[AlarmEvent]:
    """Yield alarms for as long as the caller iterates (raises AuthFailed / NotSupported)."""
    delay = BACKOFF_START
    lost: set[int | None] = set()  # channels with video loss: their "inactive" is real
    while True:
        try:
            # The deadline covers connecting and the response head; once the
            # stream is up, the per-read watchdog takes over.
            async with (
                asyncio.timeout(http.timeout) as opening,
                http.stream("GET", ALERT_PATH, read_timeout=None) as response,
            ):
                opening.reschedule(None)
                parser = events.AlertStreamParser(
                    events.boundary_of(response.headers.get("Content-Type", ""))
                )
                while True:
                    with map_errors("alert stream"):
                        async with asyncio.timeout(watchdog):
                            chunk = await response.content.readany()
                    if not chunk:
                        raise BadResponse("alert stream ended")
                    for body in parser.feed(chunk):
                        delay = BACKOFF_START  # the stream is healthy again
                        try:
                            event = events.parse_alert(body, utc_offset=utc_offset)
                        except BadResponse as exc:
                            logger.warning("alert stream: skipped a part: %s", exc)
                            continue
                        if event is None or is_heartbeat(event, lost):
                            continue
                        yield event
        except (AuthFailed, NotSupported):
            raise
        except (DeviceError, TimeoutError) as exc:
            logger.info("alert stream: %r; reconnecting in %.1fs", exc, delay)
        await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter
        delay = min(BACKOFF_MAX, delay * 2)


def is_heartbeat(event: AlarmEvent, lost: set[int | None]) -> bool:
    """NVRs send `videoloss inactive` as a keep-alive; only a real loss can end.

    `lost` tracks channels whose video loss is active; it is updated here.
    """
    if event.kind is not AlarmKind.VIDEO_LOSS:
        return False
    if event.active:
        lost.add(event.channel)
        return False
    if event.channel in lost:
        lost.discard(event.channel)
        return False
    return True


class AlertHub:
    """One alert stream per device, shared by every subscriber.

    Recorders accept only a few concurrent alertStream ("arming") connections,
    so subscribers share one: it opens with the first subscriber and closes
    after the last one leaves.  A subscriber that stops reading loses its
    oldest events rather than holding the others back.
    """

    def __init__(self, source: Callable[[], AsyncIterator[AlarmEvent]]) -> None:
        self._source = source
        self._queues: set[asyncio.Queue[AlarmEvent | ShimError]] = set()
        self._task: asyncio.Task[None] | None = None

    async def subscribe(self) -> AsyncIterator[AlarmEvent]:
        queue: asyncio.Queue[AlarmEvent | ShimError] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self._queues.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._pump(), name="isapi.alert-stream")
        try:
            while True:
                item = await queue.get()
                if isinstance(item, ShimError):
                    raise item
                yield item
        finally:
            self._queues.discard(queue)
            if not self._queues and self._task is not None:
                self._task.cancel()
                self._task = None

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    async def _pump(self) -> None:
        try:
            async with contextlib.aclosing(self._source()) as events:  # type: ignore[type-var]
                async for event in events:
                    for queue in list(self._queues):
                        _offer(queue, event)
        except ShimError as exc:  # only what retrying cannot fix ends the stream
            for queue in list(self._queues):
                _offer(queue, exc)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _offer(queue: asyncio.Queue[AlarmEvent | ShimError], item: AlarmEvent | ShimError) -> None:
    if queue.full():
        with contextlib.suppress(asyncio.QueueEmpty):
            queue.get_nowait()
    queue.put_nowait(item)
