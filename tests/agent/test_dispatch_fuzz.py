"""Any bytes on any topic either dispatch or raise ProtocolError (then: logged, dropped)."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import shutil
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from nvrshare.agent.config import config_from_mapping
from nvrshare.agent.control import ControlChannel
from nvrshare.agent.grants import GrantStore
from nvrshare.protocol.errors import ProtocolError
from nvrshare.protocol.signing import KeyRing, SigningKey
from nvrshare.protocol.topics import TopicKind, device_topic
from nvrshare.relay.registry import Registry, RegistryConfig

_STATE = Path(tempfile.mkdtemp(prefix="nvrshare-fuzz-"))
atexit.register(shutil.rmtree, _STATE, ignore_errors=True)
_CONFIG = config_from_mapping(
    {
        "serial": "FUZZ1",
        "domain": "fuzz",
        "verification_code": "ABCDEF",
        "state_dir": str(_STATE),
        "relay": {"broker_url": "mqtt://127.0.0.1:1", "username": "u", "password": "p"},
        "recorder": {"backend": "sim"},
    }
)


async def _no_registration() -> bytes:
    return b""


_CHANNEL = ControlChannel(
    _CONFIG,
    _CONFIG.broker,
    grants=GrantStore(_STATE, "FUZZ1"),
    registration=_no_registration,
    address=("127.0.0.1", 80),
)
_TOPICS = st.sampled_from(
    [device_topic("FUZZ1", kind) for kind in TopicKind]
    + ["nvrshare/v1/dev/OTHER/down/grants", "nvrshare/v1/dev/FUZZ1/down/x", "x/y", ""]
)
_PAYLOADS = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda tail: b"\x93\x01" + tail, st.binary(max_size=200)),
)


@given(topic=_TOPICS, payload=_PAYLOADS)
def test_agent_dispatch_never_raises_anything_else(topic: str, payload: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        _CHANNEL._dispatch(topic, payload)
    while _CHANNEL._grant_queue:
        asyncio.run(_CHANNEL._apply_grants(_CHANNEL._grant_queue.pop(0)))
    assert _CHANNEL._grants.current is None  # nothing random ever verifies


class _Directory:
    async def apply_registrations(self, registrations: object, **_kwargs: object) -> list[object]:
        raise AssertionError("random bytes never verify as a registration")

    async def set_presence(self, presence: object, **_kwargs: object) -> None:
        return None

    async def grant_set_for(self, serial: str, *, now: float | None = None) -> None:
        return None

    async def grant_sets_for(self, serials: object, **_kwargs: object) -> dict[str, object]:
        return {}


class _Keys:
    signing_key = SigningKey.generate()
    key_ring = KeyRing([signing_key.public_key])


_REGISTRY = Registry(
    RegistryConfig(host="127.0.0.1", port=1, username=None, password=None, client_id="r"),
    directory=_Directory(),  # type: ignore[arg-type]
    keys=_Keys(),  # type: ignore[arg-type]
)


@given(kind=st.sampled_from(list(TopicKind)), payload=_PAYLOADS)
def test_registry_handling_never_raises_anything_else(kind: TopicKind, payload: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        asyncio.run(_REGISTRY._handle("FUZZ1", kind, payload))
