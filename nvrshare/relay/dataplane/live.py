"""Live sessions as the data plane indexes them, and revocations as it remembers them."""

from __future__ import annotations

from dataclasses import dataclass, field

from nvrshare.relay.dataplane.admission import Admission
from nvrshare.relay.dataplane.relaying import RelaySession

__all__ = ["LiveSession", "Revocation"]


@dataclass(kw_only=True, slots=True, eq=False)
class LiveSession:
    """A paired session, as `revoke` and the metrics see it."""

    session_id: bytes = field(repr=False)
    admission: Admission
    relay: RelaySession
    started_at: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Revocation:
    """One `DataPlane.revoke` call: which sessions it stops, and when it happened."""

    at: float  # time.monotonic()
    device_serial: str
    account_id: str | None
    token_ids: frozenset[bytes]

    def matches(self, admission: Admission) -> bool:
        claims = admission.claims
        return (
            claims.device_serial == self.device_serial
            and (self.account_id is None or claims.account_id == self.account_id)
            and (not self.token_ids or claims.token_id in self.token_ids)
        )
