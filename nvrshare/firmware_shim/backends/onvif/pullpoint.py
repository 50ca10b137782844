"""PullPoint alarm delivery: subscribe, long-poll, renew before expiry, resubscribe on failure.

onvif-zeep-async's `PullPointManager` renews from loop timers and reports a lost
subscription through a callback; an async iterator needs the opposite shape, so
this module drives the same SOAP operations itself. Each iteration owns its own
subscription and its own two service proxies (PullPoint and SubscriptionManager
bound to the subscription address), so several consumers never share state.

Renewal happens between pulls: a pull never waits past the renewal time, and a
renewal is due at 80 % of the lifetime the device granted. Any device failure
ends the subscription (courtesy Unsubscribe, best effort) and a new one is made
after an exponential backoff; `AuthFailed` and `NotSupported` end the iterator
because retrying cannot fix them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from onvif import ONVIFCamera, ONVIFService

from nvrshare.firmware_shim.errors import AuthFailed, BadResponse, DeviceError, NotSupported
from nvrshare.firmware_shim.models import AlarmEvent

from ._errors import map_errors
from .events import ChannelResolver, parse_notifications

__all__ = ["PullPointSettings", "pull_alarm_events"]

_EVENTS_NS = "http://www.onvif.org/ver10/events/wsdl"
_RENEW_FRACTION = 0.8
_MAX_NOTIFICATIONS = 1000
_MAX_ADDRESS = 2048


@dataclass(frozen=True, kw_only=True, slots=True)
class PullPointSettings:
    """Timing of the PullPoint loop, in seconds.

    pull_timeout: how long one PullMessages may wait for events on the device.
    subscription_seconds: lifetime requested at subscribe and renew.
    request_timeout: bound on every other request (and added to the pull's).
    initial_backoff / max_backoff: delay before resubscribing, doubling up to the max.
    """

    pull_timeout: float = 20.0
    subscription_seconds: float = 60.0
    request_timeout: float = 10.0
    message_limit: int = 100
    initial_backoff: float = 0.5
    max_backoff: float = 30.0


def _duration(seconds: float) -> str:
    return f"PT{max(1, int(seconds))}S"


def _lifetime(result: Any, fallback: float) -> float:
    current, termination = (
        getattr(result, "CurrentTime", None),
        getattr(result, "TerminationTime", None),
    )
    if isinstance(current, dt.datetime) and isinstance(termination, dt.datetime):
        with contextlib.suppress(TypeError):  # naive vs aware from a sloppy camera
            seconds = (termination - current).total_seconds()
            if seconds > 0:
                return seconds
    return fallback


class _Subscription:
    """One live PullPoint subscription and the two proxies bound to its address."""

    def __init__(
        self,
        *,
        pullpoint: ONVIFService,
        manager: ONVIFService,
        lifetime: float,
        settings: PullPointSettings,
    ) -> None:
        self._pullpoint = pullpoint
        self._manager = manager
        self._settings = settings
        self._loop = asyncio.get_running_loop()
        self._renew_at = self._loop.time() + lifetime * _RENEW_FRACTION

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, camera: ONVIFCamera, settings: PullPointSettings, logger: logging.Logger
    ) -> AsyncIterator[_Subscription]:
        with map_errors("CreatePullPointSubscription"):
            async with asyncio.timeout(settings.request_timeout):
                events = await camera.create_events_service()
                result = await events.CreatePullPointSubscription(
                    {"InitialTerminationTime": _duration(settings.subscription_seconds)}
                )
            address = str(result.SubscriptionReference.Address._value_1).strip()
        parts = urlsplit(address)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or len(address) > _MAX_ADDRESS
        ):
            raise BadResponse("CreatePullPointSubscription: unusable subscription address")
        services: list[ONVIFService] = []
        try:
            with map_errors("PullPoint setup"):
                for binding in ("PullPointSubscriptionBinding", "SubscriptionManagerBinding"):
                    service = ONVIFService(
                        address,
                        camera.user,
                        camera.passwd,
                        str(Path(camera.wsdl_dir) / "events.wsdl"),
                        camera.encrypt,
                        no_cache=True,
                        dt_diff=camera.dt_diff,
                        binding_name=f"{{{_EVENTS_NS}}}{binding}",
                        read_timeout=int(settings.pull_timeout + settings.request_timeout) + 1,
                    )
                    services.append(service)
                    await service.setup()
            subscription = cls(
                pullpoint=services[0],
                manager=services[1],
                lifetime=_lifetime(result, settings.subscription_seconds),
                settings=settings,
            )
            yield subscription
        finally:
            if len(services) == 2:
                await _unsubscribe(services[1], settings, logger)
            for service in services:
                with contextlib.suppress(Exception):
                    await service.close()

    async def pull(self) -> list[tuple[str, Any]]:
        """Renew when due, then one long poll; (topic, message) pairs in arrival order."""
        # Pull timeouts are whole seconds (what every camera parses), so renew a little
        # early rather than let a pull run past the renewal time.
        if self._loop.time() >= self._renew_at - 1.0:
            await self._renew()
        wait = max(1.0, min(self._settings.pull_timeout, self._renew_at - self._loop.time()))
        with map_errors("PullMessages"):
            async with asyncio.timeout(wait + self._settings.request_timeout):
                result = await self._pullpoint.PullMessages(
                    {
                        "Timeout": dt.timedelta(seconds=int(wait)),
                        "MessageLimit": self._settings.message_limit,
                    }
                )
            notifications = list(getattr(result, "NotificationMessage", None) or [])
            return [
                (str(getattr(message.Topic, "_value_1", "") or ""), message.Message._value_1)
                for message in notifications[:_MAX_NOTIFICATIONS]
                if message.Topic is not None and message.Message is not None
            ]

    async def _renew(self) -> None:
        requested = self._settings.subscription_seconds
        with map_errors("Renew"):
            async with asyncio.timeout(self._settings.request_timeout):
                result = await self._manager.Renew({"TerminationTime": _duration(requested)})
        self._renew_at = self._loop.time() + _lifetime(result, requested) * _RENEW_FRACTION


async def _unsubscribe(
    manager: ONVIFService, settings: PullPointSettings, logger: logging.Logger
) -> None:
    # A courtesy: the subscription expires on the device anyway.
    try:
        with map_errors("Unsubscribe"):
            async with asyncio.timeout(min(settings.request_timeout, 5.0)):
                await manager.Unsubscribe()
    except DeviceError as exc:
        logger.debug("onvif: Unsubscribe failed: %s", exc)


async def pull_alarm_events(
    camera: ONVIFCamera,
    resolver: Callable[[], ChannelResolver],
    settings: PullPointSettings,
    *,
    logger: logging.Logger,
) -> AsyncIterator[AlarmEvent]:
    """Alarm events from PullPoint subscriptions, for as long as the caller iterates."""
    backoff = settings.initial_backoff
    while True:
        try:
            async with _Subscription.open(camera, settings, logger) as subscription:
                backoff = settings.initial_backoff
                while True:
                    started = asyncio.get_running_loop().time()
                    notifications = await subscription.pull()
                    events = parse_notifications(
                        notifications, resolver(), now=dt.datetime.now(dt.UTC)
                    )
                    for event in events:
                        yield event
                    if not notifications and asyncio.get_running_loop().time() - started < 0.05:
                        # A device that ignores Timeout must not turn this into a busy loop.
                        await asyncio.sleep(min(1.0, settings.pull_timeout))
        except (AuthFailed, NotSupported):
            raise
        except DeviceError as exc:
            logger.warning("onvif: alarm subscription failed (%s); retrying in %.1fs", exc, backoff)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, settings.max_backoff)
