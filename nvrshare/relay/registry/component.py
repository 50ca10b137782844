"""The device plane as one relay component: broker + registry + provisioning endpoint.

    relay = Relay(config, components=[DevicePlane(DevicePlaneSettings())])

Entering (after the relay's services are up): start the embedded mosquitto
(or reach the configured broker URL), provision the relay's own broker
account, start the `Registry` on the relay's services and event bus, and
serve `POST /api/v1/provision` on its own loopback-by-default HTTP site
(devices talk to it; put TLS in front in production).  Leaving stops them in
reverse order.  `settings_from_mapping` reads the `[broker]` / `[devices]`
TOML tables with clear errors.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import select

from nvrshare.relay.app import SHUTDOWN_GRACE
from nvrshare.relay.broker import BrokerError, BrokerSettings, RelayBroker, open_broker
from nvrshare.relay.registry.claims import Manifest
from nvrshare.relay.registry.provisioning import (
    ProvisioningConfig,
    ProvisioningService,
    provisioning_routes,
)
from nvrshare.relay.registry.registry import Registry, RegistryConfig, UplinkHandler
from nvrshare.relay.services.secrets_hash import hash_secret_async
from nvrshare.relay.store import schema

__all__ = [
    "DevicePlane",
    "DevicePlaneSettings",
    "RunningDevicePlane",
    "pinned_key_reader",
    "settings_from_mapping",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class DevicePlaneSettings:
    """broker: where devices' MQTT goes (embedded mosquitto by default).
    provisioning: claim policy; manifest_path: an operator CSV (see `Manifest`).
    http_host/http_port: the provisioning endpoint (port 0 = any free port).
    """

    broker: BrokerSettings = field(default_factory=BrokerSettings)
    provisioning: ProvisioningConfig = field(default_factory=ProvisioningConfig)
    manifest_path: Path | None = None
    http_host: str = "127.0.0.1"
    http_port: int = 0
    share_group: str = "relay"


@dataclass(frozen=True, kw_only=True, slots=True)
class RunningDevicePlane:
    broker: RelayBroker
    registry: Registry
    provisioning: ProvisioningService
    provisioning_url: str

    @property
    def broker_url(self) -> str:
        return self.broker.url


class DevicePlane:
    """A `Relay` component; `running` is set while the relay runs."""

    def __init__(
        self,
        settings: DevicePlaneSettings,
        logger: logging.Logger | None = None,
        *,
        uplink: UplinkHandler | None = None,
    ) -> None:
        self.settings = settings
        self._uplink = uplink
        self.running: RunningDevicePlane | None = None
        self._log = logger or logging.getLogger("nvrshare.relay.devices")

    def __call__(self, relay: Any) -> contextlib.AbstractAsyncContextManager[RunningDevicePlane]:
        return self._run(relay)

    @contextlib.asynccontextmanager
    async def _run(self, relay: Any) -> AsyncIterator[RunningDevicePlane]:
        settings = self.settings
        services = relay.services
        manifest = None
        if settings.manifest_path is not None:
            try:
                manifest = Manifest.from_csv(settings.manifest_path.read_text("utf-8"))
            except (OSError, ValueError) as exc:
                raise BrokerError(f"{settings.manifest_path}: {exc}") from None
            self._log.info("manufacturing manifest: %d devices", len(manifest))
        async with open_broker(settings.broker, relay.config.data_dir, self._log) as broker:
            credential = broker.credential
            registry_config = RegistryConfig(
                host=broker.host,
                port=broker.port,
                username=credential.username if credential else None,
                password=credential.password if credential else None,
                client_id=settings.broker.client_id,
                topic_root=settings.broker.topic_root,
                share_group=settings.share_group,
                tls_context=broker.tls_context,
            )
            provisioning = ProvisioningService(
                settings.provisioning,
                directory=services.devices,
                broker=broker.provisioner,
                hash_code=_code_hasher(relay),
                manifest=manifest,
                pinned_key=pinned_key_reader(services.context.store),
                logger=self._log.getChild("provisioning"),
            )
            app = web.Application(client_max_size=16 * 1024)
            app.add_routes([provisioning_routes(provisioning, time.time)])
            runner = web.AppRunner(
                app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE
            )
            await runner.setup()
            try:
                site = web.TCPSite(runner, settings.http_host, settings.http_port)
                await site.start()
                port = int(runner.addresses[0][1])
                async with Registry(
                    registry_config,
                    directory=services.devices,
                    keys=services.keys,
                    events=services.events,
                    uplink=self._uplink,
                    logger=self._log.getChild("registry"),
                ) as registry:
                    host = settings.http_host
                    host = f"[{host}]" if ":" in host else host
                    self.running = RunningDevicePlane(
                        broker=broker,
                        registry=registry,
                        provisioning=provisioning,
                        provisioning_url=f"http://{host}:{port}/api/v1/provision",
                    )
                    self._log.info(
                        "devices: broker %s, provisioning %s",
                        self.running.broker_url,
                        self.running.provisioning_url,
                    )
                    try:
                        yield self.running
                    finally:
                        self.running = None
            finally:
                await runner.cleanup()


def pinned_key_reader(store: Any) -> Callable[[str], Awaitable[bytes | None]]:
    """The key pinned for a serial, read from the relay's store (read-only)."""

    async def pinned_key(serial: str) -> bytes | None:
        devices = schema.devices
        async with store.transaction(readonly=True) as conn:
            row = (
                await conn.execute(select(devices.c.public_key).where(devices.c.serial == serial))
            ).first()
        return bytes(row.public_key) if row is not None and row.public_key else None

    return pinned_key


