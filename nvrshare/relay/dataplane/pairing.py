"""Pending sessions waiting for their agent, and the one-use check of an agent's proof.

A client's admitted hello creates a `PendingSession`: a random 16-byte
session id, a one-time 32-byte secret (sent to the device inside the offer,
never to the client) and an expiry.  The agent dials in and sends
`AgentHello(session_id, proof)`; `claim` checks the proof in constant time
and hands the agent's socket to the waiting client task.  A session id
claims once: afterwards (or after expiry) its id is remembered for a while so
a replay is told apart from a made-up id, and nothing about the secret is
kept.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field

from nvrshare.protocol.handshake import AgentHello, verify_agent_proof
from nvrshare.protocol.messages import SESSION_ID_LENGTH, SESSION_SECRET_LENGTH
from nvrshare.protocol.reasons import RefusalReason
from nvrshare.relay.dataplane.admission import Admission, Refused
from nvrshare.relay.dataplane.hello import HelloChannel

__all__ = ["PairingTable", "PendingSession"]

MAX_REMEMBERED_IDS = 65536


@dataclass(kw_only=True, slots=True, eq=False)
class PendingSession:
    admission: Admission
    session_id: bytes = field(repr=False)
    secret: bytes = field(repr=False)
    expires_at: float  # loop time
    agent: asyncio.Future[HelloChannel]  # the agent's answered-to-be connection


class PairingTable:
    """Session id → pending session; claims are one use, expiry bounded."""

    def __init__(self) -> None:
        self._pending: dict[bytes, PendingSession] = {}
        self._spent: OrderedDict[bytes, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def snapshot(self) -> list[PendingSession]:
        return list(self._pending.values())

    def get(self, session_id: bytes) -> PendingSession | None:
        return self._pending.get(session_id)

    def create(self, admission: Admission, *, expires_at: float) -> PendingSession:
        loop = asyncio.get_running_loop()
        session_id = secrets.token_bytes(SESSION_ID_LENGTH)
        while session_id in self._pending or session_id in self._spent:  # pragma: no cover
            session_id = secrets.token_bytes(SESSION_ID_LENGTH)
        pending = PendingSession(
            admission=admission,
            session_id=session_id,
            secret=secrets.token_bytes(SESSION_SECRET_LENGTH),
            expires_at=expires_at,
            agent=loop.create_future(),
        )
        self._pending[session_id] = pending
        return pending

    def discard(self, pending: PendingSession) -> None:
        """Forget a pending session (paired, timed out or abandoned); its id stays spent."""
        if self._pending.pop(pending.session_id, None) is not None:
            self._remember(pending.session_id)
        if not pending.agent.done():
            pending.agent.cancel()

    def claim(self, hello: AgentHello, *, now: float) -> PendingSession:
        """The pending session `hello` proves; it leaves the table.

        Raises `Refused`: REPLAYED for an id already claimed or expired,
        TOKEN_INVALID for an unknown id or a wrong proof (the session stays
        pending then: a wrong guess must not cancel the real agent's session).
        """
        pending = self._pending.get(hello.session_id)
        if pending is None:
            if hello.session_id in self._spent:
                raise Refused(RefusalReason.REPLAYED, "session already claimed or expired")
            raise Refused(RefusalReason.TOKEN_INVALID, "unknown session")
        if not verify_agent_proof(pending.secret, pending.session_id, hello.proof):
            raise Refused(RefusalReason.TOKEN_INVALID, "wrong session proof")
        del self._pending[pending.session_id]
        self._remember(pending.session_id)
        if now >= pending.expires_at:
            if not pending.agent.done():
                pending.agent.cancel()
            raise Refused(RefusalReason.REPLAYED, "session offer expired")
        return pending

    def _remember(self, session_id: bytes) -> None:
        self._spent[session_id] = None
        if len(self._spent) > MAX_REMEMBERED_IDS:
            self._spent.popitem(last=False)
