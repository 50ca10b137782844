"""The device's own verdict on a session offer or a PTZ command (pure: `now` is an argument).

Theory of operation: the relay already checked the token, but the relay may
be compromised or stale, so nothing it says widens what the device serves.
`Authorizer.admit` re-verifies the share token against the relay keys the
device pinned (audience AGENT, this device's serial), then requires the
request to be allowed by *both* the token's matrix and the grant the
device's synced set holds for that account: the effective grant is their
intersection.  Revoked token ids and accounts, a disabled service, a token
older than the synced share epoch, a session id seen before, and a token
used more times than its allowance are all refused.  `still_allowed`
re-runs the grant part for a live session whenever a new set arrives (or
time passes), so revocation reaches sessions that are already open.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from nvrshare.agent.grants import GrantStore
from nvrshare.agent.sessions.errors import SessionRefused
from nvrshare.protocol.errors import TokenError
from nvrshare.protocol.messages import SessionRequest
from nvrshare.protocol.permissions import Deny, Grant, Permission, check
from nvrshare.protocol.reasons import RefusalReason, refusal_for_denial, refusal_for_token
from nvrshare.protocol.tokens import Audience, ShareClaims, TokenVerifier

__all__ = ["Admission", "Authorizer", "ReplayGuard"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Admission:
    """What was admitted: who, with which token, under which synced grant."""

    claims: ShareClaims
    synced_grant: Grant


class ReplayGuard:
    """Bounded memory of used session ids / request ids and per-token use counts.

    Entries expire (a session id with its offer, a token count with its token),
    and the oldest are evicted beyond `max_entries`; an evicted session id is
    harmless because its offer (and one-time secret) has expired by then, or
    the relay refuses a second AgentHello for it anyway.
    """

    def __init__(self, *, max_entries: int = 4096, max_uses_per_token: int = 32) -> None:
        self._max_entries = max_entries
        self._max_uses = max_uses_per_token
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        self._uses: OrderedDict[bytes, tuple[int, float]] = OrderedDict()

    def _trim(self, now: float) -> None:
        for key in [k for k, expiry in self._seen.items() if expiry <= now]:
            del self._seen[key]
        for key in [k for k, (_, expiry) in self._uses.items() if expiry <= now]:
            del self._uses[key]
        while len(self._seen) > self._max_entries:
            self._seen.popitem(last=False)
        while len(self._uses) > self._max_entries:
            self._uses.popitem(last=False)

    def claim_id(self, identifier: bytes, *, expires_at: float, now: float) -> bool:
        """Record a one-time id; False if it was seen before (a replay)."""
        self._trim(now)
        if identifier in self._seen:
            return False
        self._seen[identifier] = max(expires_at, now + 1)
        return True

    def use_token(self, token_id: bytes, *, expires_at: float, now: float) -> bool:
        """Count one use of a token; False once it exceeded its allowance."""
        self._trim(now)
        count, _ = self._uses.get(token_id, (0, expires_at))
        if count >= self._max_uses:
            return False
        self._uses[token_id] = (count + 1, expires_at)
        return True


class Authorizer:
    """Checks offers and commands against pinned keys, the synced grant set and replays."""

    def __init__(self, grants: GrantStore, serial: str, replay: ReplayGuard) -> None:
        self._grants = grants
        self._serial = serial
        self.replay = replay
        self._verifier: TokenVerifier | None = None

    def _verify(self, token: bytes, now: float) -> ShareClaims:
        keys = self._grants.pinned_keys
        if self._verifier is None or self._verifier.key_ring is not keys:
            # Rotation replaces the ring object; a fresh verifier drops cached claims.
            self._verifier = TokenVerifier(keys, Audience.AGENT)
        try:
            return self._verifier.verify(token, now=now, device_serial=self._serial)
        except TokenError as exc:
            raise SessionRefused(refusal_for_token(exc.reason), exc.reason.value) from exc

    def _synced(self, claims: ShareClaims, now: float) -> Grant:
        refusal = self._revocation(claims)
        if refusal is not None:
            raise SessionRefused(refusal, "sharing disabled, or token or account revoked")
        if claims.share_epoch < self._grants.share_epoch:
            raise SessionRefused(RefusalReason.REVOKED, "token predates the synced shares")
        synced = self._grants.grant_for(claims.account_id, now)
        if synced is None:
            raise SessionRefused(RefusalReason.PERMISSION_DENIED, "no synced grant")
        return synced

    def admit(
        self, *, token: bytes, request: SessionRequest, session_id: bytes, now: float
    ) -> Admission:
        """Admit one session offer, or raise `SessionRefused` with the wire reason."""
        if request.device_serial != self._serial:
            raise SessionRefused(RefusalReason.WRONG_DEVICE, "offer for another device")
        claims = self._verify(token, now)
        synced = self._synced(claims, now)
        for grant in (claims.grant(), synced):
            decision = request.decide(grant, now)
            if isinstance(decision, Deny):
                raise SessionRefused(refusal_for_denial(decision.reason), decision.reason.value)
        if not self.replay.claim_id(session_id, expires_at=claims.expires_at + 60, now=now):
            raise SessionRefused(RefusalReason.REPLAYED, "session id already used")
        if not self.replay.use_token(claims.token_id, expires_at=claims.expires_at, now=now):
            raise SessionRefused(RefusalReason.REPLAYED, "token used beyond its allowance")
        return Admission(claims=claims, synced_grant=synced)

    def admit_command(
        self, *, token: bytes, channel: int, permission: Permission, request_id: bytes, now: float
    ) -> ShareClaims:
        """Admit a one-shot command (PTZ) on `channel`; `SessionRefused` otherwise."""
        claims = self._verify(token, now)
        synced = self._synced(claims, now)
        for grant in (claims.grant(), synced):
            decision = check(grant, channel, permission, now)
            if isinstance(decision, Deny):
                raise SessionRefused(refusal_for_denial(decision.reason), decision.reason.value)
        if not self.replay.claim_id(request_id, expires_at=claims.expires_at, now=now):
            raise SessionRefused(RefusalReason.REPLAYED, "request id already used")
        return claims

    def still_allowed(
        self, admission: Admission, request: SessionRequest, now: float
    ) -> RefusalReason | None:
        """None if a live session may go on under the current grant set, else why not.

        The token is not re-checked for expiry (it only gates set-up); the
        synced set is, with `now`, so expiring grants end their sessions too.
        """
        claims = admission.claims
        basic = self._revocation(claims)
        if basic is not None:
            return basic
        synced = self._grants.grant_for(claims.account_id, now)
        if synced is None or isinstance(request.decide(synced, now), Deny):
            return RefusalReason.REVOKED
        return None

    def alarm_channels(self, admission: Admission, now: float) -> frozenset[int]:
        """Channels whose alarms the session may see now: ALARM in token ∩ synced grant.

        The token's own validity period is not applied (it only gates set-up).
        """
        claims = admission.claims
        synced = self._grants.grant_for(claims.account_id, now)
        if synced is None or self._revocation(claims) is not None:
            return frozenset()
        token_matrix = Grant(channels=claims.channels)
        return frozenset(
            channel
            for channel in claims.channels
            if check(token_matrix, channel, Permission.ALARM, now)
            and check(synced, channel, Permission.ALARM, now)
        )

    def _revocation(self, claims: ShareClaims) -> RefusalReason | None:
        grants = self._grants
        if grants.current is None or not grants.service_enabled:
            return RefusalReason.SERVICE_DISABLED
        if grants.is_token_revoked(claims.token_id) or grants.is_account_revoked(claims.account_id):
            return RefusalReason.REVOKED
        return None