def _code_hasher(relay: Any) -> Any:
    # The owner's "add device" checks the code against this hash (relay services).
    scrypt = relay.config.scrypt

    def hash_code(code: str) -> Any:
        return hash_secret_async(code, scrypt)

    return hash_code


def _get(table: Mapping[str, object], key: str, kind: type, where: str) -> Any:
    value = table.get(key)
    if value is not None and (
        not isinstance(value, kind) or isinstance(value, bool) != (kind is bool)
    ):
        raise BrokerError(f"{where}.{key} must be a {kind.__name__}")
    return value


def settings_from_mapping(data: Mapping[str, object]) -> DevicePlaneSettings:
    """Settings from TOML tables `[broker]` and `[devices]`; `BrokerError` naming the key."""
    broker_table = data.get("broker", {})
    devices_table = data.get("devices", {})
    if not isinstance(broker_table, Mapping) or not isinstance(devices_table, Mapping):
        raise BrokerError("[broker] and [devices] must be tables")
    known_broker = {
        "url", "client_id", "port", "host", "admin_username", "admin_password", "admin_client_id",
        "ca_file",
    }  # fmt: skip
    known_devices = {"trust_first_claim", "manifest", "http_host", "http_port"}
    for table, known, where in (
        (broker_table, known_broker, "broker"),
        (devices_table, known_devices, "devices"),
    ):
        unknown = sorted(set(table) - known)
        if unknown:
            raise BrokerError(f"{where}.{unknown[0]}: unknown key")
    broker_kwargs = {
        key: _get(broker_table, key, int if key == "port" else str, "broker")
        for key in known_broker
        if key in broker_table
    }
    trust = _get(devices_table, "trust_first_claim", bool, "devices")
    manifest = _get(devices_table, "manifest", str, "devices")
    try:
        return DevicePlaneSettings(
            broker=BrokerSettings(**broker_kwargs),
            provisioning=ProvisioningConfig(trust_first_claim=bool(trust)),
            manifest_path=Path(manifest) if manifest else None,
            http_host=_get(devices_table, "http_host", str, "devices") or "127.0.0.1",
            http_port=_get(devices_table, "http_port", int, "devices") or 0,
        )
    except BrokerError:
        raise
    except (TypeError, ValueError) as exc:
        raise BrokerError(f"[broker]/[devices]: {exc}") from None
