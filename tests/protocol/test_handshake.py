from __future__ import annotations

import hashlib
import hmac

import pytest

from nvrshare.protocol import handshake as h
from nvrshare.protocol import messages as m
from nvrshare.protocol.errors import LocalProtocolError
from nvrshare.protocol.reasons import RefusalReason

SID = bytes(range(16))
SECRET = bytes(range(32))


def test_agent_proof_is_hmac_sha256_over_context_and_session_id() -> None:
    expected = hmac.new(SECRET, b"nvrshare/agent-hello/v1" + SID, hashlib.sha256).digest()
    assert h.agent_proof(SECRET, SID) == expected


def test_verify_agent_proof() -> None:
    proof = h.agent_proof(SECRET, SID)
    assert h.verify_agent_proof(SECRET, SID, proof)
    assert not h.verify_agent_proof(b"x" * 32, SID, proof)
    assert not h.verify_agent_proof(SECRET, b"y" * 16, proof)
    assert not h.verify_agent_proof(SECRET, SID, proof[:-1])


@pytest.mark.parametrize(("secret", "sid"), [(b"short", SID), (SECRET, b"short")])
def test_agent_proof_needs_exact_lengths(secret: bytes, sid: bytes) -> None:
    with pytest.raises(LocalProtocolError):
        h.agent_proof(secret, sid)


def test_hello_validation() -> None:
    request = m.SessionRequest(device_serial="DS-1", channel=1, kind=m.SessionKind.TALK)
    with pytest.raises(LocalProtocolError):
        h.ClientHello(token=b"", request=request, client_nonce=b"n" * 16)
    with pytest.raises(LocalProtocolError):
        h.ClientHello(token=b"t", request="live", client_nonce=b"n" * 16)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        h.ClientHello(token=b"t", request=request, client_nonce=b"n")
    with pytest.raises(LocalProtocolError):
        h.AgentHello(session_id=SID, proof=b"p")
    with pytest.raises(LocalProtocolError):
        h.HelloAccepted(session_id=b"s")
    with pytest.raises(LocalProtocolError):
        h.HelloRefused(reason="token_expired", message="")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        h.HelloRefused(reason=RefusalReason.TIMEOUT, message="x" * 257)


def test_secrets_stay_out_of_repr() -> None:
    hello = h.AgentHello(session_id=SID, proof=h.agent_proof(SECRET, SID))
    assert "proof" not in repr(hello)
    request = m.SessionRequest(device_serial="DS-1", channel=1, kind=m.SessionKind.TALK)
    assert "token" not in repr(h.ClientHello(token=b"t", request=request, client_nonce=b"n" * 16))
