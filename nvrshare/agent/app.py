"""`Agent`: the device agent's lifecycle.

    async with Agent(config) as agent:
        await agent.wait_closed()      # runs until cancelled

Entering loads (or creates) the device key, loads the persisted grant set
(so the last grants are enforced even with no network), obtains the broker
credential (configured, stored, or bootstrapped with backoff), opens the
recorder through `firmware_shim`, starts the session handler (unless another
`DownlinkHandler` is given) and runs the named tasks in one TaskGroup:
`agent[SERIAL].control` (MQTT).  Leaving cancels them, ends the sessions and
closes the recorder.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from types import TracebackType
from typing import Self

from nvrshare.agent.backoff import Backoff
from nvrshare.agent.bootstrap import obtain_credential
from nvrshare.agent.config import AgentConfig, BrokerEndpoint, data_tls_context
from nvrshare.agent.control import ControlChannel, DownlinkHandler
from nvrshare.agent.errors import BootstrapError
from nvrshare.agent.grants import GrantStore
from nvrshare.agent.identity import load_or_create_identity
from nvrshare.agent.registration import FactsReader, local_address, signed_registration
from nvrshare.agent.sessions.config import session_config_for
from nvrshare.agent.sessions.handler import SessionHandler
from nvrshare.firmware_shim import Recorder, open_recorder
from nvrshare.protocol.signing import SigningKey

__all__ = ["Agent"]


class Agent:
    """One device agent; see the module docstring."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        handler: DownlinkHandler | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.config = config
        self._handler = handler
        self._log = logger or logging.getLogger(f"nvrshare.agent[{config.serial}]")
        self.grants = GrantStore(
            config.state_dir,
            config.serial,
            bootstrap_keys=config.relay_public_keys,
            logger=self._log.getChild("grants"),
        )
        self.key: SigningKey | None = None
        self.recorder: Recorder | None = None
        self.control: ControlChannel | None = None
        self._stack = contextlib.AsyncExitStack()
        self._runner: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        config = self.config
        config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.key = load_or_create_identity(config.state_dir)
        if self.grants.load():
            self._log.info("enforcing persisted grant set version %d", self.grants.version)
        broker = await self._credential(self.key)
        try:
            self.recorder = await self._stack.enter_async_context(
                open_recorder(config.recorder, logger=self._log.getChild("recorder"))
            )
            handler = self._handler
            if handler is None:
                sessions = await self._stack.enter_async_context(
                    SessionHandler(
                        serial=config.serial,
                        grants=self.grants,
                        recorder=self.recorder,
                        # Only the configured data endpoint is dialled, over TLS if configured.
                        config=session_config_for(config, relay_tls=data_tls_context(config)),
                        logger=self._log.getChild("sessions"),
                    )
                )
                # Revocations cut live sessions as soon as a new set is in force.
                self.grants.on_change(sessions.on_grants_changed)
                handler = sessions
            facts = FactsReader(self.recorder, self._log)
            ip = config.advertise_ip or local_address(broker.host, broker.port)
            port = config.advertise_port or config.recorder.port or 80
            key = self.key

            async def registration() -> bytes:
                return signed_registration(
                    key=key,
                    serial=config.serial,
                    domain=config.domain,
                    facts=await facts.read(),
                    ip=ip,
                    port=port,
                    now=time.time(),
                )

            self.control = ControlChannel(
                config,
                broker,
                grants=self.grants,
                registration=registration,
                address=(ip, port),
                handler=handler,
                logger=self._log.getChild("control"),
            )
            self._runner = asyncio.create_task(self._run(), name=f"agent[{config.serial}]")
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        runner, self._runner = self._runner, None
        try:
            if runner is not None:
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner
        finally:
            await self._stack.aclose()

    async def wait_closed(self) -> None:
        """Wait until the agent's tasks end (they only end by cancellation or a crash)."""
        if self._runner is not None:
            await self._runner

    async def _run(self) -> None:
        assert self.control is not None
        async with asyncio.TaskGroup() as group:
            group.create_task(self.control.run(), name=f"agent[{self.config.serial}].control")

    async def _credential(self, key: SigningKey) -> BrokerEndpoint:
        backoff = Backoff(self.config.backoff)
        while True:
            try:
                return await obtain_credential(self.config, key, time.time())
            except BootstrapError as exc:
                if not exc.retryable:
                    raise
                delay = backoff.next_delay()
                self._log.warning("bootstrap failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
