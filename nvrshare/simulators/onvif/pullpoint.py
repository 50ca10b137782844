"""PullPoint subscriptions: bounded, expiring queues of event messages.

A subscription lives until its termination time (monotonic seconds, renewable)
or an Unsubscribe. Each one queues at most `max_queue` messages and drops the
oldest beyond that, like a camera's ring buffer. Publishing wakes long-polling
PullMessages calls through a per-subscription `asyncio.Event`, which binds to no
loop until awaited, so publishing stays a plain synchronous call.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections import deque
from dataclasses import dataclass, field


class SubscriptionError(Exception):
    """Unknown or expired subscription, or no room for a new one."""


@dataclass(frozen=True, kw_only=True, slots=True)
class EventMessage:
    """One ONVIF notification: a topic plus Source and Data SimpleItems."""

    topic: str
    utc_time: dt.datetime
    operation: str = "Changed"
    source: tuple[tuple[str, str], ...] = ()
    data: tuple[tuple[str, str], ...] = ()


@dataclass(kw_only=True, slots=True)
class PullPointSubscription:
    id: str
    expires_at: float
    queue: deque[EventMessage]
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    def take(self, limit: int) -> list[EventMessage]:
        """Dequeue up to `limit` messages, oldest first."""
        taken = [self.queue.popleft() for _ in range(min(limit, len(self.queue)))]
        if not self.queue:
            self.wakeup.clear()
        return taken


class PullPointBroker:
    """All live subscriptions of one camera."""

    def __init__(
        self,
        *,
        max_subscriptions: int = 16,
        max_queue: int = 256,
        max_termination: float = 3600.0,
    ) -> None:
        self._max_subscriptions = max_subscriptions
        self._max_queue = max_queue
        self._max_termination = max_termination
        self._subscriptions: dict[str, PullPointSubscription] = {}
        self._closed = False

    def __len__(self) -> int:
        return len(self._subscriptions)

    @property
    def closed(self) -> bool:
        return self._closed

    def create(
        self, now: float, *, seconds: float, initial: list[EventMessage] | tuple[()] = ()
    ) -> PullPointSubscription:
        """A new subscription lasting `seconds` (bounded), pre-loaded with `initial`."""
        self.expire(now)
        if self._closed:
            raise SubscriptionError("the camera is shutting down")
        if len(self._subscriptions) >= self._max_subscriptions:
            raise SubscriptionError("too many subscriptions")
        subscription = PullPointSubscription(
            id=secrets.token_hex(8),
            expires_at=now + self._bounded(seconds),
            queue=deque(initial, maxlen=self._max_queue),
        )
        if subscription.queue:
            subscription.wakeup.set()
        self._subscriptions[subscription.id] = subscription
        return subscription

    def get(self, subscription_id: str, now: float) -> PullPointSubscription:
        self.expire(now)
        subscription = self._subscriptions.get(subscription_id)
        if subscription is None:
            raise SubscriptionError("unknown or expired subscription")
        return subscription

    def renew(self, subscription_id: str, now: float, *, seconds: float) -> PullPointSubscription:
        subscription = self.get(subscription_id, now)
        subscription.expires_at = now + self._bounded(seconds)
        return subscription

    def unsubscribe(self, subscription_id: str, now: float) -> None:
        subscription = self.get(subscription_id, now)
        del self._subscriptions[subscription_id]
        subscription.wakeup.set()

    def publish(self, message: EventMessage, now: float) -> int:
        """Queue `message` on every live subscription; returns how many got it."""
        self.expire(now)
        for subscription in self._subscriptions.values():
            subscription.queue.append(message)
            subscription.wakeup.set()
        return len(self._subscriptions)

    def expire(self, now: float) -> None:
        for subscription_id in [
            sid for sid, sub in self._subscriptions.items() if sub.expires_at <= now
        ]:
            self._subscriptions.pop(subscription_id).wakeup.set()

    def open(self) -> None:
        """Accept subscriptions again (a restarted camera starts with none)."""
        self._closed = False

    def close(self) -> None:
        """Wake every long poll so the server can shut down promptly."""
        self._closed = True
        for subscription in self._subscriptions.values():
            subscription.wakeup.set()
        self._subscriptions.clear()

    def _bounded(self, seconds: float) -> float:
        if seconds <= 0:
            raise SubscriptionError("termination time is in the past")
        return min(seconds, self._max_termination)
