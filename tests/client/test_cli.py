"""The CLI verbs end to end.

`nvrshare relay` runs as a real process (started, used, stopped by SIGTERM).
The client verbs run through the real dispatcher in this process (parse →
func → await), because spawning an interpreter per verb would cost a second
each; one test runs a client verb as a process to cover that path too.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import json
import os
import signal
import stat
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from nvrshare.cli import build_parser
from nvrshare.client.cli import parse_permission_spec
from nvrshare.relay.config import load_config
from nvrshare.relay.services import Services
from nvrshare.relay.store import Store
from tests.client.conftest import PASSWORD, register_device
from tests.support.net import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture
def cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Awaitable[tuple[int, str, str]]]:
    """Run `nvrshare ARGV...` in this process, as HOME's user; returns (exit, out, err)."""

    async def run(home: Path, *argv: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setenv("NVRSHARE_HOME", str(home))
        monkeypatch.setenv("NVRSHARE_PASSWORD", PASSWORD)
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        capsys.readouterr()
        args = build_parser().parse_args(list(argv))
        result = args.func(args)
        if inspect.isawaitable(result):
            result = await result
        captured = capsys.readouterr()
        return int(result), captured.out, captured.err

    return run


async def _nvrshare(home: Path, *argv: str, stdin: str = "") -> tuple[int, str, str]:
    env = dict(os.environ, NVRSHARE_HOME=str(home), NVRSHARE_PASSWORD=PASSWORD)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nvrshare", *argv,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
async def relay_process(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    config_file = tmp_path / "relay.toml"
    # Port 0: the relay binds a free port itself and says which (no port to race for).
    config_file.write_text(
        f'data_dir = "{tmp_path / "data"}"\nhttp_port = 0\n[scrypt]\nn = 16\nr = 1\np = 1\n'
    )
    # stderr to a file, not a pipe nobody reads (a full pipe would block the relay).
    with (tmp_path / "relay.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "nvrshare", "relay", "--config", str(config_file),
            stdout=asyncio.subprocess.PIPE, stderr=log,
        )  # fmt: skip
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 20)
        assert line.startswith(b"relay listening on http://127.0.0.1:"), line
        yield line.split()[-1].decode(), config_file
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_cli_share_flow(
    relay_process: tuple[str, Path], tmp_path: Path, cli: Callable[..., Awaitable[tuple]]
) -> None:
    url, config_file = relay_process
    config = load_config(config_file)
    # The registry is a later component: register the device through the service directly.
    async with Store(config) as store:
        await register_device(Services.build(config, store), "SN7", code="CODE42")
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    for home, name in ((alice, "alice"), (bob, "bob")):
        code, out, err = await cli(
            home, "account", "register", "--relay", url, "--name", name,
            "--email", f"{name}@example.com",
        )  # fmt: skip
        assert code == 0, err
        code, out, err = await cli(
            home, "account", "login", name, "--relay", url, "--password-stdin", stdin=PASSWORD
        )
        assert code == 0, err
        session_file = home / "session.json"
        assert stat.S_IMODE(session_file.stat().st_mode) == 0o600
    code, out, err = await cli(alice, "device", "add", "SN7", "--code", "CODE42")
    assert code == 0, err
    code, out, _ = await cli(alice, "device", "list")
    assert "SN7" in out
    assert "online" in out
    code, out, err = await cli(alice, "share", "create", "SN7", "--name", "nobody",
                                     "--perm", "1:live_view")  # fmt: skip
    assert code == 1
    assert "doesn't exist" in err
    code, out, err = await cli(
        alice, "share", "create", "SN7", "--email", "bob@example.com",
        "--perm", "1:live_view,playback", "--perm", "2:all", "--remark", "PRIVATE", "--json",
    )  # fmt: skip
    assert code == 0, err
    share_id = json.loads(out)["share"]["id"]
    code, out, _ = await cli(bob, "shared-with-me", "--count")
    assert "you have 1 new sharings" in out
    code, out, err = await cli(bob, "share", "accept", share_id)
    assert code == 0, err
    code, out, _ = await cli(bob, "shared-with-me")
    assert "SN7" in out
    assert "accepted" in out
    assert "PRIVATE" not in out
    code, out, err = await cli(bob, "shared-with-me", "--rename", share_id, "Alice's garage")
    assert code == 0, err
    code, out, _ = await cli(bob, "shared-with-me")
    assert "Alice's garage" in out
    code, out, _ = await cli(alice, "share", "list")
    assert "PRIVATE" in out
    code, out, err = await cli(alice, "share", "edit", share_id, "--perm", "1:ptz",
                               "--clear-remark")  # fmt: skip
    assert code == 0, err
    assert "ch1: ptz" in out
    code, out, err = await cli(alice, "share", "edit", share_id, "--perm", "1:root")
    assert code == 2
    code, out, _ = await cli(alice, "share", "list", "SN7")
    assert "PRIVATE" not in out
    assert "bob@example.com" in out
    code, out, err = await cli(bob, "shared-with-me", "--delete", share_id)
    assert code == 0, err
    code, out, _ = await cli(bob, "shared-with-me")
    assert "nothing is shared with you" in out
    code, out, err = await cli(
        alice, "share", "create", "SN7", "--email", "bob@example.com", "--perm", "1:alarm"
    )
    assert code == 0, err
    code, out, _ = await cli(alice, "share", "history")
    assert "bob@example.com" in out
    code, out, err = await cli(alice, "share", "revoke", "SN7", "--all")
    assert (code, out.strip()) == (0, "stopped 1 share(s)"), err
    code, out, err = await cli(alice, "device", "rename", "SN7", "Garage")
    assert code == 0, err
    assert "Garage" in out
    code, out, err = await cli(alice, "device", "audit", "SN7")
    assert code == 0, err
    assert "share.revoked" in out
    code, out, err = await cli(alice, "device", "remove", "SN7")
    assert code == 0, err
    code, _, err = await cli(alice, "share", "reject", "no-such-share")
    assert code == 1
    assert "error:" in err


async def test_cli_without_login_or_relay(
    tmp_path: Path, cli: Callable[..., Awaitable[tuple]]
) -> None:
    code, _, err = await cli(tmp_path / "nobody", "device", "list")
    assert code == 1
    assert "not logged in" in err
    # One client verb as a real process: the dispatcher, exit code and stderr end to end.
    code, _, err = await _nvrshare(
        tmp_path / "nobody", "account", "login", "alice", "--relay",
        f"http://127.0.0.1:{free_port()}",
    )  # fmt: skip
    assert code == 4
    assert "cannot reach" in err


async def test_relay_cli_refuses_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('data_dir = "x"\nbogus = 1\n')
    code, _, err = await _nvrshare(tmp_path, "relay", "--config", str(bad))
    assert code == 2
    assert "unknown key(s) bogus" in err


def test_permission_spec() -> None:
    assert parse_permission_spec(["1:live_view, ptz", "2:all", "1:ptz"]) == {
        1: ["live_view", "ptz"],
        2: ["live_view", "playback", "ptz", "alarm", "two_way_audio"],
    }
    for bad in (["live_view"], ["x:ptz"], ["1:"], ["1:root"], []):
        with pytest.raises(ValueError):
            parse_permission_spec(bad)
