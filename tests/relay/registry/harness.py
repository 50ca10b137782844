"""A real relay side for integration tests: mosquitto + relay services + registry + provisioning.

Also builds agent configs that point at it.  Everything runs on loopback, on
free ports, and is torn down when the `relay_side` context exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from nvrshare.agent.config import AgentConfig, config_from_mapping
from nvrshare.protocol.topics import DEFAULT_ROOT
from nvrshare.relay.broker import BrokerCredential, relay_acl
from nvrshare.relay.config import RelayConfig, ScryptParams
from nvrshare.relay.registry import (
    Manifest,
    ProvisioningConfig,
    ProvisioningService,
    Registry,
    RegistryConfig,
    UplinkHandler,
    provisioning_routes,
)
from nvrshare.relay.registry.component import pinned_key_reader
from nvrshare.relay.services import Services
from nvrshare.relay.services.context import load_device
from nvrshare.relay.services.models import Device
from nvrshare.relay.services.secrets_hash import hash_secret_async
from nvrshare.relay.store import Store
from tests.support.mosquitto import MosquittoProcess, MosquittoSetup

ROOT = DEFAULT_ROOT
CODE = "ABCDEF"


@dataclass
class RelaySide:
    broker: MosquittoProcess
    services: Services
    registry: Registry
    provisioning: ProvisioningService
    provisioning_url: str
    relay_credential: BrokerCredential
    probe_credential: BrokerCredential  # a second relay-like account for tests to speak as
    tmp_path: Path

    async def device(self, serial: str) -> Device | None:
        async with self.services.context.store.transaction() as conn:
            return await load_device(conn, serial)

    def agent_config(self, serial: str, state: str = "state", **overrides: object) -> AgentConfig:
        data: dict[str, object] = {
            "serial": serial,
            "domain": serial.lower(),
            "verification_code": CODE,
            "state_dir": str(self.tmp_path / f"{state}-{serial}"),
            "keepalive": 2,
            "heartbeat_interval": 0.5,
            "advertise_ip": "192.0.2.10",
            "advertise_port": 8000,
            "relay": {
                "broker_url": self.broker.url,
                "provisioning_url": self.provisioning_url,
            },
            "recorder": {"backend": "sim", "settings": {"channels": "4", "serial": serial}},
            "backoff": {"initial": 0.05, "maximum": 0.5},
        }
        data.update(overrides)
        return config_from_mapping(data, "test")


@contextlib.asynccontextmanager
async def relay_side(
    tmp_path: Path,
    *,
    trust_first_claim: bool = True,
    manifest: Manifest | None = None,
    uplink: UplinkHandler | None = None,
) -> AsyncIterator[RelaySide]:
    config = RelayConfig(data_dir=tmp_path / "relay", scrypt=ScryptParams(n=2**4, r=1, p=1))
    async with (
        MosquittoProcess(MosquittoSetup(), tmp_path) as broker,
        Store(config) as store,
    ):
        services = Services.build(config, store)
        relay_cred = await broker.create_account(
            "relay:t", relay_acl(ROOT), client_id="relay-t", service=True
        )
        probe_cred = await broker.create_account(
            "relay:probe", relay_acl(ROOT), client_id="relay-probe", service=True
        )
        registry_config = RegistryConfig(
            host=broker.host,
            port=broker.port,
            username=relay_cred.username,
            password=relay_cred.password,
            client_id=relay_cred.client_id,
            keepalive=5,
            reconnect_max=0.3,
        )
        provisioning = ProvisioningService(
            ProvisioningConfig(trust_first_claim=trust_first_claim),
            directory=services.devices,
            broker=broker.provisioner(),
            hash_code=lambda code: hash_secret_async(code, config.scrypt),
            manifest=manifest,
            pinned_key=pinned_key_reader(store),
        )
        app = web.Application()
        app.add_routes([provisioning_routes(provisioning, time.time)])
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = int(runner.addresses[0][1])
        try:
            async with Registry(
                registry_config,
                directory=services.devices,
                keys=services.keys,
                events=services.events,
                uplink=uplink,
            ) as registry:
                async with asyncio.timeout(15):
                    await registry.wait_connected()
                yield RelaySide(
                    broker=broker,
                    services=services,
                    registry=registry,
                    provisioning=provisioning,
                    provisioning_url=f"http://127.0.0.1:{port}/api/v1/provision",
                    relay_credential=relay_cred,
                    probe_credential=probe_cred,
                    tmp_path=tmp_path,
                )
        finally:
            await runner.cleanup()


async def eventually(
    condition: Callable[[], object],
    timeout: float,  # noqa: ASYNC109 - the point of the helper
    interval: float = 0.02,
) -> float:
    """Wait until `condition()` is truthy (it may be async); return the seconds it took."""
    start = time.monotonic()
    async with asyncio.timeout(timeout):
        while True:
            result = condition()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return time.monotonic() - start
            await asyncio.sleep(interval)
