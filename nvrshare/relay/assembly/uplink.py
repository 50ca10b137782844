"""What devices report on `up/session`, routed to the part of the relay that waits for it.

- `PtzResult` → the PTZ endpoint waiting for that request id;
- `SessionRefuse` → the client waiting on the data port for that session: it
  gets the device's typed reason at once (e.g. `channel_not_granted` when the
  device's synced grant set says no) instead of `timeout` after
  `agent_timeout` seconds.  Only the device the session was offered to can
  refuse it.
- `SessionAccept` / `SessionClose`: informational here (the data plane sees
  the agent's connection itself); logged at debug level.

Alarms reach recipients through their alarm sessions, not through the relay.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from nvrshare.protocol.codec import Message
from nvrshare.protocol.messages import AlarmEvent, PtzResult, SessionRefuse
from nvrshare.relay.assembly.ptz import PtzGateway
from nvrshare.relay.dataplane import DataPlane

__all__ = ["DeviceUplink"]


class DeviceUplink:
    """The registry's `UplinkHandler` for the assembled relay."""

    def __init__(
        self,
        ptz: PtzGateway,
        plane: Callable[[], DataPlane | None],
        logger: logging.Logger | None = None,
    ) -> None:
        self._ptz = ptz
        self._plane = plane
        self._log = logger or logging.getLogger("nvrshare.relay.uplink")

    async def on_alarm(self, serial: str, event: AlarmEvent) -> None:
        del event
        self._log.debug("alarm from %s (delivered through alarm sessions)", serial)

    async def on_session_message(self, serial: str, message: Message) -> None:
        if isinstance(message, PtzResult):
            await self._ptz.on_session_message(serial, message)
        elif isinstance(message, SessionRefuse):
            self.refuse_pending(serial, message)
        else:
            self._log.debug("%s from %s", type(message).__name__, serial)

    def refuse_pending(self, serial: str, refusal: SessionRefuse) -> bool:
        """Fail the pending session `refusal` names, if `serial` is its device."""
        plane = self._plane()
        if plane is None:
            return False
        return plane.refuse_pending(serial, refusal.session_id, refusal.reason)
