"""The `nvrshare site` verb end to end, through the real dispatcher, against a loopback relay."""

from __future__ import annotations

import asyncio
import inspect
import io
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from nvrshare.cli import build_parser
from nvrshare.client.site_cli import parse_device_perm, parse_duration
from nvrshare.relay.app import Relay
from tests.client.conftest import PASSWORD, register_device

Run = Callable[..., Awaitable[tuple[int, str, str]]]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    """Run `nvrshare ARGV...` in this process as HOME's user; returns (exit, out, err)."""

    async def run(home: Path, *argv: str) -> tuple[int, str, str]:
        monkeypatch.setenv("NVRSHARE_HOME", str(home))
        monkeypatch.setenv("NVRSHARE_PASSWORD", PASSWORD)
        monkeypatch.setattr(sys, "stdin", io.StringIO(""))
        capsys.readouterr()
        args = build_parser().parse_args(list(argv))
        result = args.func(args)
        if inspect.isawaitable(result):
            result = await result
        captured = capsys.readouterr()
        return int(result), captured.out, captured.err

    return run


async def _login(cli: Run, home: Path, url: str, name: str) -> None:
    code, _, err = await cli(home, "account", "register", "--relay", url, "--name", name,
                             "--email", f"{name}@example.com")  # fmt: skip
    assert code == 0, err
    code, _, err = await cli(home, "account", "login", name, "--relay", url)
    assert code == 0, err


async def test_cli_site_handover(relay: Relay, tmp_path: Path, cli: Run) -> None:
    await register_device(relay.services, "SITE7", code="CODE42")
    installer, owner = tmp_path / "installer", tmp_path / "owner"
    await _login(cli, installer, relay.url, "installer")
    await _login(cli, owner, relay.url, "owner")
    code, out, err = await cli(installer, "site", "org", "create", "Acme")
    assert (code, "Acme" in out) == (0, True), err
    code, out, err = await cli(installer, "site", "create", "Bakery", "--address", "1 Main St",
                               "--json")  # fmt: skip
    assert code == 0, err
    site_id = json.loads(out)["id"]
    code, out, err = await cli(installer, "site", "add-device", site_id, "SITE7",
                               "--code", "CODE42")  # fmt: skip
    assert code == 0, err
    assert "device SITE7" in out
    code, out, err = await cli(
        installer, "site", "invite", site_id, "--email", "owner@example.com",
        "--remark", "Your recorder", "--site-info", "30d",
        "--device-perm", "SITE7:live_view,playback@12h", "--allow-disable-service",
    )  # fmt: skip
    assert code == 0, err
    code, out, _ = await cli(installer, "site", "show", site_id)
    assert "[not_accepted]" in out
    code, out, _ = await cli(owner, "site", "invitations", "--json")
    [invitation] = json.loads(out)
    assert invitation["remark"] == "Your recorder"
    code, out, err = await cli(owner, "site", "accept", invitation["id"])
    assert code == 0, err
    assert "[handed_over]" in out
    code, out, _ = await cli(owner, "site", "mine")
    assert "installer SITE7: live_view,playback" in out
    code, out, err = await cli(installer, "site", "service", site_id, "--off")
    assert code == 0, err
    assert "cloud service OFF" in out
    code, out, err = await cli(owner, "site", "revoke", site_id, "--all-devices")
    assert (code, out.strip()) == (0, "revoked 1 installer permission(s)"), err
    code, out, err = await cli(owner, "site", "revoke", site_id)
    assert code == 2
    assert "--site-info" in err
    # A refusal is exit 1 with the relay's code.
    code, out, err = await cli(installer, "site", "invite", site_id, "--email", "x@example.com")
    assert code == 1
    assert "handed over" in err


def test_duration_and_device_perm_parsing() -> None:
    assert parse_duration("30d") == 30 * 86400
    assert parse_duration("90m") == 5400
    assert parse_device_perm("DS-1:playback,live_view@2h", 100) == (
        "DS-1", (["live_view", "playback"], 100, 7300)
    )
    assert parse_device_perm("DS-1:configuration", 0)[1][2] == 30 * 86400
    for bad in ("0d", "1y", "", "-5m", "9999999d"):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)
    for bad in ("DS-1", "DS-1:", ":playback", "DS-1:root", "DS-1:playback@forever"):
        with pytest.raises(ValueError):  # UsageError; the message varies
            parse_device_perm(bad, 0)


async def test_site_verb_as_a_process_without_login(tmp_path: Path) -> None:
    env = dict(os.environ, NVRSHARE_HOME=str(tmp_path / "nobody"))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nvrshare", "site", "list",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1, (out, err)
    assert b"not logged in" in err
