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
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from nvrshare.relay.broker.credentials import BrokerCredential, TopicAcl, generate_password
from nvrshare.relay.broker.dynsec import DynsecConfig, DynsecProvisioner
from nvrshare.relay.broker.mosquitto_conf import (
    MosquittoOptions,
    render_config,
    write_dynsec_state,
)
from nvrshare.relay.broker.process import MosquittoProcess as _Process
from tests.support.net import free_port

__all__ = ["MosquittoProcess", "MosquittoSetup"]


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
        self.port = free_port(host)
        self.workdir = workdir / f"mosquitto-{self.port}"
        self.workdir.mkdir(parents=True)
        self.admin: BrokerCredential | None = None
        if isinstance(config, str):
            text = (
                config.replace("{port}", str(self.port))
                .replace("{host}", host)
                .replace("{workdir}", str(self.workdir))
            )
            if "listener" not in text:
                text = f"listener {self.port} {host}\n" + text
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
                    port=self.port,
                    host=host,
                    dynsec_state=state,
                    allow_anonymous=config.allow_anonymous,
                    max_keepalive=config.max_keepalive,
                    extra=config.extra,
                )
            )
        self._process = _Process(text, self.workdir, host=host, port=self.port)
        self._provisioner: DynsecProvisioner | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid

    async def __aenter__(self) -> Self:
        await self._process.start()
        return self

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
                DynsecConfig(host=self.host, port=self.port, admin=self.admin)
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
