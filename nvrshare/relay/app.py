"""The relay process: config → store → services → HTTP, as one `async with`.

    async with Relay(config) as relay:
        print(relay.url)
        await relay.wait_closed()   # until relay.close() (the CLI: on SIGINT/SIGTERM)

Other parts of the relay (the MQTT broker supervisor, the device registry, the
data plane) plug in as *components*: callables taking the running `Relay` and
returning an async context manager.  They are entered in order after the
services and the HTTP API are up, and exited in reverse before them, so each
can use `relay.services` (and its event bus) for its whole life.

Background housekeeping (expired sessions) runs in a TaskGroup as the named
task `relay.maintenance`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any

from aiohttp import web

from nvrshare.relay.api import create_app
from nvrshare.relay.config import RelayConfig
from nvrshare.relay.errors import RelayError
from nvrshare.relay.services import Services
from nvrshare.relay.services.context import Clock
from nvrshare.relay.store import Store

SHUTDOWN_GRACE = 2.0  # seconds in-flight HTTP requests get to finish when the relay stops

__all__ = ["AppHook", "Component", "Relay"]

Component = Callable[["Relay"], AbstractAsyncContextManager[Any]]
# Called with the API application before it starts serving: routes and sub-apps
# (the portal, /metrics) can only be added to an aiohttp app before its runner starts.
AppHook = Callable[["Relay", web.Application], None]


class Relay:
    """The running relay; attributes are valid between `__aenter__` and `__aexit__`."""

    def __init__(
        self,
        config: RelayConfig,
        *,
        components: Sequence[Component] = (),
        app_hooks: Sequence[AppHook] = (),
        clock: Clock = time.time,
        logger: logging.Logger | None = None,
    ) -> None:
        self.config = config
        self._components = tuple(components)
        self._app_hooks = tuple(app_hooks)
        self._clock = clock
        self.log = logger or logging.getLogger("nvrshare.relay")
        self._stack = AsyncExitStack()
        self._closed = asyncio.Event()
        self.store: Store
        self.services: Services
        self.app: web.Application
        self.http_port = 0

    @property
    def url(self) -> str:
        host = self.config.http_host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.http_port}"

    async def __aenter__(self) -> Relay:
        try:
            self.store = await self._stack.enter_async_context(Store(self.config))
            self.services = Services.build(self.config, self.store, clock=self._clock)
            self.app = create_app(self.services)
            for hook in self._app_hooks:
                hook(self, self.app)
            # In-flight requests get a bounded time at shutdown (aiohttp's default is 60 s).
            runner = web.AppRunner(
                self.app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE
            )
            await runner.setup()
            self._stack.push_async_callback(runner.cleanup)
            site = web.TCPSite(runner, self.config.http_host, self.config.http_port)
            await site.start()
            self.http_port = int(runner.addresses[0][1])
            self.log.info("relay API listening on %s", self.url)
            tasks = await self._stack.enter_async_context(asyncio.TaskGroup())
            maintenance = tasks.create_task(self._maintenance(), name="relay.maintenance")
            self._stack.callback(maintenance.cancel)  # runs before the TaskGroup waits
            # Later components (broker, registry, data plane) start here, in order.
            for component in self._components:
                await self._stack.enter_async_context(component(self))
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closed.set()
        await self._stack.aclose()

    async def _maintenance(self) -> None:
        """Housekeeping every `maintenance_interval` seconds; a failed round is retried."""
        while True:
            await asyncio.sleep(self.config.maintenance_interval)
            try:
                purged = await self.services.accounts.purge_expired_sessions()
                failures = await self.services.accounts.purge_expired_failures()
            except RelayError as exc:
                self.log.warning("maintenance round failed: %s", exc.message)
                continue
            if purged:
                self.log.info("purged %d expired sessions", purged)
            if failures:
                self.log.info("purged %d expired failed-attempt records", failures)

    def close(self) -> None:
        """Ask `wait_closed` to return (safe to call from a signal handler)."""
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()
