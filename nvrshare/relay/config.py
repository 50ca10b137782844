"""The relay's configuration: one frozen dataclass with documented defaults.

Loaded from a TOML file whose top-level keys are the field names (an optional
`[relay]` table is accepted too).  Unknown keys, wrong types and out-of-range
values are refused with a `RelayConfigError` naming the key, so a typo never
silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nvrshare.relay.errors import RelayConfigError

__all__ = ["DEFAULT_REGIONS", "RelayConfig", "ScryptParams", "config_from_mapping", "load_config"]

DEFAULT_REGIONS = ("EU", "NA", "SA", "AS", "AF", "OC")
_REGION = re.compile(r"[A-Z]{2,8}")


@dataclass(frozen=True, kw_only=True, slots=True)
class ScryptParams:
    """scrypt cost for passwords and verification codes (RFC 7914 names)."""

    n: int = 2**15
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        if self.n < 2 or self.n & (self.n - 1) or self.n > 2**20:
            raise RelayConfigError("scrypt n must be a power of two in 2..2**20")
        if not 1 <= self.r <= 32 or not 1 <= self.p <= 16:
            raise RelayConfigError("scrypt r must be in 1..32 and p in 1..16")


@dataclass(frozen=True, kw_only=True, slots=True)
class RelayConfig:
    """Everything the relay's control plane needs; every field has a safe default.

    `database_url` defaults to an SQLite file in `data_dir` (WAL mode);
    production points it at PostgreSQL (`postgresql+asyncpg://...`), optionally
    inside `database_schema`.  Durations are seconds.
    """

    data_dir: Path
    database_url: str = ""
    database_schema: str | None = None
    http_host: str = "127.0.0.1"
    http_port: int = 8480
    issuer: str = "nvrshare-relay"
    token_ttl: int = 300
    session_ttl: int = 12 * 3600
    qr_ttl: int = 24 * 3600
    default_region: str = "EU"
    regions: tuple[str, ...] = DEFAULT_REGIONS
    scrypt: ScryptParams = field(default_factory=ScryptParams)
    max_body_bytes: int = 64 * 1024
    max_shares_per_device: int = 64
    max_devices_per_account: int = 256
    login_failures_per_account: int = 5
    login_failures_per_source: int = 20
    login_window: int = 300
    bind_failures_per_device: int = 5
    bind_failures_per_account: int = 10
    bind_failures_per_source: int = 30
    bind_window: int = 600
    store_retry_after: int = 5
    maintenance_interval: int = 300
    # Reverse proxies whose X-Forwarded-For is believed (for per-source limits).
    trusted_proxies: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.data_dir, Path):
            object.__setattr__(self, "data_dir", Path(self.data_dir))
        if not self.database_url:
            url = f"sqlite+aiosqlite:///{self.data_dir / 'relay.db'}"
            object.__setattr__(self, "database_url", url)
        if not self.database_url.startswith(("sqlite+aiosqlite:", "postgresql+asyncpg:")):
            raise RelayConfigError(
                "database_url must use sqlite+aiosqlite:// or postgresql+asyncpg://"
            )
        if self.database_schema is not None and not re.fullmatch(
            r"[a-z_][a-z0-9_]{0,62}", self.database_schema
        ):
            raise RelayConfigError("database_schema must be a lowercase SQL identifier")
        if not 0 <= self.http_port <= 65535:
            raise RelayConfigError("http_port must be in 0..65535")
        if not self.regions or not all(_REGION.fullmatch(r) for r in self.regions):
            raise RelayConfigError("regions must be a non-empty list of codes like 'EU'")
        if self.default_region not in self.regions:
            raise RelayConfigError("default_region must be one of regions")
        if not 0 < len(self.issuer) <= 64:
            raise RelayConfigError("issuer must be 1..64 characters")
        for name in (
            "token_ttl", "session_ttl", "qr_ttl", "max_body_bytes", "max_shares_per_device",
            "max_devices_per_account", "login_failures_per_account",
            "login_failures_per_source", "login_window", "bind_failures_per_device",
            "bind_failures_per_account", "bind_failures_per_source", "bind_window",
            "store_retry_after", "maintenance_interval",
        ):  # fmt: skip
            if getattr(self, name) <= 0:
                raise RelayConfigError(f"{name} must be positive")
        try:
            proxies = tuple(str(ipaddress.ip_address(p)) for p in self.trusted_proxies)
        except ValueError:
            raise RelayConfigError("trusted_proxies must list IP addresses") from None
        object.__setattr__(self, "trusted_proxies", proxies)
        if self.token_ttl > 24 * 3600:
            raise RelayConfigError("token_ttl must be at most a day: tokens are short-lived")


def _coerce(name: str, value: Any, annotation: str) -> Any:
    if name == "data_dir":
        if not isinstance(value, str):
            raise RelayConfigError("data_dir must be a string path")
        return Path(value)
    if name == "scrypt":
        if not isinstance(value, dict) or set(value) - {"n", "r", "p"}:
            raise RelayConfigError("scrypt must be a table with keys n, r, p")
        if not all(type(v) is int for v in value.values()):
            raise RelayConfigError("scrypt n, r, p must be integers")
        return ScryptParams(**value)
    if name in ("regions", "trusted_proxies"):
        if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
            raise RelayConfigError(f"{name} must be a list of strings")
        return tuple(value)
    expected: type = int if annotation == "int" else str
    if "None" in annotation and value is None:
        return None
    if type(value) is not expected:
        raise RelayConfigError(f"{name} must be a{'n' if expected is int else ''} {annotation}")
    return value


def load_config(path: Path, **overrides: Any) -> RelayConfig:
    """Read a TOML file into a `RelayConfig`; `overrides` (e.g. from the CLI) win.

    Raises `RelayConfigError` for an unreadable file, bad TOML, unknown keys,
    wrong types or invalid values.
    """
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RelayConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RelayConfigError(f"{path} is not valid TOML: {exc}") from exc
    return config_from_mapping(raw, str(path), **overrides)


def config_from_mapping(raw: dict[str, Any], path: str, **overrides: Any) -> RelayConfig:
    """`load_config` for an already parsed TOML document; `path` names it in errors."""
    if set(raw) == {"relay"} and isinstance(raw["relay"], dict):
        raw = raw["relay"]
    fields = {f.name: str(f.type) for f in dataclasses.fields(RelayConfig)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise RelayConfigError(f"{path}: unknown key(s) {', '.join(unknown)}")
    values = {name: _coerce(name, value, fields[name]) for name, value in raw.items()}
    values.update({k: v for k, v in overrides.items() if v is not None})
    if "data_dir" not in values:
        raise RelayConfigError(f"{path}: data_dir is required")
    try:
        return RelayConfig(**values)
    except TypeError as exc:
        raise RelayConfigError(f"{path}: {exc}") from exc
