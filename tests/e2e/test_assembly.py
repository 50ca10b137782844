"""The assembled relay (`RelayStack`) in-process: settings, what it serves, how it stops."""

from __future__ import annotations

import os
import secrets
import ssl
from pathlib import Path

import aiohttp
import psutil
import pytest

from nvrshare.client.streams import RelayEndpoint, StreamRefused, StreamUnavailable, open_session
from nvrshare.protocol.messages import PtzAction, SessionKind, SessionRequest
from nvrshare.protocol.reasons import RefusalReason
from nvrshare.relay.assembly import RelayStack, load_settings, read_status
from nvrshare.relay.assembly.ptz import parse_command
from nvrshare.relay.errors import InvalidRequest, RelayConfigError
from nvrshare.relay.services.models import DataEndpoint
from tests.e2e.conftest import NEEDS_TOOLS
from tests.support.tls import make_certificate

TOKEN = b"t" * 40


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "relay.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_settings_read_every_table(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        f'data_dir = "{tmp_path}"\nhttp_port = 9000\n[scrypt]\nn = 16\nr = 1\np = 1\n'
        '[dataplane]\nadvertised_host = "relay.example"\nagent_timeout = 4\n'
        '[devices]\ntrust_first_claim = true\n[broker]\nclient_id = "relay-7"\n'
        "[portal]\nsecure_cookies = true\n",
    )
    settings = load_settings(path)
    assert settings.relay.http_port == 9000
    assert settings.relay.scrypt.n == 16
    assert settings.data.listen_port(9000) == 9001  # the HTTP port + 1 by default
    assert settings.data.advertised_host == "relay.example"
    assert settings.data.agent_timeout == 4.0
    assert settings.devices.provisioning.trust_first_claim
    assert settings.devices.broker.client_id == "relay-7"
    assert settings.secure_cookies
    assert load_settings(path, data={"port": 0}).data.listen_port(9000) == 0


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("bogus = 1\n", "bogus"),
        ("[dataplane]\nprot = 1\n", "dataplane.prot"),
        ('[dataplane]\nport = "1"\n', "dataplane.port"),
        ("[dataplane]\nport = 70000\n", "dataplane.port"),
        ('[dataplane]\ntls_cert = "a.pem"\n', "tls_key"),
        ("[devices]\ntrust_first_claim = 1\n", "trust_first_claim"),
        ("[broker]\nurl = 3\n", "broker.url"),
        ("[portal]\nsecure = true\n", "portal.secure"),
        ("dataplane = 3\n", "[dataplane]"),
    ],
)
def test_settings_errors_name_the_key(tmp_path: Path, text: str, named: str) -> None:
    path = _write(tmp_path, f'data_dir = "{tmp_path}"\n{text}')
    with pytest.raises(RelayConfigError) as error:
        load_settings(path)
    assert named in error.value.message


def test_settings_need_a_data_dir() -> None:
    with pytest.raises(RelayConfigError):
        load_settings(None, relay={"http_port": 1})


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"action": "stop"},
        {"channel": 0, "action": "stop"},
        {"channel": True, "action": "stop"},
        {"channel": 1, "action": "dance"},
        {"channel": 1, "action": ["stop"]},
        {"channel": 1, "action": "continuous_move", "pan": 2},
        {"channel": 1, "action": "continuous_move", "pan": "0.5"},
        {"channel": 1, "action": "continuous_move", "pan": float("nan")},
        {"channel": 1, "action": "goto_preset"},
        {"channel": 1, "action": "stop", "preset": 3},
        {"channel": 1, "action": "stop", "extra": 1},
    ],
)
def test_ptz_bodies_are_validated(body: object) -> None:
    with pytest.raises(InvalidRequest):
        parse_command(body, TOKEN)


def test_ptz_body_becomes_a_command() -> None:
    command = parse_command({"channel": 2, "action": "continuous_move", "tilt": -1}, TOKEN)
    assert (command.channel, command.action, command.tilt) == (2, PtzAction.CONTINUOUS_MOVE, -1.0)
    assert parse_command({"channel": 1, "action": "goto_preset", "preset": 4}, TOKEN).preset == 4


