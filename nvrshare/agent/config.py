"""The agent's configuration: one TOML file, validated into `AgentConfig`.

Example (every key not shown has a documented default):

    serial = "DS-7608NI-K2-0820190101CCRRC12345678WCVU"
    domain = "front-door"
    verification_code = "ABCDEF"
    state_dir = "/var/lib/nvrshare-agent"

    [relay]
    broker_url = "mqtt://relay.example:8883"   # where the device's MQTT goes
    username = "..."    # optional: without it the agent bootstraps (provisioning_url)
    password = "..."
    provisioning_url = "https://relay.example/api/v1/provision"
    data_endpoint = "relay.example:7000"
    data_tls = true                            # optional: the data port speaks TLS
    data_ca_file = "/etc/nvrshare/data-ca.pem" # optional (implies data_tls): else ca_file
    public_keys = ["<base64 Ed25519 key>"]     # optional: pin the relay instead of TOFU
    ca_file = "/etc/nvrshare/relay-ca.pem"     # optional: CA for mqtts:// and https://

    [recorder]          # passed to firmware_shim.open_recorder
    backend = "isapi"
    host = "192.168.1.64"
    username = "admin"
    password = "..."
    [recorder.settings]
    channels = "8"

Errors name the file and the key (`agent.toml: relay.broker_url: ...`) so an
installer can fix them without reading code.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import ssl
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict
from urllib.parse import urlsplit

from nvrshare.agent.backoff import BackoffPolicy
from nvrshare.agent.errors import ConfigError
from nvrshare.firmware_shim import RecorderConfig, ShimError
from nvrshare.protocol.validation import is_valid_domain, is_valid_serial

__all__ = [
    "AgentConfig",
    "BrokerEndpoint",
    "config_from_mapping",
    "data_tls_context",
    "load_config",
    "tls_context",
]

MAX_CONFIG_SIZE = 64 * 1024
DEFAULT_TOPIC_ROOT = "nvrshare/v1"


@dataclass(frozen=True, kw_only=True, slots=True)
class BrokerEndpoint:
    """The relay's MQTT broker and (once known) this device's credential there."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentConfig:
    """Everything one agent needs; see the module docstring for the TOML form.

    keepalive: MQTT keep-alive (s); the broker publishes the last will after
        1.5x this without traffic.  heartbeat_interval: seconds between
        `Heartbeat`s.  ca_file: trust anchors for the relay's TLS (mqtts://,
        https://) instead of the system's.  advertise_ip/advertise_port: what registration reports
        as the device's address (default: the local address used to reach
        the broker, and the recorder's port or 80).  data_tls: dial the
        relay's data port over TLS, verifying it against data_ca_file, else
        ca_file, else the system's CAs.
    """

    serial: str
    domain: str
    verification_code: str = field(repr=False)
    state_dir: Path
    broker: BrokerEndpoint
    recorder: RecorderConfig
    provisioning_url: str | None = None
    data_endpoint: tuple[str, int] | None = None
    data_tls: bool = False
    data_ca_file: Path | None = None
    relay_public_keys: tuple[bytes, ...] = ()
    ca_file: Path | None = None
    topic_root: str = DEFAULT_TOPIC_ROOT
    keepalive: int = 30
    heartbeat_interval: float = 30.0
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    advertise_ip: str | None = None
    advertise_port: int | None = None


class _Reader:
    """Typed access to one TOML table, with errors that name the key."""

    def __init__(self, origin: str, table: Mapping[str, object], prefix: str = "") -> None:
        self._origin = origin
        self._table = table
        self._prefix = prefix
        self._used: set[str] = set()

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self._origin}: {self._prefix}{key}: {problem}")

    def _get(self, key: str, kind: type | tuple[type, ...], required: bool) -> object:
        self._used.add(key)
        if key not in self._table:
            if required:
                raise self.fail(key, "is required")
            return None
        value = self._table[key]
        # bool is an int in Python, never in a config file.
        if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise self.fail(key, f"must be a {names}, got {type(value).__name__}")
        return value

    def text(self, key: str, *, required: bool = False, max_length: int = 512) -> str | None:
        value = self._get(key, str, required)
        if value is None:
            return None
        assert isinstance(value, str)
        if not value or len(value) > max_length or any(ord(c) < 32 for c in value):
            raise self.fail(key, f"must be 1..{max_length} printable characters")
        return value

    def number(
        self, key: str, default: float, *, minimum: float, maximum: float, integer: bool = False
    ) -> float:
        value = self._get(key, int if integer else (int, float), False)
        if value is None:
            return default
        assert isinstance(value, int | float)
        if not minimum <= value <= maximum:
            raise self.fail(key, f"must be within [{minimum}, {maximum}], got {value}")
        return value

    def table(self, key: str) -> _Reader:
        value = self._get(key, dict, False)
        return _Reader(self._origin, value or {}, f"{self._prefix}{key}.")  # type: ignore[arg-type]

    def raw(self, key: str) -> object:
        self._used.add(key)
        return self._table.get(key)

    def reject_unknown(self) -> None:
        unknown = sorted(set(self._table) - self._used)
        if unknown:
            raise self.fail(unknown[0], "unknown key (misspelt?)")


