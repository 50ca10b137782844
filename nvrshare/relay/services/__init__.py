"""The relay's service layer: every business rule of accounts, devices and shares.

The HTTP API, the (later) web portal, the CLI and the device registry all call
these services; none of them decides who may do what on its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from nvrshare.relay.config import RelayConfig
from nvrshare.relay.services.accounts import AccountService
from nvrshare.relay.services.context import Clock, ServiceContext
from nvrshare.relay.services.devices import (
    DeviceService,
    GrantSetData,
    RegistrationOutcome,
    RegistrationRefusal,
)
from nvrshare.relay.services.events import (
    DeviceBound,
    DeviceRegistered,
    DeviceRemoved,
    EventBus,
    EventsLost,
    ShareChanged,
    ShareChangeKind,
)
from nvrshare.relay.services.keystore import KeyStore
from nvrshare.relay.services.shares import RecipientKind, RecipientRef, ShareService
from nvrshare.relay.services.sites import SiteService
from nvrshare.relay.services.tokens import TokenService
from nvrshare.relay.store import Store

__all__ = [
    "AccountService",
    "DeviceBound",
    "DeviceRegistered",
    "DeviceRemoved",
    "DeviceService",
    "EventBus",
    "EventsLost",
    "GrantSetData",
    "KeyStore",
    "RecipientKind",
    "RecipientRef",
    "RegistrationOutcome",
    "RegistrationRefusal",
    "Services",
    "ShareChangeKind",
    "ShareChanged",
    "ShareService",
    "SiteService",
    "TokenService",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class Services:
    """All services over one store, one key store, one event bus and one clock."""

    context: ServiceContext
    accounts: AccountService
    devices: DeviceService
    shares: ShareService
    tokens: TokenService
    sites: SiteService

    @property
    def events(self) -> EventBus:
        return self.context.events

    @property
    def keys(self) -> KeyStore:
        return self.context.keys

    @classmethod
    def build(
        cls,
        config: RelayConfig,
        store: Store,
        *,
        events: EventBus | None = None,
        keys: KeyStore | None = None,
        clock: Clock = time.time,
    ) -> Services:
        context = ServiceContext(
            config=config,
            store=store,
            events=events if events is not None else EventBus(),
            keys=keys if keys is not None else KeyStore(config.data_dir),
            clock=clock,
        )
        accounts = AccountService(context)
        shares = ShareService(context, accounts)
        devices = DeviceService(context)
        return cls(
            context=context,
            accounts=accounts,
            devices=devices,
            shares=shares,
            tokens=TokenService(context, shares),
            sites=SiteService(context, accounts, devices),
        )
