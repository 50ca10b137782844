"""What the registry needs from the rest of the relay, as small Protocols.

`nvrshare.relay.services` provides all of them (`DeviceService`, `KeyStore`,
`EventBus`); naming only the calls the registry makes keeps it testable and
says exactly what it depends on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Protocol

from nvrshare.protocol.permissions import Permission
from nvrshare.protocol.signing import KeyRing, SigningKey

__all__ = [
    "DeviceDirectory",
    "EventSource",
    "GrantData",
    "RegistrationDecision",
    "RelayKeys",
]


class RegistrationDecision(Protocol):
    accepted: bool
    message: str
    grant_version: int

    @property
    def reason(self) -> Any: ...


class GrantData(Protocol):
    device_serial: str
    version: int
    share_epoch: int
    accounts: Mapping[str, Mapping[int, Permission]]
    revoked: tuple[tuple[str, int], ...]


class DeviceDirectory(Protocol):
    async def apply_registration(
        self,
        *,
        serial: str,
        domain: str | None,
        model: str,
        firmware_version: str,
        channels: Sequence[tuple[int, str]],
        ip: str,
        port: int,
        public_key: bytes,
        verification_code_hash: str | None = None,
        now: float,
    ) -> RegistrationDecision: ...

    async def apply_registrations(
        self, registrations: Sequence[Mapping[str, Any]], *, fresh_for: float = 0.0
    ) -> list[RegistrationDecision]: ...

    async def set_presence(
        self, presence: Mapping[str, tuple[bool, float | None]], *, fresh_for: float = 0.0
    ) -> None: ...

    async def grant_set_for(self, serial: str, *, now: float | None = None) -> GrantData | None: ...

    async def grant_sets_for(
        self, serials: Sequence[str], *, now: float | None = None
    ) -> Mapping[str, GrantData]: ...


class RelayKeys(Protocol):
    @property
    def signing_key(self) -> SigningKey: ...

    @property
    def key_ring(self) -> KeyRing: ...


class _Subscription(Protocol):
    def __aiter__(self) -> AsyncIterator[object]: ...

    def close(self) -> None: ...


class EventSource(Protocol):
    def subscribe(self) -> Any: ...