def _broker(reader: _Reader) -> BrokerEndpoint:
    url = reader.text("broker_url", required=True)
    assert url is not None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise reader.fail("broker_url", str(exc)) from None
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname or parts.path not in ("", "/"):
        raise reader.fail("broker_url", f"expected mqtt://host[:port] or mqtts://..., got {url!r}")
    tls = parts.scheme == "mqtts"
    username = reader.text("username", max_length=64)
    password = reader.text("password", max_length=256)
    if (username is None) != (password is None):
        raise reader.fail("username", "username and password go together")
    return BrokerEndpoint(
        host=parts.hostname,
        port=port or (8883 if tls else 1883),
        username=username,
        password=password,
        tls=tls,
    )


def _endpoint(reader: _Reader, key: str) -> tuple[str, int] | None:
    value = reader.text(key)
    if value is None:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise reader.fail(key, f"expected host:port, got {value!r}")
    return host.strip("[]"), int(port)


def _public_keys(reader: _Reader) -> tuple[bytes, ...]:
    raw = reader.raw("public_keys")
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw or len(raw) > 8:
        raise reader.fail("public_keys", "must be a list of 1..8 base64 Ed25519 keys")
    keys = []
    for item in raw:
        try:
            key = base64.b64decode(item, validate=True) if isinstance(item, str) else b""
        except binascii.Error:
            key = b""
        if len(key) != 32:
            raise reader.fail("public_keys", f"{item!r:.60} is not a base64 Ed25519 public key")
        keys.append(key)
    return tuple(keys)


def _recorder(reader: _Reader) -> RecorderConfig:
    backend = reader.text("backend", required=True, max_length=32)
    settings_raw = reader.raw("settings") or {}
    if not isinstance(settings_raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in settings_raw.items()
    ):
        raise reader.fail("settings", "must be a table of string values")
    port = reader.number("port", 0, minimum=1, maximum=65535, integer=True)
    rtsp_port = reader.number("rtsp_port", 0, minimum=1, maximum=65535, integer=True)
    use_tls = reader.raw("use_tls")
    if use_tls is not None and not isinstance(use_tls, bool):
        raise reader.fail("use_tls", "must be true or false")
    try:
        config = RecorderConfig(
            backend=backend or "",
            host=reader.text("host") or "",
            port=int(port) or None,
            username=reader.text("username") or "",
            password=reader.text("password") or "",
            rtsp_port=int(rtsp_port) or None,
            use_tls=bool(use_tls),
            timeout=reader.number("timeout", 10.0, minimum=0.1, maximum=300),
            settings=dict(settings_raw),
        )
    except ShimError as exc:
        raise reader.fail("backend", str(exc)) from None
    reader.reject_unknown()
    return config


class _RelaySettings(TypedDict):
    broker: BrokerEndpoint
    provisioning_url: str | None
    data_endpoint: tuple[str, int] | None
    data_tls: bool
    data_ca_file: Path | None
    relay_public_keys: tuple[bytes, ...]
    ca_file: Path | None


def _relay(relay: _Reader) -> _RelaySettings:
    """The `[relay]` table, as AgentConfig keyword arguments."""
    broker = _broker(relay)
    provisioning_url = relay.text("provisioning_url", max_length=2048)
    if provisioning_url is not None and urlsplit(provisioning_url).scheme not in ("http", "https"):
        raise relay.fail("provisioning_url", "must be an http(s) URL")
    if broker.username is None and provisioning_url is None:
        raise relay.fail("username", "give a broker credential or a provisioning_url")
    data_endpoint = _endpoint(relay, "data_endpoint")
    relay_keys = _public_keys(relay)
    ca_file = _existing_file(relay, "ca_file")
    data_tls = relay.raw("data_tls")
    if data_tls is not None and not isinstance(data_tls, bool):
        raise relay.fail("data_tls", "must be true or false")
    data_ca_file = _existing_file(relay, "data_ca_file")
    if data_tls is False and data_ca_file is not None:
        raise relay.fail("data_ca_file", "is for a TLS data port, but data_tls = false")
    relay.reject_unknown()
    return {
        "broker": broker,
        "provisioning_url": provisioning_url,
        "data_endpoint": data_endpoint,
        "data_tls": bool(data_tls) or data_ca_file is not None,
        "data_ca_file": data_ca_file,
        "relay_public_keys": relay_keys,
        "ca_file": ca_file,
    }


