from __future__ import annotations

from pathlib import Path

import pytest

from nvrshare.agent.config import data_tls_context, load_config, tls_context
from nvrshare.agent.errors import ConfigError

GOOD = """
serial = "DS-7608NI-0820190101"
domain = "front-door"
verification_code = "ABCDEF"
state_dir = "{state}"
keepalive = 5

[relay]
broker_url = "mqtt://127.0.0.1:18830"
provisioning_url = "http://127.0.0.1:8080/api/v1/provision"
data_endpoint = "relay.example:7000"
public_keys = ["{key}"]

[recorder]
backend = "sim"
[recorder.settings]
channels = "4"

[backoff]
initial = 0.1
maximum = 2.0
"""
KEY = "A" * 43 + "="


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text.replace("{state}", str(tmp_path / "state")).replace("{key}", KEY))
    return path


def test_a_good_config_loads(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, GOOD))
    assert config.serial == "DS-7608NI-0820190101"
    assert config.broker.host == "127.0.0.1"
    assert config.broker.port == 18830
    assert config.broker.username is None
    assert config.data_endpoint == ("relay.example", 7000)
    assert config.recorder.backend == "sim"
    assert config.recorder.settings == {"channels": "4"}
    assert config.keepalive == 5
    assert config.backoff.maximum == 2.0
    assert len(config.relay_public_keys) == 1
    assert "ABCDEF" not in repr(config)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('serial = "DS-7608NI-0820190101"', 'serial = "a/b#"', "serial"),
        ('serial = "DS-7608NI-0820190101"', "", "serial: is required"),
        ('domain = "front-door"', 'domain = "Front Door"', "domain"),
        ('verification_code = "ABCDEF"', 'verification_code = "AB"', "verification_code"),
        ("keepalive = 5", 'keepalive = "5"', "keepalive: must be a int"),
        ("keepalive = 5", "keepalive = true", "keepalive"),
        ("keepalive = 5", "keepalive = 0", "keepalive: must be within"),
        ("keepalive = 5", "kepalive = 5", "kepalive: unknown key"),
        ('"mqtt://127.0.0.1:18830"', '"http://x"', "relay.broker_url"),
        ('"mqtt://127.0.0.1:18830"', '"mqtt://x:99999"', "relay.broker_url"),
        ('"relay.example:7000"', '"relay.example"', "relay.data_endpoint"),
        ('public_keys = ["{key}"]', 'public_keys = ["nope"]', "relay.public_keys"),
        ('backend = "sim"', 'backend = "nope"', "recorder.backend"),
        ('channels = "4"', "channels = 4", "recorder.settings"),
        ("maximum = 2.0", "maximum = 0.05", "backoff.maximum"),
        (
            'provisioning_url = "http://127.0.0.1:8080/api/v1/provision"',
            "",
            "relay.username: give a broker credential",
        ),
    ],
)
def test_bad_configs_say_which_key(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in GOOD
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")) as info:
        load_config(_write(tmp_path, GOOD.replace(old, new)))
    assert str(tmp_path / "agent.toml") in str(info.value)


def test_unreadable_and_non_toml_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(_write(tmp_path, "serial = "))


def test_ca_file_must_exist_and_builds_a_verifying_context(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"relay\.ca_file"):
        load_config(_write(tmp_path, GOOD.replace("[relay]", '[relay]\nca_file = "/nope.pem"')))
    config = load_config(_write(tmp_path, GOOD))
    assert config.ca_file is None
    context = tls_context(config)
    assert context.verify_mode.name == "CERT_REQUIRED"
    assert context.check_hostname


def test_data_port_tls_options(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, GOOD))
    assert (config.data_tls, config.data_ca_file, data_tls_context(config)) == (False, None, None)
    ca = tmp_path / "data-ca.pem"
    ca.write_text("not a certificate")

    def with_relay(lines: str) -> Path:
        return _write(tmp_path, GOOD.replace("[relay]", "[relay]\n" + lines))

    config = load_config(with_relay("data_tls = true"))
    assert config.data_tls
    context = data_tls_context(config)
    assert context is not None
    assert context.check_hostname
    config = load_config(with_relay(f'data_ca_file = "{ca}"'))  # a CA implies TLS
    assert (config.data_tls, config.data_ca_file) == (True, ca)
    with pytest.raises(ConfigError, match=r"relay\.data_ca_file"):  # unloadable CA
        data_tls_context(config)
    for bad, key in (
        ('data_tls = "yes"', r"relay\.data_tls"),
        ('data_ca_file = "/nope.pem"', r"relay\.data_ca_file"),
        (f'data_tls = false\ndata_ca_file = "{ca}"', r"relay\.data_ca_file"),
    ):
        with pytest.raises(ConfigError, match=key):
            load_config(with_relay(bad))
