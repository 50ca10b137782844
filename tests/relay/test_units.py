"""Store-free pieces: config loading, event bus, cursors, secret hashes."""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiohttp.test_utils import make_mocked_request
from hypothesis import given
from hypothesis import strategies as st

from nvrshare.relay.api.routing import Call
from nvrshare.relay.config import RelayConfig, ScryptParams, load_config
from nvrshare.relay.errors import InvalidRequest, RelayConfigError
from nvrshare.relay.services.events import EventBus, EventsLost, ShareChanged, ShareChangeKind
from nvrshare.relay.services.paging import decode_cursor, encode_cursor
from nvrshare.relay.services.secrets_hash import hash_secret, is_valid_hash, verify_secret


def test_config_defaults(tmp_path: Path) -> None:
    config = RelayConfig(data_dir=tmp_path)
    assert config.database_url == f"sqlite+aiosqlite:///{tmp_path}/relay.db"
    assert (config.token_ttl, config.scrypt) == (300, ScryptParams(n=2**15, r=8, p=1))


def test_config_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(
        'data_dir = "/var/lib/nvrshare"\nhttp_port = 9000\ntoken_ttl = 120\n'
        'regions = ["EU", "NA"]\n[scrypt]\nn = 1024\nr = 8\np = 1\n'
    )
    config = load_config(path, http_host="::1")
    assert config.data_dir == Path("/var/lib/nvrshare")
    assert (config.http_port, config.token_ttl, config.http_host) == (9000, 120, "::1")
    assert config.scrypt.n == 1024
    assert config.regions == ("EU", "NA")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('data_dir = "x"\ntoken_tll = 5\n', "unknown key"),
        ('data_dir = "x"\nhttp_port = "80"\n', "http_port must be"),
        ('data_dir = "x"\nhttp_port = 99999\n', "http_port"),
        ('data_dir = "x"\ndatabase_url = "mysql://x"\n', "database_url"),
        ('data_dir = "x"\n[scrypt]\nn = 1000\n', "power of two"),
        ("http_port = 1\n", "data_dir is required"),
        ("data_dir = \n", "not valid TOML"),
        ('data_dir = "x"\ndefault_region = "XX"\n', "default_region"),
    ],
)
def test_config_errors_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(text)
    with pytest.raises(RelayConfigError, match=message):
        load_config(path)


def test_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RelayConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


def _event(n: int) -> ShareChanged:
    return ShareChanged(device_serial="SN1", share_epoch=n, grant_version=n,
                        kind=ShareChangeKind.CREATED, account_ids=("a",))  # fmt: skip


async def test_event_bus_fans_out_and_reports_overflow() -> None:
    bus = EventBus(max_queue=2)
    fast, slow = bus.subscribe(), bus.subscribe()
    bus.publish(_event(1))
    assert fast.get_nowait() == _event(1)
    for n in range(2, 6):
        bus.publish(_event(n))
    assert await slow.get() == EventsLost(dropped=5)
    bus.publish(_event(6))
    assert await slow.get() == _event(6)
    slow.close()
    bus.publish(_event(7))
    assert slow.get_nowait() is None
    assert fast.get_nowait() == EventsLost(dropped=6)  # events 2..7: resync covers them


@given(st.lists(st.one_of(st.text(max_size=20), st.integers(), st.floats(allow_nan=False))))
def test_cursor_round_trip(key: list) -> None:
    cursor = encode_cursor(key)
    if len(cursor) <= 512:
        assert decode_cursor(cursor, len(key)) == key


@given(st.text(max_size=600))
def test_any_cursor_text_decodes_or_is_refused(text: str) -> None:
    with contextlib.suppress(InvalidRequest):
        decode_cursor(text, 1)


def test_secret_hashes() -> None:
    params = ScryptParams(n=16, r=1, p=1)
    encoded = hash_secret("ABCDEF", params)
    assert is_valid_hash(encoded)
    assert verify_secret("ABCDEF", encoded)
    assert not verify_secret("ABCDEG", encoded)
    assert hash_secret("ABCDEF", params) != encoded  # salted
    # Hostile stored hashes never raise and never run unbounded scrypt.
    for bad in ("", "scrypt$1$1$1$AA$AA", f"scrypt${2**30}$8$1$" + encoded.split("$", 4)[4], "x"):
        assert not is_valid_hash(bad)
        assert not verify_secret("ABCDEF", bad)


def _source(config: RelayConfig, remote: str, forwarded: str | None) -> str:
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    request = make_mocked_request("GET", "/api/v1/account", headers=headers)
    request = request.clone(remote=remote)
    services = SimpleNamespace(context=SimpleNamespace(config=config))
    call = Call(request=request, services=services, account_or_none=None, token=None, body={})  # type: ignore[arg-type]
    return call.source


def test_forwarded_for_is_believed_only_from_trusted_proxies(tmp_path: Path) -> None:
    plain = RelayConfig(data_dir=tmp_path)
    behind = RelayConfig(data_dir=tmp_path, trusted_proxies=("10.0.0.1", "::1"))
    assert _source(plain, "10.0.0.1", "203.0.113.5") == "10.0.0.1"
    assert _source(behind, "10.0.0.1", "198.51.100.7, 203.0.113.5") == "203.0.113.5"
    assert _source(behind, "10.0.0.1", "203.0.113.5, ::1") == "203.0.113.5"
    assert _source(behind, "10.0.0.1", "garbage") == "10.0.0.1"
    assert _source(behind, "10.0.0.1", None) == "10.0.0.1"
    assert _source(behind, "192.0.2.1", "203.0.113.5") == "192.0.2.1"
    with pytest.raises(RelayConfigError):
        RelayConfig(data_dir=tmp_path, trusted_proxies=("proxy.local",))
