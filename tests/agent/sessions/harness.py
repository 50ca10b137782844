"""A device's session side wired to the real relay data plane, on loopback, for tests.

`Harness` holds a relay signing key, a `GrantStore` fed with grant sets signed
by it, a `SessionHandler` over the simulated recorder, and a real `DataPlane`
whose offers go straight to the handler (standing in for MQTT).  The uplink
records what the agent reports.  Tests for the client verbs reuse it.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nvrshare.agent.grants import GrantStore
from nvrshare.agent.sessions.handler import SessionConfig, SessionHandler
from nvrshare.agent.sessions.tunnel import tls_dialer
from nvrshare.client.streams import RelayEndpoint
from nvrshare.firmware_shim.interface import Recorder
from nvrshare.protocol.codec import Message, encode_signed
from nvrshare.protocol.messages import AccountGrant, GrantSet, SessionOffer
from nvrshare.protocol.permissions import ALL_PERMISSIONS, Permission, TimeWindow
from nvrshare.protocol.signing import CONTEXT_GRANT_SET, KeyRing, SigningKey, public_key_bytes
from nvrshare.protocol.tokens import TokenIssuer
from nvrshare.protocol.topics import TopicKind
from nvrshare.relay.dataplane import DataPlane, DataPlaneConfig

SERIAL = "DS7608NI0020260101CCRR000000001"  # the recorder simulator's default serial
ACCOUNT = "acct-viewer"
OTHER = "acct-other"


@dataclass
class RecordingUplink:
    """Collects what the agent sends on up/*; `wait_for` a message type."""

    sent: list[tuple[TopicKind, Message]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, kind: TopicKind, message: Message) -> None:
        self.sent.append((kind, message))
        self.changed.set()

    async def wait_for(self, kind: type, limit: float = 15.0) -> Message:
        async with asyncio.timeout(limit):
            while True:
                for _, message in self.sent:
                    if isinstance(message, kind):
                        return message
                self.changed.clear()
                await self.changed.wait()


class _GrantState:
    def __init__(self) -> None:
        self.epoch = 1

    async def share_epoch(self, device_serial: str) -> int | None:
        return self.epoch

    async def is_token_revoked(self, token_id: bytes) -> bool:
        return False


class _Presence:
    async def is_online(self, device_serial: str) -> bool:
        return True


class Harness:
    def __init__(
        self,
        state_dir: Path,
        recorder: Recorder,
        *,
        token_keys: KeyRing | None = None,
        tls: tuple[ssl.SSLContext, ssl.SSLContext] | None = None,  # (relay side, dialling side)
    ) -> None:
        self.tls = tls
        self._open = tls_dialer(tls[1]) if tls is not None else asyncio.open_connection
        self.relay_key = SigningKey.generate()
        # Extra token-signing keys (e.g. a real control plane's) that the relay and agent trust.
        self.token_keys = [*(token_keys or KeyRing()).values()]
        self.issuer = TokenIssuer(self.relay_key, "test-relay")
        self.grants = GrantStore(
            state_dir, SERIAL, bootstrap_keys=(public_key_bytes(self.relay_key.public_key),)
        )
        self.recorder = recorder
        self.uplink = RecordingUplink()
        self.dials = 0
        self.during_dial: Callable[[], None] | None = None  # e.g. a grant change mid-setup
        self.handler = SessionHandler(
            serial=SERIAL,
            grants=self.grants,
            recorder=recorder,
            config=SessionConfig(recheck_interval=0.2, dial_timeout=3.0),
            dialer=self._dial,
        )
        self.grants.on_change(self.handler.on_grants_changed)
        self.state = _GrantState()
        self.version = 0
        self.offers: list[SessionOffer] = []
        self.plane: DataPlane | None = None

    async def _dial(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self.dials += 1
        connection = await self._open(host, port)
        if self.during_dial is not None:
            self.during_dial()
        return connection

    async def _publish(self, offer: SessionOffer) -> None:
        self.offers.append(offer)
        task = asyncio.create_task(self.handler.on_session_offer(offer, self.uplink))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Harness]:
        self._pending: set[asyncio.Task[None]] = set()
        plane = DataPlane(
            DataPlaneConfig(
                host="127.0.0.1",
                port=0,
                agent_timeout=3.0,
                hello_timeout=3.0,
                tls=self.tls[0] if self.tls is not None else None,
            ),
            key_ring=KeyRing([self.relay_key.public_key, *self.token_keys]),
            grant_state=self.state,
            presence=_Presence(),
            publish_offer=self._publish,
        )
        async with self.handler, plane:
            self.plane = plane
            try:
                yield self
            finally:
                for task in list(self._pending):
                    task.cancel()
                await asyncio.gather(*self._pending, return_exceptions=True)

    @property
    def endpoint(self) -> RelayEndpoint:
        assert self.plane is not None
        client_tls = self.tls[1] if self.tls is not None else None
        return RelayEndpoint(host="127.0.0.1", port=self.plane.port, tls=client_tls)

    def publish_grants(
        self,
        grants: Mapping[str, Mapping[int, Permission]],
        *,
        service_enabled: bool = True,
        revoked_token_ids: tuple[bytes, ...] = (),
        revoked_accounts: tuple[str, ...] = (),
        playback_window: TimeWindow | None = None,
        epoch: int | None = None,
    ) -> None:
        self.version += 1
        if epoch is not None:
            self.state.epoch = epoch
        grant_set = GrantSet(
            device_serial=SERIAL,
            version=self.version,
            share_epoch=self.state.epoch,
            issued_at=int(time.time()),
            service_enabled=service_enabled,
            grants=tuple(
                AccountGrant(account_id=a, channels=dict(c), playback_window=playback_window)
                for a, c in grants.items()
            ),
            revoked_token_ids=revoked_token_ids,
            revoked_accounts=revoked_accounts,
            relay_public_keys=tuple(
                public_key_bytes(k) for k in [self.relay_key.public_key, *self.token_keys]
            ),
        )
        assert self.grants.apply(encode_signed(grant_set, self.relay_key, CONTEXT_GRANT_SET))

    def token(
        self,
        channels: Mapping[int, Permission] | None = None,
        *,
        account: str = ACCOUNT,
        device: str = SERIAL,
        ttl: int = 300,
        issued: float | None = None,
        key: SigningKey | None = None,
        epoch: int | None = None,
        playback_window: TimeWindow | None = None,
    ) -> bytes:
        now = int(issued if issued is not None else time.time())
        issuer = self.issuer if key is None else TokenIssuer(key, "test-relay")
        return issuer.issue(
            account_id=account,
            device_serial=device,
            channels=channels or {1: ALL_PERMISSIONS},
            not_before=now - 5,
            expires_at=now + ttl,
            share_epoch=self.state.epoch if epoch is None else epoch,
            playback_window=playback_window,
        )

    def offer(self, token: bytes, request: object, *, port: int | None = None) -> SessionOffer:
        """An offer as a (possibly compromised) relay would publish it."""
        return SessionOffer(
            session_id=secrets.token_bytes(16),
            token=token,
            request=request,  # type: ignore[arg-type]
            relay_host="127.0.0.1",
            relay_port=port or (self.plane.port if self.plane else 9),
            session_secret=secrets.token_bytes(32),
            expires_at=int(time.time()) + 30,
        )
