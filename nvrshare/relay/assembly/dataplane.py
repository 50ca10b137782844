"""The data plane as a `Relay` component, wired to the control plane's event bus.

The data plane admits a session once, from the token and the share epoch;
after that only `DataPlane.revoke` (or closing a `LiveSession`) ends it.  So
this component follows the relay's events and closes, within one event's
latency (milliseconds), every live session that a share change took away:

- `ShareChanged.revoked` / `DeviceRemoved`: those accounts' sessions on the
  device are closed at once, before any store read;
- then, for every change on a device with live sessions, the device's grant
  set is re-read and each live session is checked against it (a permission
  edited away, e.g. live view removed from channel 1, ends that session only);
- `EventsLost` (the follower fell behind): every device with live sessions is
  re-checked the same way.

The agent enforces the same grant set on the device side when its new grant
set arrives; this is the relay's half, and it does not wait for the device.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from nvrshare.protocol.messages import SessionOffer
from nvrshare.protocol.permissions import Permission
from nvrshare.relay.assembly.settings import DataPortSettings
from nvrshare.relay.dataplane import CloseReason, DataPlane, DataPlaneConfig
from nvrshare.relay.errors import RelayError
from nvrshare.relay.services.dataplane_view import DataPlaneView
from nvrshare.relay.services.events import DeviceRemoved, EventsLost, ShareChanged

__all__ = ["DataPlaneComponent", "RevocationFollower"]

OfferSink = Callable[[SessionOffer], Any]


class RevocationFollower:
    """Applies control-plane share changes to the data plane's live sessions."""

    def __init__(self, plane: DataPlane, services: Any, logger: logging.Logger) -> None:
        self._plane = plane
        self._services = services
        self._log = logger

    async def run(self) -> None:
        with self._services.events.subscribe() as subscription:
            async for event in subscription:
                try:
                    await self.apply(event)
                except RelayError as exc:  # the store is busy: the agent still cuts its side
                    self._log.warning("could not re-check live sessions: %s", exc.message)
                except Exception:  # one bad event must not stop revocations for good
                    self._log.exception("applying %r failed", event)

    async def apply(self, event: object) -> None:
        if isinstance(event, ShareChanged | DeviceRemoved):
            serial = event.device_serial
            if isinstance(event, DeviceRemoved):
                self._plane.revoke(serial)
            for account_id in event.revoked:
                self._plane.revoke(serial, account_id=account_id)
            await self.recheck(serial)
        elif isinstance(event, EventsLost):
            self._log.warning("missed %d relay events: re-checking live sessions", event.dropped)
            for serial in {s.admission.claims.device_serial for s in self._plane.live_sessions}:
                await self.recheck(serial)

    async def recheck(self, serial: str) -> int:
        """Close live sessions on `serial` that its current grant set no longer allows."""
        live = [s for s in self._plane.live_sessions if s.admission.claims.device_serial == serial]
        if not live:
            return 0
        grants = await self._services.devices.grant_set_for(serial)
        accounts = grants.accounts if grants is not None else {}
        closed = 0
        for session in live:
            request = session.admission.request
            matrix = accounts.get(session.admission.claims.account_id, {})
            allowed = matrix.get(request.channel, Permission(0))
            if not allowed & request.required_permission:
                session.relay.close(CloseReason.REVOKED)
                closed += 1
        if closed:
            self._log.info("closed %d session(s) on %s after a share change", closed, serial)
        return closed


class DataPlaneComponent:
    """`Relay` component: the data port, offers through the device plane, revocations.

    `offers` returns the callable that delivers a `SessionOffer` to a device
    (the registry's `publish_offer`); it is looked up per offer, so the device
    plane may be entered before or after this component.
    """

    def __init__(
        self,
        settings: DataPortSettings,
        offers: Callable[[], OfferSink | None],
        logger: logging.Logger | None = None,
    ) -> None:
        self.settings = settings
        self._offers = offers
        self._log = logger or logging.getLogger("nvrshare.relay.dataplane")
        self.plane: DataPlane | None = None

    def __call__(self, relay: Any) -> contextlib.AbstractAsyncContextManager[DataPlane]:
        return self._run(relay)

    async def _publish_offer(self, offer: SessionOffer) -> None:
        publish = self._offers()
        if publish is None:
            raise ConnectionError("the device plane is not running")
        await publish(offer)

    @contextlib.asynccontextmanager
    async def _run(self, relay: Any) -> AsyncIterator[DataPlane]:
        settings = self.settings
        view = DataPlaneView(relay.services.context)
        plane = DataPlane(
            DataPlaneConfig(
                host=settings.host,
                port=settings.listen_port(relay.config.http_port),
                advertised_host=settings.advertised_host,
                advertised_port=settings.advertised_port,
                agent_timeout=settings.agent_timeout,
                tls=settings.tls_context(),
            ),
            # Verification keys only; the relay's signing key never reaches the data plane.
            key_ring=relay.services.tokens.verifier().key_ring,
            grant_state=view,
            presence=view,
            publish_offer=self._publish_offer,
            logger=self._log,
        )
        follower = RevocationFollower(plane, relay.services, self._log)
        async with plane:
            task = asyncio.create_task(follower.run(), name="relay.dataplane.revocations")
            self.plane = plane
            self._log.info("data port listening on %s:%d", settings.host, plane.port)
            try:
                yield plane
            finally:
                self.plane = None
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                view.close()  # stops following the relay's events
