"""Bootstrap: trade a signed, code-MACed claim for this device's broker credential.

The agent POSTs to the relay's provisioning endpoint (HTTPS in production)::

    {"serial", "public_key", "timestamp", "nonce", "mac", "signature", "verification_code"}

(binary fields base64).  `mac` is HMAC-SHA256 keyed by the verification code
(through `code_key`, so a manufacturing manifest can hold the derived key
instead of the code) over the claim; `signature` is the device key's over
the same bytes, proving it holds the key it asks to pin.  The code itself
travels once, over TLS, so the relay can store the scrypt hash an owner's
"add device" is checked against; the relay never stores or logs it raw.
The answer is the broker credential, which is kept 0600 in the state dir so
later starts need no network round trip.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path

import aiohttp

from nvrshare.agent.config import AgentConfig, BrokerEndpoint, tls_context
from nvrshare.agent.errors import BootstrapError
from nvrshare.protocol.provisioning import CLAIM_CONTEXT, claim_mac, claim_payload, code_key
from nvrshare.protocol.signing import SigningKey, public_key_bytes
from nvrshare.protocol.validation import is_valid_serial

__all__ = [
    "CLAIM_CONTEXT",
    "CREDENTIAL_FILE",
    "build_claim",
    "claim_payload",
    "code_key",
    "load_credential",
    "obtain_credential",
]

CREDENTIAL_FILE = "broker-credential.json"
MAX_RESPONSE = 16 * 1024


def build_claim(
    *, serial: str, verification_code: str, key: SigningKey, now: float
) -> dict[str, object]:
    """The JSON body of a provisioning request."""
    public_key = public_key_bytes(key.public_key)
    timestamp, nonce = int(now), secrets.token_bytes(16)
    payload = claim_payload(serial, public_key, timestamp, nonce)
    mac = claim_mac(code_key(serial, verification_code), payload)

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode("ascii")

    return {
        "serial": serial,
        "public_key": b64(public_key),
        "timestamp": timestamp,
        "nonce": b64(nonce),
        "mac": b64(mac),
        "signature": b64(key.sign(CLAIM_CONTEXT, payload)),
        "verification_code": verification_code,
    }


def load_credential(state_dir: Path, broker: BrokerEndpoint) -> BrokerEndpoint | None:
    """The stored credential applied to `broker`, or None if there is none usable."""
    path = state_dir / CREDENTIAL_FILE
    try:
        if path.stat().st_mode & 0o077:
            raise BootstrapError(f"{path} must be readable by its owner only", retryable=False)
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise BootstrapError(f"{path}: unreadable credential: {exc}", retryable=False) from None
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise BootstrapError(f"{path}: malformed credential", retryable=False)
    return BrokerEndpoint(
        host=broker.host, port=broker.port, username=username, password=password, tls=broker.tls
    )


def _store(state_dir: Path, username: str, password: str) -> None:
    path = state_dir / CREDENTIAL_FILE
    tmp = path.with_name(f".{CREDENTIAL_FILE}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump({"username": username, "password": password}, file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)


async def obtain_credential(config: AgentConfig, key: SigningKey, now: float) -> BrokerEndpoint:
    """The broker endpoint with this device's credential: configured, stored, or bootstrapped.

    Raises `BootstrapError` (`retryable` for network trouble and rate limits).
    """
    if config.broker.username is not None:
        return config.broker
    stored = load_credential(config.state_dir, config.broker)
    if stored is not None:
        return stored
    if config.provisioning_url is None:
        raise BootstrapError("no broker credential and no provisioning_url", retryable=False)
    body = build_claim(
        serial=config.serial, verification_code=config.verification_code, key=key, now=now
    )
    timeout = aiohttp.ClientTimeout(total=15)
    connector = aiohttp.TCPConnector(ssl=tls_context(config))
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout, connector=connector) as session,
            session.post(config.provisioning_url, json=body) as response,
        ):
            raw = await response.content.read(MAX_RESPONSE + 1)
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise BootstrapError(f"provisioning endpoint unreachable: {exc}", retryable=True) from None
    if len(raw) > MAX_RESPONSE:
        raise BootstrapError("provisioning answer too large", retryable=True)
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if status != 200 or not isinstance(answer, dict):
        detail = answer.get("error") if isinstance(answer, dict) else None
        retryable = status in (429, 500, 502, 503, 504)
        raise BootstrapError(f"provisioning refused ({status}): {detail}", retryable=retryable)
    username, password = answer.get("username"), answer.get("password")
    if (
        not is_valid_serial(username)
        or username != config.serial
        or not isinstance(password, str)
        or not 0 < len(password) <= 256
    ):
        raise BootstrapError("provisioning answer is malformed", retryable=True)
    _store(config.state_dir, username, password)
    return BrokerEndpoint(
        host=config.broker.host,
        port=config.broker.port,
        username=username,
        password=password,
        tls=config.broker.tls,
    )
