"""What the services return: frozen records, one per thing the API shows.

Views are shaped by who is looking.  `ReceivedShare` (what a recipient sees)
has no remark field at all, so a remark cannot leak to a recipient through any
response built from it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from nvrshare.protocol.permissions import Permission

__all__ = [
    "Account",
    "AccountRef",
    "Channel",
    "DataEndpoint",
    "Device",
    "DeviceShares",
    "HistoryEntry",
    "IssuedToken",
    "OwnerShare",
    "Page",
    "ReceivedShare",
    "Session",
    "ShareState",
]

T = TypeVar("T")


class ShareState(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


@dataclass(frozen=True, kw_only=True, slots=True)
class AccountRef:
    """How one account is shown to another: its id and the names it registered."""

    id: str
    email: str | None
    phone: str | None
    name: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class Account:
    id: str
    email: str | None
    phone: str | None
    name: str | None
    region: str
    created_at: float

    def ref(self) -> AccountRef:
        return AccountRef(id=self.id, email=self.email, phone=self.phone, name=self.name)


@dataclass(frozen=True, kw_only=True, slots=True)
class Session:
    """A bearer session; `token` is only known right after login."""

    token: str
    account: Account
    expires_at: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Channel:
    number: int
    name: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Device:
    """A device as its owner (or the registry) sees it."""

    serial: str
    domain: str | None
    alias: str | None
    model: str
    firmware_version: str
    ip: str
    port: int
    online: bool
    last_seen: float | None
    channels: tuple[Channel, ...]
    owner_id: str | None
    share_epoch: int
    grant_version: int


@dataclass(frozen=True, kw_only=True, slots=True)
class OwnerShare:
    """One share as its owner sees it, remark included."""

    id: str
    device_serial: str
    recipient: AccountRef
    state: ShareState
    permissions: Mapping[int, Permission]
    remark: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True, kw_only=True, slots=True)
class DeviceShares:
    """"My shared devices": one device and every account it is shared with."""

    device: Device
    shares: tuple[OwnerShare, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class ReceivedShare:
    """One share as its recipient sees it: no remark, a recipient-local alias."""

    id: str
    device_serial: str
    domain: str | None
    model: str
    ip: str
    port: int
    online: bool
    last_seen: float | None
    channels: tuple[Channel, ...]
    sharer: AccountRef
    state: ShareState
    permissions: Mapping[int, Permission]
    alias: str | None
    created_at: float


@dataclass(frozen=True, kw_only=True, slots=True)
class HistoryEntry:
    account: AccountRef
    last_shared_at: float


@dataclass(frozen=True, kw_only=True, slots=True)
class DataEndpoint:
    """Where clients open sessions with a token: the relay's data port as advertised."""

    host: str
    port: int
    tls: bool

    def __post_init__(self) -> None:
        if not self.host or not 1 <= self.port <= 65535:
            raise ValueError("a data endpoint needs a host and a port in 1..65535")


@dataclass(frozen=True, kw_only=True, slots=True)
class IssuedToken:
    token: str
    device_serial: str
    expires_at: int
    share_epoch: int
    permissions: Mapping[int, Permission]
    data_endpoint: DataEndpoint | None = None  # None when no data port runs with this relay


@dataclass(frozen=True, kw_only=True, slots=True)
class Page(Generic[T]):
    """One page of a list; `next_cursor` is None on the last page."""

    items: tuple[T, ...]
    next_cursor: str | None