@pytest.mark.mosquitto
@NEEDS_TOOLS
async def test_the_stack_serves_everything_and_stops_its_broker(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        f'data_dir = "{tmp_path / "data"}"\nhttp_port = 0\n[scrypt]\nn = 16\nr = 1\np = 1\n'
        "[dataplane]\nport = 0\n",
    )
    async with RelayStack(load_settings(path)) as stack:
        status = read_status(tmp_path / "data")
        assert status == stack.status
        assert status["data_port"] > 0
        assert status["broker_embedded"]
        broker = stack.devices.running.broker.process  # type: ignore[union-attr]
        assert broker is not None
        broker_pid = broker.pid
        assert psutil.pid_exists(broker_pid)
        api = status["api"]
        async with aiohttp.ClientSession() as http:
            async with http.get(api + "/", allow_redirects=False) as response:
                assert (response.status, response.headers["Location"]) == (302, "/portal/")
            async with http.get(status["portal"]) as response:
                assert response.status in (200, 303)
            async with http.get(status["metrics"]) as response:
                assert "nvrshare_relay_sessions_open 0" in await response.text()
            async with http.get(api + "/api/openapi.json") as response:
                assert "post" in (await response.json())["paths"]["/api/v1/devices/{serial}/ptz"]
            ptz = f"{api}/api/v1/devices/SN1/ptz"
            async with http.post(ptz, json={"channel": 1, "action": "stop"}) as response:
                assert response.status == 401
                assert (await response.json())["error"]["code"] == "unauthorized"
            name, password = "ptz-user", secrets.token_urlsafe(12)
            await http.post(f"{api}/api/v1/accounts", json={"name": name, "password": password})
            async with http.post(
                f"{api}/api/v1/sessions", json={"login": name, "password": password}
            ) as response:
                bearer = {"Authorization": f"Bearer {(await response.json())['token']}"}
            async with http.post(
                ptz, json={"channel": 1, "action": "stop"}, headers=bearer
            ) as response:  # no relation to that device
                assert response.status == 404
            async with http.post(ptz, data=b"x" * 5000, headers=bearer) as response:
                assert response.status == 413
    assert read_status(tmp_path / "data") is None  # removed on a clean stop
    assert not psutil.pid_exists(broker_pid) or psutil.Process(broker_pid).status() == "zombie"


@pytest.mark.mosquitto
@NEEDS_TOOLS
async def test_the_data_port_speaks_tls_when_configured(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    path = _write(
        tmp_path,
        f'data_dir = "{tmp_path / "data"}"\nhttp_port = 0\n[scrypt]\nn = 16\nr = 1\np = 1\n'
        f'[dataplane]\nport = 0\ntls_cert = "{cert}"\ntls_key = "{key}"\n',
    )
    async with RelayStack(load_settings(path)) as stack:
        assert stack.status["data_tls"] is True
        advertised = stack.relay.services.tokens.data_endpoint  # what issued tokens carry
        assert advertised == DataEndpoint(
            host="127.0.0.1", port=stack.status["data_port"], tls=True
        )
        context = ssl.create_default_context(cafile=str(cert))
        endpoint = RelayEndpoint(host="127.0.0.1", port=stack.status["data_port"], tls=context)
        request = SessionRequest(device_serial="SN1", channel=1, kind=SessionKind.LIVE_MAIN)
        with pytest.raises(StreamRefused) as refused:  # a typed answer, over TLS
            await open_session(endpoint, b"not a token", request)
        assert refused.value.reason is RefusalReason.TOKEN_INVALID
        plain = RelayEndpoint(host="127.0.0.1", port=stack.status["data_port"])
        with pytest.raises((StreamUnavailable, StreamRefused)):  # plain TCP gets nowhere
            await open_session(plain, b"not a token", request)


def test_public_names() -> None:
    import nvrshare.relay.assembly as assembly  # noqa: PLC0415

    assert set(assembly.__all__) == {
        "STATUS_FILE", "DataPlaneComponent", "DataPortSettings", "DeviceUplink", "PtzGateway",
        "RelayStack", "RevocationFollower", "StackSettings", "load_settings", "read_status",
    }  # fmt: skip


def test_a_status_file_left_by_a_dead_relay_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "status.json").write_text('{"pid": 999999999, "api": "http://x"}')
    assert read_status(tmp_path) is None
    (tmp_path / "status.json").write_text('["not", "an", "object"]')
    assert read_status(tmp_path) is None
    (tmp_path / "status.json").write_text(f'{{"pid": {os.getpid()}, "api": "http://x"}}')
    assert read_status(tmp_path) == {"pid": os.getpid(), "api": "http://x"}
