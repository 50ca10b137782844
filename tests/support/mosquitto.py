"""Start a private mosquitto for a test: free port, own config, own dynsec state.

    async with MosquittoProcess(MosquittoSetup(), tmp_path) as broker:
        device = await broker.create_account("SERIAL1", TopicAcl(publish=(...,)))
        ... connect to broker.host / broker.port ...
        await broker.restart()   # same port, same accounts (dynsec state is on disk)
        await broker.kill()      # SIGKILL: clients see a crash

The first argument is either a `MosquittoSetup` (dynamic security on, anonymous
off, by default) or raw mosquitto.conf text, in which `{port}`, `{host}` and
`{workdir}` are substituted; raw text without a `listener` line gets one.
Every process is stopped when the block exits, whatever happened in it.
If another process takes the chosen port before mosquitto binds it, the start
is retried on another one: read `port` (and `workdir`) once inside the block.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from nvrshare.relay.broker.credentials import BrokerCredential, TopicAcl, generate_password
from nvrshare.relay.broker.dynsec import DynsecConfig, DynsecProvisioner
from nvrshare.relay.broker.errors import BrokerPortTaken
from nvrshare.relay.broker.mosquitto_conf import (
    MosquittoOptions,
    render_config,
    write_dynsec_state,
)
from nvrshare.relay.broker.process import MosquittoProcess as _Process
from tests.support.net import free_port

__all__ = ["MosquittoProcess", "MosquittoSetup"]

START_ATTEMPTS = 3
# Only bounds a dynsec command that gets no answer: slack for a loaded machine.
DYNSEC_TIMEOUT = 15.0


@dataclass(frozen=True, kw_only=True, slots=True)
class MosquittoSetup:
    """Options for a generated config (`dynsec=False, allow_anonymous=True`: an open broker)."""

    dynsec: bool = True
    allow_anonymous: bool = False
    max_keepalive: int = 60
    extra: tuple[str, ...] = ()


class MosquittoProcess:
    """A mosquitto started for one test; see the module docstring."""

    def __init__(
        self, config: MosquittoSetup | str, workdir: Path, *, host: str = "127.0.0.1"
    ) -> None:
        self.host = host
        self._config = config
        self._root = workdir
        self.admin: BrokerCredential | None = None
        self._provisioner: DynsecProvisioner | None = None
        self._prepare(free_port(host))

    def _prepare(self, port: int) -> None:
        """Config, dynsec state and process for `port`, in a fresh directory."""
        self.port = port
        self.workdir = self._root / f"mosquitto-{port}"
        self.workdir.mkdir(parents=True)
        config, host = self._config, self.host
        if isinstance(config, str):
            text = (
                config.replace("{port}", str(port))
                .replace("{host}", host)
                .replace("{workdir}", str(self.workdir))
            )
            if "listener" not in text:
                text = f"listener {port} {host}\n" + text
        else:
            state = None
            if config.dynsec:
                state = self.workdir / "dynsec.json"
                self.admin = BrokerCredential(
                    username="admin",
                    password=generate_password(),
                    client_id=f"admin-{secrets.token_hex(4)}",
                )
                write_dynsec_state(state, self.admin)
            text = render_config(
                MosquittoOptions(
                    port=port,
                    host=host,
                    dynsec_state=state,
                    allow_anonymous=config.allow_anonymous,
                    max_keepalive=config.max_keepalive,
                    extra=config.extra,
                )
            )
        self._process = _Process(text, self.workdir, host=host, port=port)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid

    async def __aenter__(self) -> Self:
        # free_port() released the port before mosquitto binds it: someone else
        # may take it meanwhile. Then start over on another port.
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                await self._process.start()
            except BrokerPortTaken:
                if attempt == START_ATTEMPTS:
                    raise
                self._prepare(free_port(self.host))
            else:
                return self
        raise AssertionError("unreachable")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._provisioner is not None:
                await self._provisioner.__aexit__(None, None, None)
        finally:
            await self._process.stop()

    def provisioner(self) -> DynsecProvisioner:
        """A dynsec provisioner logged in as this broker's admin (closed with the broker)."""
        if self.admin is None:
            raise RuntimeError("this broker was started without dynamic security")
        if self._provisioner is None:
            self._provisioner = DynsecProvisioner(
                DynsecConfig(
                    host=self.host, port=self.port, admin=self.admin, timeout=DYNSEC_TIMEOUT
                )
            )
        return self._provisioner

    async def create_account(
        self, username: str, acl: TopicAcl, *, client_id: str | None = None, service: bool = False
    ) -> BrokerCredential:
        """Provision an account (bound to `client_id`, default the username) and return it."""
        credential = BrokerCredential(
            username=username, password=generate_password(), client_id=client_id or username
        )
        provisioner = self.provisioner()
        if service:
            await provisioner.provision_service(credential, acl)
        else:
            await provisioner.provision_device(credential, acl)
        return credential

    async def restart(self) -> None:
        # The admin connection dies with the broker; the provisioner reconnects lazily.
        await self._process.restart()

    async def stop(self) -> None:
        await self._process.stop()

    async def start(self) -> None:
        await self._process.start()

    async def kill(self) -> None:
        await self._process.kill()

    def log_tail(self) -> str:
        return self._process.log_tail()
