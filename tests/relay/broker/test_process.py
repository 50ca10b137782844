"""The managed mosquitto process never mistakes another listener for itself."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from nvrshare.relay.broker import BrokerPortTaken, BrokerProcessError, BrokerSettings, open_broker
from nvrshare.relay.broker import embedded as embedded_module
from nvrshare.relay.broker.process import MosquittoProcess
from tests.support.net import free_port, held_port

pytestmark = pytest.mark.mosquitto


def _open_config(port: int) -> str:
    return f"listener {port} 127.0.0.1\nallow_anonymous true\n"


async def test_a_port_another_process_listens_on_is_refused_before_spawning(
    tmp_path: Path,
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as squatter:
        port = squatter.getsockname()[1]
        process = MosquittoProcess(_open_config(port), tmp_path, host="127.0.0.1", port=port)
        with pytest.raises(BrokerPortTaken, match="already listens"):
            await process.start()
        assert process.pid is None


async def test_a_port_taken_before_mosquitto_binds_is_reported_as_taken(tmp_path: Path) -> None:
    with held_port() as port:  # bound, not listening: the probe sees nothing, bind fails
        process = MosquittoProcess(_open_config(port), tmp_path, host="127.0.0.1", port=port)
        with pytest.raises(BrokerPortTaken, match="Address already in use"):
            await process.start()
        assert not process.running


async def test_a_listener_appearing_after_the_check_is_not_taken_for_mosquitto(
    tmp_path: Path,
) -> None:
    # A stand-in that fails to bind, as mosquitto does when another process took
    # its port between the free-port check and its own bind.
    fake = tmp_path / "mosquitto"
    fake.write_text("#!/bin/sh\nsleep 0.5\necho 'Error: Address already in use'\nexit 1\n")
    fake.chmod(0o755)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))  # bound, not yet listening: the check passes
        port = squatter.getsockname()[1]
        process = MosquittoProcess(
            _open_config(port), tmp_path, host="127.0.0.1", port=port, executable=str(fake)
        )
        starting = asyncio.create_task(process.start())
        await asyncio.sleep(0.1)  # past the check; the stand-in is "binding"
        squatter.listen()
        with pytest.raises(BrokerPortTaken, match="Address already in use"):
            await starting
    assert not process.running


async def test_a_broken_config_is_a_process_error_not_a_taken_port(tmp_path: Path) -> None:
    with held_port() as port:
        process = MosquittoProcess("no_such_option 1\n", tmp_path, host="127.0.0.1", port=port)
        with pytest.raises(BrokerProcessError, match="did not start") as raised:
            await process.start()
    assert not isinstance(raised.value, BrokerPortTaken)


async def test_the_embedded_broker_picks_another_port_when_its_choice_was_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def ports() -> Iterator[int]:
        with held_port() as taken:
            yield taken
            while True:
                yield free_port()

    choices = ports()
    picked: list[int] = []

    def pick(host: str) -> int:
        picked.append(next(choices))
        return picked[-1]

    monkeypatch.setattr(embedded_module, "_free_port", pick)
    async with open_broker(BrokerSettings(client_id="relay:a"), tmp_path) as broker:
        assert len(picked) == 2
        assert broker.port == picked[1]
        assert broker.process is not None
        assert broker.process.running
    choices.close()


async def test_a_configured_port_that_is_taken_is_not_swapped_silently(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as squatter:
        port = squatter.getsockname()[1]
        with pytest.raises(BrokerPortTaken):
            async with open_broker(BrokerSettings(client_id="relay:a", port=port), tmp_path):
                pass
