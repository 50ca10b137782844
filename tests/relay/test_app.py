"""The Relay lifecycle and the `nvrshare relay` verb's key management."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from nvrshare.cli import build_parser
from nvrshare.relay.app import Relay
from nvrshare.relay.config import RelayConfig
from nvrshare.relay.services import KeyStore
from tests.relay.conftest import CHEAP_SCRYPT


async def test_relay_serves_and_runs_components_in_order(tmp_path: Path) -> None:
    log: list[str] = []

    def component(name: str):  # type: ignore[no-untyped-def]
        @contextlib.asynccontextmanager
        async def run(relay: Relay) -> AsyncIterator[None]:
            # Components start after the services and the API: they can use both.
            assert relay.services.devices is not None
            assert relay.http_port > 0
            log.append(f"start {name}")
            try:
                yield
            finally:
                log.append(f"stop {name}")

        return run

    config = RelayConfig(data_dir=tmp_path, http_port=0, scrypt=CHEAP_SCRYPT)
    async with Relay(config, components=[component("registry"), component("dataplane")]) as relay:
        async with aiohttp.ClientSession() as session, session.get(
            f"{relay.url}/api/health"
        ) as response:
            assert response.status == 200
        relay.close()
        await relay.wait_closed()
    assert log == ["start registry", "start dataplane", "stop dataplane", "stop registry"]


async def test_a_failing_component_unwinds_everything(tmp_path: Path) -> None:
    @contextlib.asynccontextmanager
    async def broken(_relay: Relay) -> AsyncIterator[None]:
        raise RuntimeError("broker would not start")
        yield  # pragma: no cover

    config = RelayConfig(data_dir=tmp_path, http_port=0, scrypt=CHEAP_SCRYPT)
    with pytest.raises(RuntimeError, match="broker"):
        async with Relay(config, components=[broken]):
            pass
    # The port was released and the store closed: a new relay starts on the same dir.
    async with Relay(config):
        pass


async def _run(*argv: str) -> int:
    args = build_parser().parse_args(list(argv))
    result = args.func(args)
    return int(await result if inspect.isawaitable(result) else result)


async def test_relay_verb_rotates_and_retires_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = KeyStore(tmp_path).signing_key.key_id
    assert await _run("relay", "--data-dir", str(tmp_path), "--rotate-key") == 0
    keys = KeyStore(tmp_path)
    assert keys.signing_key.key_id != first
    assert first in keys.key_ring
    assert await _run("relay", "--data-dir", str(tmp_path), "--retire-key", first) == 0
    assert set(KeyStore(tmp_path).key_ring) == {keys.signing_key.key_id}
    assert await _run("relay", "--data-dir", str(tmp_path), "--retire-key", "nope") == 2
    assert "no live key" in capsys.readouterr().err


async def test_relay_verb_needs_a_config_or_data_dir(capsys: pytest.CaptureFixture[str]) -> None:
    assert await _run("relay") == 2
    assert "--data-dir" in capsys.readouterr().err


async def test_maintenance_runs_as_a_named_task_and_stops(tmp_path: Path) -> None:
    config = RelayConfig(data_dir=tmp_path, http_port=0, scrypt=CHEAP_SCRYPT)
    async with Relay(config):
        [task] = [t for t in asyncio.all_tasks() if t.get_name() == "relay.maintenance"]
        assert not task.done()
    assert task.cancelled()
