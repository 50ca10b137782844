"""The product relay: every part of the relay in one `async with`.

    async with RelayStack(settings) as stack:
        print(stack.status)          # where each part listens
        await stack.wait_closed()    # until stack.close() (the CLI: SIGINT/SIGTERM)

Order of start (stop is the reverse):

1. control plane: store (SQLite by default), services, the JSON API, with
   the portal mounted at `/portal/` (`/` redirects there), `/metrics`
   (Prometheus text from the data plane) and the PTZ endpoint added to it;
2. device plane: the embedded, supervised mosquitto (auth + ACLs, loopback)
   or the configured broker, the registry and the provisioning endpoint;
3. data plane: the data port, its offers published through the registry, and
   the follower that closes live sessions when shares stop; from then on
   issued share tokens carry the advertised data endpoint;
4. `status.json` in the data dir (0600, written atomically, removed on a
   clean stop): the API, portal, metrics and provisioning URLs, the data
   port and the broker's address, for scripts, the demo and tests.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from nvrshare.relay.app import Relay
from nvrshare.relay.assembly.dataplane import DataPlaneComponent
from nvrshare.relay.assembly.ptz import PtzGateway
from nvrshare.relay.assembly.settings import StackSettings
from nvrshare.relay.assembly.uplink import DeviceUplink
from nvrshare.relay.dataplane import DataPlane
from nvrshare.relay.portal import create_portal
from nvrshare.relay.registry.component import DevicePlane, RunningDevicePlane
from nvrshare.relay.services.models import DataEndpoint

__all__ = ["STATUS_FILE", "RelayStack", "read_status"]

STATUS_FILE = "status.json"
METRICS_CONTENT_TYPE = "text/plain"  # Prometheus text format 0.0.4


def read_status(data_dir: Path) -> dict[str, Any] | None:
    """The running relay's `status.json` in `data_dir`.

    None if it is absent or unreadable, or left behind by a relay that is no
    longer running (killed before it could remove the file).
    """
    try:
        value = json.loads((data_dir / STATUS_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(value, dict) or type(value.get("pid")) is not int or value["pid"] <= 0:
        return None
    try:
        os.kill(value["pid"], 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, under another user
    return value


class RelayStack:
    """See the module docstring; attributes are valid between enter and exit."""

    def __init__(self, settings: StackSettings, logger: logging.Logger | None = None) -> None:
        self.settings = settings
        self._log = logger or logging.getLogger("nvrshare.relay")
        self.ptz = PtzGateway(self._registry, logger=self._log.getChild("ptz"))
        self.data = DataPlaneComponent(
            settings.data, self._offer_publisher, self._log.getChild("dataplane")
        )
        uplink = DeviceUplink(self.ptz, lambda: self.data.plane, self._log.getChild("uplink"))
        self.devices = DevicePlane(settings.devices, self._log.getChild("devices"), uplink=uplink)
        self.relay = Relay(
            settings.relay,
            components=[self.devices, self.data, self._advertise_data_port, self._status_file],
            app_hooks=[self._mount_portal, self._add_metrics, self.ptz.install],
            logger=self._log,
        )
        self.status: dict[str, Any] = {}

    # -- wiring ----------------------------------------------------------------

    def _registry(self) -> Any:
        running = self.devices.running
        return running.registry if running is not None else None

    def _offer_publisher(self) -> Any:
        registry = self._registry()
        return registry.publish_offer if registry is not None else None

    def _mount_portal(self, relay: Relay, app: web.Application) -> None:
        portal = create_portal(relay.services, secure_cookies=self.settings.secure_cookies)
        app.add_subapp("/portal", portal)

        async def home(_request: web.Request) -> web.StreamResponse:
            raise web.HTTPFound("/portal/")

        app.router.add_get("/", home)

    def _add_metrics(self, _relay: Relay, app: web.Application) -> None:
        async def metrics(_request: web.Request) -> web.StreamResponse:
            plane = self.data.plane
            text = plane.metrics.render() if plane is not None else ""
            return web.Response(text=text, content_type=METRICS_CONTENT_TYPE, charset="utf-8")

        app.router.add_get("/metrics", metrics)

    @contextlib.asynccontextmanager
    async def _advertise_data_port(self, relay: Relay) -> AsyncIterator[None]:
        # Issued tokens name the data port; its port may only be known now (port 0).
        plane = self.data.plane
        assert plane is not None  # entered after the data plane
        data = self.settings.data
        relay.services.tokens.data_endpoint = DataEndpoint(
            host=data.advertised_host or data.host,
            port=data.advertised_port or plane.port,
            tls=data.tls_cert is not None,
        )
        try:
            yield
        finally:
            relay.services.tokens.data_endpoint = None

    @contextlib.asynccontextmanager
    async def _status_file(self, relay: Relay) -> AsyncIterator[None]:
        running = self.devices.running
        plane = self.data.plane
        assert running is not None  # entered after the device plane
        assert plane is not None  # and after the data plane
        self.status = self._describe(relay, running, plane)
        path = relay.config.data_dir / STATUS_FILE
        temporary = path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(self.status, file, indent=2)
        temporary.replace(path)  # readers never see a half-written file
        try:
            yield
        finally:
            path.unlink(missing_ok=True)

    def _describe(
        self, relay: Relay, running: RunningDevicePlane, plane: DataPlane
    ) -> dict[str, Any]:
        data = self.settings.data
        return {
            "pid": os.getpid(),
            "api": relay.url,
            "portal": f"{relay.url}/portal/",
            "metrics": f"{relay.url}/metrics",
            "provisioning": running.provisioning_url,
            "data_host": data.host,
            "data_port": plane.port,
            "data_endpoint": f"{data.advertised_host or data.host}:"
            f"{data.advertised_port or plane.port}",
            "data_tls": data.tls_cert is not None,
            "broker_url": running.broker_url,
            "broker_host": running.broker.host,
            "broker_port": running.broker.port,
            "broker_embedded": running.broker.embedded,
        }

    # -- lifecycle ----------------------------------------------------------------

    async def __aenter__(self) -> RelayStack:
        await self.relay.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.relay.__aexit__(*exc_info)

    def close(self) -> None:
        """Ask `wait_closed` to return (safe to call from a signal handler)."""
        self.relay.close()

    async def wait_closed(self) -> None:
        await self.relay.wait_closed()
