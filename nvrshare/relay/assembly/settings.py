"""The product relay's settings: one TOML file, one table per part.

    data_dir = "/var/lib/nvrshare"      # top-level keys: `RelayConfig` (control plane)
    http_port = 8480

    [broker]      # `DevicePlaneSettings.broker` (default: embedded mosquitto)
    [devices]     # provisioning endpoint and claim policy
    [dataplane]   # host, port, advertised_host, advertised_port, agent_timeout,
                  # tls_cert, tls_key (PEM files: the data port then speaks TLS only)
    [portal]      # secure_cookies = true behind TLS

Every table is optional; unknown keys and wrong types are refused with a
`RelayConfigError` naming them, so a typo never falls back to a default.
"""

from __future__ import annotations

import ssl
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nvrshare.relay.broker import BrokerError
from nvrshare.relay.config import RelayConfig, config_from_mapping
from nvrshare.relay.errors import RelayConfigError
from nvrshare.relay.registry.component import DevicePlaneSettings, settings_from_mapping

__all__ = ["DataPortSettings", "StackSettings", "load_settings"]

COMPONENT_TABLES = ("broker", "devices", "dataplane", "portal")


@dataclass(frozen=True, kw_only=True, slots=True)
class DataPortSettings:
    """Where the data plane listens and what it tells agents to dial.

    port: None (the default) means the relay's HTTP port + 1, i.e. 8481 with
    the default 8480 (the port clients assume), or any free port when the HTTP
    port is 0; port 0 picks a free port (read it from `status.json`).  tls_cert/tls_key:
    PEM files; with them every data connection (clients and agents) is TLS.
    """

    host: str = "127.0.0.1"
    port: int | None = None
    advertised_host: str | None = None
    advertised_port: int | None = None
    agent_timeout: float = 10.0
    tls_cert: Path | None = None
    tls_key: Path | None = None

    def __post_init__(self) -> None:
        if self.port is not None and not 0 <= self.port <= 65535:
            raise RelayConfigError("dataplane.port must be in 0..65535")
        if self.advertised_port is not None and not 1 <= self.advertised_port <= 65535:
            raise RelayConfigError("dataplane.advertised_port must be in 1..65535")
        if not 0 < self.agent_timeout <= 120:
            raise RelayConfigError("dataplane.agent_timeout must be in (0, 120] seconds")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise RelayConfigError("dataplane.tls_cert and dataplane.tls_key go together")

    def listen_port(self, http_port: int) -> int:
        """The port to bind, resolving the default against the relay's HTTP port."""
        if self.port is not None:
            return self.port
        return http_port + 1 if 0 < http_port < 65535 else 0

    def tls_context(self) -> ssl.SSLContext | None:
        """The server TLS context, or None for plain TCP; `RelayConfigError` if unloadable."""
        if self.tls_cert is None or self.tls_key is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.tls_cert, self.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise RelayConfigError(f"dataplane TLS: cannot load {self.tls_cert}: {exc}") from None
        return context


@dataclass(frozen=True, kw_only=True, slots=True)
class StackSettings:
    """Everything `RelayStack` runs: control plane, device plane, data plane, portal."""

    relay: RelayConfig
    devices: DevicePlaneSettings = field(default_factory=DevicePlaneSettings)
    data: DataPortSettings = field(default_factory=DataPortSettings)
    secure_cookies: bool = False


def _typed(table: Mapping[str, object], key: str, kind: type, where: str) -> Any:
    value = table.get(key)
    if value is None:
        return None
    if kind is float and type(value) is int:
        value = float(value)
    if type(value) is not kind:
        raise RelayConfigError(f"{where}.{key} must be a {kind.__name__}")
    return value


def _table(raw: Mapping[str, object], name: str) -> Mapping[str, object]:
    table = raw.get(name, {})
    if not isinstance(table, Mapping):
        raise RelayConfigError(f"[{name}] must be a table")
    return table


def _data_port(table: Mapping[str, object], overrides: Mapping[str, Any]) -> DataPortSettings:
    types = {
        "host": str, "port": int, "advertised_host": str, "advertised_port": int,
        "agent_timeout": float, "tls_cert": str, "tls_key": str,
    }  # fmt: skip
    unknown = sorted(set(table) - set(types))
    if unknown:
        raise RelayConfigError(f"dataplane.{unknown[0]}: unknown key")
    values = {key: _typed(table, key, kind, "dataplane") for key, kind in types.items()}
    values.update({k: v for k, v in overrides.items() if v is not None})
    for key in ("tls_cert", "tls_key"):
        if values[key] is not None:
            values[key] = Path(values[key])
    return DataPortSettings(**{k: v for k, v in values.items() if v is not None})


def settings_from_document(
    raw: Mapping[str, object],
    origin: str,
    *,
    relay: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
) -> StackSettings:
    """Settings from a parsed TOML document; `relay`/`data` override (the CLI's flags)."""
    relay_keys = {k: v for k, v in raw.items() if k not in COMPONENT_TABLES}
    try:
        devices = settings_from_mapping(
            {"broker": _table(raw, "broker"), "devices": _table(raw, "devices")}
        )
    except BrokerError as exc:
        raise RelayConfigError(f"{origin}: {exc}") from None
    portal = _table(raw, "portal")
    if set(portal) - {"secure_cookies"}:
        raise RelayConfigError(f"{origin}: portal.{sorted(set(portal))[0]}: unknown key")
    secure = _typed(portal, "secure_cookies", bool, "portal")
    overrides = {k: v for k, v in (relay or {}).items() if v is not None}
    config = config_from_mapping(relay_keys, origin, **overrides)
    return StackSettings(
        relay=config,
        devices=devices,
        data=_data_port(_table(raw, "dataplane"), data or {}),
        secure_cookies=bool(secure),
    )


def load_settings(
    path: Path | None,
    *,
    relay: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
) -> StackSettings:
    """Read `path` (or nothing: defaults + overrides); `RelayConfigError` for any problem."""
    if path is None:
        if not relay or relay.get("data_dir") is None:
            raise RelayConfigError("give --config FILE or --data-dir DIR")
        return settings_from_document({}, "<defaults>", relay=relay, data=data)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RelayConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RelayConfigError(f"{path} is not valid TOML: {exc}") from exc
    return settings_from_document(raw, str(path), relay=relay, data=data)