def _existing_file(reader: _Reader, key: str) -> Path | None:
    value = reader.text(key, max_length=4096)
    if value is None:
        return None
    if not Path(value).is_file():
        raise reader.fail(key, f"no such file: {value}")
    return Path(value)


def config_from_mapping(data: Mapping[str, object], origin: str = "<config>") -> AgentConfig:
    """Validate a parsed TOML document; `ConfigError` naming `origin` and the key if not."""
    top = _Reader(origin, data)
    serial = top.text("serial", required=True, max_length=64)
    if not is_valid_serial(serial):
        raise top.fail("serial", "letters, digits, '.', '_' and '-' only (at most 64)")
    domain = top.text("domain", required=True, max_length=63)
    if not is_valid_domain(domain):
        raise top.fail("domain", "a DNS label: lowercase letters, digits and '-'")
    code = top.text("verification_code", required=True, max_length=64)
    assert code is not None
    if len(code) < 6:
        raise top.fail("verification_code", "must be at least 6 characters")
    state_dir = top.text("state_dir", required=True, max_length=4096)
    topic_root = top.text("topic_root", max_length=64) or DEFAULT_TOPIC_ROOT
    if any(c in topic_root for c in "+#$\x00") or topic_root.startswith("/"):
        raise top.fail("topic_root", "must not contain + # $ or start with /")
    keepalive = top.number("keepalive", 30, minimum=2, maximum=3600, integer=True)
    heartbeat = top.number("heartbeat_interval", 30.0, minimum=0.5, maximum=3600)
    advertise_ip = top.text("advertise_ip", max_length=45)
    if advertise_ip is not None:
        try:
            ipaddress.ip_address(advertise_ip)
        except ValueError:
            raise top.fail("advertise_ip", f"not an IP address: {advertise_ip!r}") from None
    advertise_port = top.number("advertise_port", 0, minimum=1, maximum=65535, integer=True)

    relay_settings = _relay(top.table("relay"))

    if "recorder" not in data:
        raise top.fail("recorder", "the [recorder] table is required")
    recorder = _recorder(top.table("recorder"))

    back = top.table("backoff")
    initial = back.number("initial", 0.5, minimum=0.01, maximum=60)
    maximum = back.number("maximum", 30.0, minimum=0.01, maximum=3600)
    back.reject_unknown()
    if maximum < initial:
        raise back.fail("maximum", "must be at least backoff.initial")
    top.reject_unknown()
    assert serial is not None
    assert domain is not None
    assert state_dir is not None
    return AgentConfig(
        serial=serial,
        domain=domain,
        verification_code=code,
        state_dir=Path(state_dir),
        recorder=recorder,
        **relay_settings,
        topic_root=topic_root,
        keepalive=int(keepalive),
        heartbeat_interval=float(heartbeat),
        backoff=BackoffPolicy(initial=initial, maximum=maximum),
        advertise_ip=advertise_ip,
        advertise_port=int(advertise_port) or None,
    )


def load_config(path: Path) -> AgentConfig:
    """Read and validate `path`; `ConfigError` with a clear message for any problem."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    if len(raw) > MAX_CONFIG_SIZE:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_SIZE} bytes")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return config_from_mapping(data, str(path))


def tls_context(config: AgentConfig) -> ssl.SSLContext:
    """A verifying client TLS context: the configured CA file, else the system's."""
    if config.ca_file is not None:
        return ssl.create_default_context(cafile=str(config.ca_file))
    return ssl.create_default_context()


def data_tls_context(config: AgentConfig) -> ssl.SSLContext | None:
    """The verifying TLS context for the relay's data port; None if it speaks plain TCP.

    Raises `ConfigError` if the CA file cannot be loaded (it may have changed
    since the config was read).
    """
    if not config.data_tls:
        return None
    cafile = config.data_ca_file or config.ca_file
    try:
        return ssl.create_default_context(cafile=str(cafile) if cafile is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"relay.data_ca_file: cannot load {cafile}: {exc}") from None
