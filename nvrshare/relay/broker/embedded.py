"""The relay's broker: an embedded, supervised mosquitto, or one configured by URL.

`async with open_broker(settings, data_dir) as broker:` gives the relay what it
needs whatever the deployment: where to connect (`host`, `port`), its own
service credential, and a `BrokerProvisioner` for per-device accounts (or None
when the operator manages accounts on an external broker themselves).

Embedded (no URL configured, the default): a generated mosquitto.conf under
`<data_dir>/broker/` with a loopback listener, anonymous access off and the
dynamic-security plugin on; the admin credential and the dynsec state persist
there (0600) so devices keep their accounts across relay restarts.

Naming: device accounts are named after their serial (username = client id =
serial), and serials cannot contain ':'.  So the relay's own names all do:
its account is `relay:<client_id>`, its default client id `relay:1`, the
embedded admin `nvrshare:admin`.  A relay client id configured without ':'
still works, and is reserved so no device can be given it (see `dynsec.py`),
but another relay sharing the same external broker under such a name is not
known here, hence the warning.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from nvrshare.relay.broker.credentials import (
    BrokerCredential,
    TopicAcl,
    generate_password,
    validate_name,
)
from nvrshare.relay.broker.dynsec import DynsecConfig, DynsecProvisioner
from nvrshare.relay.broker.errors import BrokerError, BrokerPortTaken, ProvisioningRefused
from nvrshare.relay.broker.mosquitto_conf import (
    MosquittoOptions,
    render_config,
    write_dynsec_state,
)
from nvrshare.relay.broker.process import MosquittoProcess
from nvrshare.relay.broker.provisioning import BrokerProvisioner

__all__ = [
    "BrokerSettings",
    "RelayBroker",
    "open_broker",
    "parse_broker_url",
    "relay_acl",
    "uses_tls",
]

DEFAULT_TOPIC_ROOT = "nvrshare/v1"
# Tries at a port of our own choosing (another process may take it before mosquitto binds).
PORT_ATTEMPTS = 3


def relay_acl(topic_root: str = DEFAULT_TOPIC_ROOT, share_group: str = "relay") -> TopicAcl:
    """The relay's own account: everything under the topic root, shared subscriptions too."""
    return TopicAcl(
        publish=(f"{topic_root}/#",),
        subscribe=(f"{topic_root}/#", f"$share/{share_group}/{topic_root}/#"),
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class BrokerSettings:
    """How the relay reaches its broker.

    url: None for the embedded mosquitto; else `mqtt://[user:password@]host:port`
        (the relay's own credential on that broker).
    client_id: the relay's MQTT client id (bound to its credential); one per
        relay process, so several relays can share one broker.
    port: the embedded broker's loopback port (0 = pick a free one).
    admin_username/admin_password/admin_client_id: a dynsec admin account on an
        external Mosquitto; without them device accounts are not provisioned.
    ca_file: trust anchors for an `mqtts://` URL (default: the system's).
    """

    url: str | None = None
    client_id: str = "relay:1"
    port: int = 0
    host: str = "127.0.0.1"
    topic_root: str = DEFAULT_TOPIC_ROOT
    admin_username: str | None = None
    admin_password: str | None = field(default=None, repr=False)
    admin_client_id: str | None = None
    ca_file: str | None = None

    def __post_init__(self) -> None:
        validate_name(self.client_id, "client id")
        if not 0 <= self.port <= 65535:
            raise ProvisioningRefused(f"broker port out of range: {self.port}")
        if self.url is not None:
            parse_broker_url(self.url)


def parse_broker_url(url: str) -> tuple[str, int, str | None, str | None]:
    """(host, port, username, password) from `mqtt[s]://user:pw@host:port`; `BrokerError` if bad.

    `mqtts://` (TLS, default port 8883) is told apart with `uses_tls`.
    """
    try:
        parts = urlsplit(url)
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    except ValueError as exc:
        raise BrokerError(f"invalid broker URL: {exc}") from None
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise BrokerError("broker URL must look like mqtt[s]://[user:password@]host[:port]")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return parts.hostname, port, username, password


def uses_tls(url: str) -> bool:
    return urlsplit(url).scheme == "mqtts"


def _tls_context(settings: BrokerSettings) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=settings.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise BrokerError(f"broker ca_file {settings.ca_file}: {exc}") from None


@dataclass(frozen=True, kw_only=True, slots=True)
class RelayBroker:
    """A broker the relay is ready to use."""

    host: str
    port: int
    credential: BrokerCredential | None
    provisioner: BrokerProvisioner | None
    embedded: bool
    process: MosquittoProcess | None = None
    tls_context: ssl.SSLContext | None = None

    @property
    def url(self) -> str:
        """Where devices connect (without credentials)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls_context else 'mqtt'}://{host}:{self.port}"


async def _start_embedded(
    settings: BrokerSettings, workdir: Path, state: Path, log: logging.Logger
) -> MosquittoProcess:
    """Start the supervised mosquitto; a port we picked ourselves is picked again if
    another process takes it between our choice and mosquitto's bind."""
    attempts = 1 if settings.port else PORT_ATTEMPTS
    for attempt in range(1, attempts + 1):
        port = settings.port or _free_port(settings.host)
        text = render_config(
            MosquittoOptions(
                port=port,
                host=settings.host,
                dynsec_state=state,
                persistence_dir=workdir,
                log_file=workdir / "mosquitto.log",
            )
        )
        process = MosquittoProcess(
            text, workdir, host=settings.host, port=port, supervise=True, logger=log
        )
        try:
            await process.start()
        except BrokerPortTaken:
            if attempt == attempts:
                raise
            log.warning("port %d was taken before mosquitto could bind it; picking another", port)
        else:
            return process
    raise AssertionError("unreachable")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _load_or_create_admin(path: Path) -> BrokerCredential:
    if path.exists():
        data = json.loads(path.read_text())
        return BrokerCredential(
            username=data["username"], password=data["password"], client_id=data["client_id"]
        )
    admin = BrokerCredential(
        username="nvrshare:admin",
        password=generate_password(),
        client_id=f"nvrshare:admin:{secrets.token_hex(4)}",
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(
            {"username": admin.username, "password": admin.password, "client_id": admin.client_id},
            file,
        )
    return admin


@contextlib.asynccontextmanager
async def open_broker(
    settings: BrokerSettings, data_dir: Path, logger: logging.Logger | None = None
) -> AsyncIterator[RelayBroker]:
    """Start (embedded) or reach (URL) the broker, provision the relay's account, yield it."""
    log = logger or logging.getLogger("nvrshare.relay.broker")
    if ":" not in settings.client_id:
        log.warning(
            "broker client_id %r could also be a device serial: use a name with ':' "
            "(e.g. 'relay:1') so no device account can ever collide with it",
            settings.client_id,
        )
    if settings.url is not None:
        host, port, username, password = parse_broker_url(settings.url)
        tls = _tls_context(settings) if uses_tls(settings.url) else None
        credential = (
            BrokerCredential(username=username, password=password, client_id=settings.client_id)
            if username and password
            else None
        )
        if settings.admin_username and settings.admin_password:
            admin = BrokerCredential(
                username=settings.admin_username,
                password=settings.admin_password,
                client_id=settings.admin_client_id or f"{settings.client_id}-admin",
            )
            reserved = {settings.client_id, f"relay:{settings.client_id}"}
            if credential is not None:
                reserved |= {credential.username, credential.client_id}
            config = DynsecConfig(
                host=host, port=port, admin=admin, tls_context=tls, reserved=frozenset(reserved)
            )
            async with DynsecProvisioner(config, log) as provisioner:
                yield RelayBroker(
                    host=host,
                    port=port,
                    credential=credential,
                    provisioner=provisioner,
                    embedded=False,
                    tls_context=tls,
                )
        else:
            log.warning("no broker admin configured: device accounts will not be provisioned")
            yield RelayBroker(
                host=host,
                port=port,
                credential=credential,
                provisioner=None,
                embedded=False,
                tls_context=tls,
            )
        return

    workdir = data_dir / "broker"
    workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
    admin = _load_or_create_admin(workdir / "admin.json")
    state = workdir / "dynsec.json"
    if not state.exists():
        write_dynsec_state(state, admin)
    async with contextlib.AsyncExitStack() as stack:
        process = await _start_embedded(settings, workdir, state, log)
        stack.push_async_callback(process.stop)
        port = process.port
        prov = await stack.enter_async_context(
            DynsecProvisioner(
                DynsecConfig(
                    host=settings.host,
                    port=port,
                    admin=admin,
                    reserved=frozenset({settings.client_id, f"relay:{settings.client_id}"}),
                ),
                log,
            )
        )
        # A fresh password on every start: it only ever lives in this process.
        credential = BrokerCredential(
            username=f"relay:{settings.client_id}",
            password=generate_password(),
            client_id=settings.client_id,
        )
        await prov.provision_service(credential, relay_acl(settings.topic_root))
        log.info("embedded mosquitto listening on %s:%d", settings.host, port)
        yield RelayBroker(
            host=settings.host,
            port=port,
            credential=credential,
            provisioner=prov,
            embedded=True,
            process=process,
        )
