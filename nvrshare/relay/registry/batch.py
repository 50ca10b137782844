"""A batch of what devices sent: registrations and presence, applied together.

The registry's workers take what waits in their queue at once; a `Batch`
collects the registrations and presence updates among it so that each kind
is applied in one transaction, while each device's own messages keep their
order (devices are independent of each other).
"""

from __future__ import annotations

from nvrshare.protocol.messages import DeviceRegistration

__all__ = ["Batch", "Presence", "merged_presence"]

Presence = tuple[bool, float | None]  # online, last seen (None: leave it)


def merged_presence(earlier: Presence | None, online: bool, seen: float | None) -> Presence:
    """Two presence updates in a row as one: the later state, the latest "last seen"."""
    if earlier is None or seen is not None:
        return online, seen
    return online, earlier[1]


class Batch:
    """Registrations and presence updates of several devices, applied together.

    Per device at most one registration; presence that came before it goes
    to `before` (superseded if it is accepted: it marks the device online),
    presence after it to `after`.  Devices are independent, so only each
    device's own order matters.
    """

    def __init__(self) -> None:
        self.registrations: dict[str, tuple[DeviceRegistration, float]] = {}
        self.before: dict[str, Presence] = {}
        self.after: dict[str, Presence] = {}
        self.serials: set[str] = set()

    def register(self, registration: DeviceRegistration, now: float) -> None:
        self.registrations[registration.serial] = (registration, now)
        self.serials.add(registration.serial)

    def presence(self, serial: str, online: bool, now: float) -> None:
        updates = self.after if serial in self.registrations else self.before
        updates[serial] = merged_presence(updates.get(serial), online, now if online else None)
        self.serials.add(serial)
