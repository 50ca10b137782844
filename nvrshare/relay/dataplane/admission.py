"""May this client hello open a session?  Token, permission, share state, presence, limits.

The checks run in a fixed order, cheapest-to-fake first after the token
(nothing is trusted before the signature verifies):

1. the share token verifies for the relay audience and the requested device
   (signature, expiry, audience, device);
2. the token's channel matrix allows the request (`SessionRequest.decide`:
   channel x permission, grant validity, playback window);
3. the token id is not revoked and the token's share epoch is the device's
   current one (a stopped share bumps the epoch);
4. the device is online;
5. the per-account / per-device / per-channel session limits (and one talk
   session per channel: a recorder refuses a second two-way audio open).

Every failure is a `Refused` carrying the `RefusalReason` the client is told;
the control plane's interfaces are injected (`GrantState`, `DevicePresence`),
so this module knows nothing about MQTT or databases.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from nvrshare.protocol.errors import TokenError
from nvrshare.protocol.handshake import ClientHello
from nvrshare.protocol.messages import SessionKind, SessionRequest
from nvrshare.protocol.permissions import Deny
from nvrshare.protocol.reasons import RefusalReason, refusal_for_denial, refusal_for_token
from nvrshare.protocol.tokens import ShareClaims, TokenVerifier
from nvrshare.relay.errors import RelayError

__all__ = [
    "Admission",
    "DevicePresence",
    "GrantState",
    "Refused",
    "SessionLimits",
    "SessionSlots",
    "admit",
]


class GrantState(Protocol):
    """What the control plane knows about shares that a token cannot say by itself."""

    async def share_epoch(self, device_serial: str) -> int | None:
        """The device's current share epoch; None if the device is unknown."""

    async def is_token_revoked(self, token_id: bytes) -> bool:
        """Whether this token id was revoked before its expiry."""


class DevicePresence(Protocol):
    async def is_online(self, device_serial: str) -> bool:
        """Whether the device's agent is connected to the broker right now."""


class Refused(RelayError):
    """A hello that must be answered with `HelloRefused(reason, message)`."""

    status = 403

    def __init__(self, reason: RefusalReason, message: str = "") -> None:
        super().__init__(message or reason.value, code=reason.value)
        self.reason = reason


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionLimits:
    """Concurrent sessions allowed (pending ones count); each must be at least 1."""

    per_account: int = 16
    per_device: int = 32
    per_channel: int = 8
    talk_per_channel: int = 1

    def __post_init__(self) -> None:
        if min(self.per_account, self.per_device, self.per_channel, self.talk_per_channel) < 1:
            raise ValueError("session limits must be at least 1")


@dataclass(frozen=True, kw_only=True, slots=True)
class Admission:
    """A hello that passed every check: who asked, for what, with which token."""

    claims: ShareClaims
    request: SessionRequest
    token: bytes


class SessionSlots:
    """Counts of live and pending sessions, by account, device, channel and talk."""

    def __init__(self, limits: SessionLimits) -> None:
        self.limits = limits
        self._counts: Counter[tuple[str, ...]] = Counter()

    @staticmethod
    def _keys(account_id: str, request: SessionRequest) -> list[tuple[str, ...]]:
        serial, channel = request.device_serial, str(request.channel)
        keys = [("account", account_id), ("device", serial), ("channel", serial, channel)]
        if request.kind is SessionKind.TALK:
            keys.append(("talk", serial, channel))
        return keys

    def acquire(self, account_id: str, request: SessionRequest) -> None:
        """Take one slot on every key, or raise `Refused(DEVICE_BUSY)` and take none."""
        limits = {
            "account": self.limits.per_account,
            "device": self.limits.per_device,
            "channel": self.limits.per_channel,
            "talk": self.limits.talk_per_channel,
        }
        keys = self._keys(account_id, request)
        for key in keys:
            if self._counts[key] >= limits[key[0]]:
                raise Refused(RefusalReason.DEVICE_BUSY, f"{key[0]} session limit reached")
        for key in keys:
            self._counts[key] += 1

    def release(self, account_id: str, request: SessionRequest) -> None:
        for key in self._keys(account_id, request):
            self._counts[key] -= 1
            if self._counts[key] <= 0:
                del self._counts[key]

    def in_use(self) -> int:
        return sum(count for key, count in self._counts.items() if key[0] == "device")


async def admit(
    hello: ClientHello,
    *,
    now: float,
    verifier: TokenVerifier,
    grant_state: GrantState,
    presence: DevicePresence,
    slots: SessionSlots,
) -> Admission:
    """Run every check on `hello`; on success one session slot is taken for the caller.

    Raises `Refused` with the reason to tell the client.  The caller must
    `slots.release(...)` once the admitted session ends (or fails to start).
    """
    request = hello.request
    try:
        claims = verifier.verify(hello.token, now=now, device_serial=request.device_serial)
    except TokenError as exc:
        raise Refused(refusal_for_token(exc.reason)) from None
    decision = request.decide(claims.grant(), now)
    if isinstance(decision, Deny):
        raise Refused(refusal_for_denial(decision.reason))
    if await grant_state.is_token_revoked(claims.token_id):
        raise Refused(RefusalReason.REVOKED, "token revoked")
    epoch = await grant_state.share_epoch(request.device_serial)
    if epoch is None or claims.share_epoch != epoch:
        raise Refused(RefusalReason.REVOKED, "share changed since the token was issued")
    if not await presence.is_online(request.device_serial):
        raise Refused(RefusalReason.DEVICE_OFFLINE)
    slots.acquire(claims.account_id, request)
    return Admission(claims=claims, request=request, token=hello.token)
