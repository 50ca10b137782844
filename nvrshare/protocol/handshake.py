"""Data-plane hello messages: what a client or an agent says to the relay first.

A client presents its share token and what it wants; an agent answering a
`SessionOffer` proves it received the offer's secret without sending it:
``proof = HMAC-SHA256(session_secret, AGENT_PROOF_CONTEXT || session_id)``.
The relay answers with `HelloAccepted` (then the connection carries raw
stream bytes) or `HelloRefused`.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from nvrshare.protocol._checks import check_bytes, check_text
from nvrshare.protocol.errors import LocalProtocolError
from nvrshare.protocol.messages import (
    NONCE_LENGTH,
    SESSION_ID_LENGTH,
    SESSION_SECRET_LENGTH,
    SessionRequest,
)
from nvrshare.protocol.reasons import RefusalReason
from nvrshare.protocol.tokens import MAX_TOKEN_SIZE

__all__ = [
    "AGENT_PROOF_CONTEXT",
    "AgentHello",
    "ClientHello",
    "HelloAccepted",
    "HelloRefused",
    "agent_proof",
    "verify_agent_proof",
]

AGENT_PROOF_CONTEXT = b"nvrshare/agent-hello/v1"
PROOF_LENGTH = 32


def agent_proof(session_secret: bytes, session_id: bytes) -> bytes:
    """The proof an agent sends for `session_id`; `LocalProtocolError` on bad lengths."""
    check_bytes("session_secret", session_secret, length=SESSION_SECRET_LENGTH)
    check_bytes("session_id", session_id, length=SESSION_ID_LENGTH)
    return hmac.new(session_secret, AGENT_PROOF_CONTEXT + session_id, hashlib.sha256).digest()


def verify_agent_proof(session_secret: bytes, session_id: bytes, proof: bytes) -> bool:
    """Whether `proof` is right for the session, compared in constant time."""
    return hmac.compare_digest(agent_proof(session_secret, session_id), proof)


@dataclass(frozen=True, kw_only=True, slots=True)
class ClientHello:
    token: bytes = field(repr=False)
    request: SessionRequest
    client_nonce: bytes

    def __post_init__(self) -> None:
        check_bytes("token", self.token, max_length=MAX_TOKEN_SIZE)
        if not isinstance(self.request, SessionRequest):
            raise LocalProtocolError("request must be a SessionRequest")
        check_bytes("client_nonce", self.client_nonce, length=NONCE_LENGTH)


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentHello:
    session_id: bytes
    proof: bytes = field(repr=False)

    def __post_init__(self) -> None:
        check_bytes("session_id", self.session_id, length=SESSION_ID_LENGTH)
        check_bytes("proof", self.proof, length=PROOF_LENGTH)


@dataclass(frozen=True, kw_only=True, slots=True)
class HelloAccepted:
    session_id: bytes

    def __post_init__(self) -> None:
        check_bytes("session_id", self.session_id, length=SESSION_ID_LENGTH)


@dataclass(frozen=True, kw_only=True, slots=True)
class HelloRefused:
    reason: RefusalReason
    message: str

    def __post_init__(self) -> None:
        if not isinstance(self.reason, RefusalReason):
            raise LocalProtocolError("reason must be a RefusalReason")
        check_text("message", self.message, max_length=256, allow_empty=True)
