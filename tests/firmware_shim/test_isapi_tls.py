"""isapi over HTTPS: a self-signed recorder is trusted only through a pinned fingerprint."""

from __future__ import annotations

import hashlib
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nvrshare.firmware_shim import ConfigError, RecorderConfig, UntrustedDevice, open_recorder
from nvrshare.firmware_shim.backends.isapi import create
from nvrshare.simulators.recorder import RecorderSimConfig, RecorderSimulator
from tests.support.tls import make_certificate

PASSWORD = "tls-pw"


def self_signed(directory: Path) -> tuple[ssl.SSLContext, str]:
    cert_path, key_path = make_certificate(directory)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    der = ssl.PEM_cert_to_DER_cert(cert_path.read_text())
    return context, hashlib.sha256(der).hexdigest()


@pytest.fixture
async def tls_nvr(tmp_path: Path) -> AsyncIterator[tuple[RecorderSimulator, str]]:
    context, fingerprint = self_signed(tmp_path)
    config = RecorderSimConfig(channels=1, password=PASSWORD)
    async with RecorderSimulator(config, ssl_context=context) as simulator:
        yield simulator, fingerprint


def tls_config(port: int, fingerprint: str = "") -> RecorderConfig:
    settings = {"tls_fingerprint": fingerprint} if fingerprint else {}
    return RecorderConfig(
        backend="isapi", host="127.0.0.1", port=port, use_tls=True, username="admin",
        password=PASSWORD, timeout=3.0, settings=settings,
    )


async def test_pinned_fingerprint_is_trusted(tls_nvr: tuple[RecorderSimulator, str]) -> None:
    nvr, fingerprint = tls_nvr
    pinned = ":".join(fingerprint[i : i + 2] for i in range(0, 64, 2))  # colon form works too
    async with open_recorder(tls_config(nvr.http_port, pinned)) as recorder:
        assert (await recorder.device_info()).serial == nvr.config.serial


async def test_unpinned_or_wrong_pin_is_untrusted(tls_nvr: tuple[RecorderSimulator, str]) -> None:
    nvr, _ = tls_nvr
    with pytest.raises(UntrustedDevice):
        async with open_recorder(tls_config(nvr.http_port)):
            pass
    with pytest.raises(UntrustedDevice):
        async with open_recorder(tls_config(nvr.http_port, "00" * 32)):
            pass


@pytest.mark.parametrize("fingerprint", ["zz", "abcd"])
def test_bad_fingerprint_setting_is_a_config_error(fingerprint: str) -> None:
    with pytest.raises(ConfigError):
        create(tls_config(1, fingerprint), logger=logging.getLogger("test"))
