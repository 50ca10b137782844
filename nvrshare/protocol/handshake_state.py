"""The data-plane handshake's states and transitions, as data.

Theory of operation
-------------------
Every TCP connection to the relay's data port starts with exactly one hello
and exactly one answer, then carries raw stream bytes (or is closed):

    client/agent                          relay
    SEND_HELLO   --ClientHello|AgentHello-->  AWAIT_HELLO
    AWAIT_ANSWER                              AWAIT_DECISION  (checks token / proof)
                 <--HelloAccepted----------   -> RAW
    -> RAW (splice)
                 <--HelloRefused-----------   -> CLOSED
    -> CLOSED

Each side runs its own `HandshakeConnection` (see `framing`) with a role.  A
(role, state, direction, message type) not in `TRANSITIONS` is an error:
received, it is the peer's fault (`RemoteProtocolError`, state ERROR); sent,
it is ours (`LocalProtocolError`, state unchanged since nothing went out).
The relay may refuse without a valid hello too: in AWAIT_HELLO (timeout,
overload) and in ERROR (a malformed hello) it may send `HelloRefused`, so the
peer learns why before the socket closes.
After RAW the owner calls `switch_to_raw()`, which hands over any bytes that
arrived right behind the last frame and moves to SWITCHED: the connection
object is done, the socket is now a byte pipe.
"""

from __future__ import annotations

import enum

from nvrshare.protocol.codec import HandshakeMessage
from nvrshare.protocol.handshake import AgentHello, ClientHello, HelloAccepted, HelloRefused

__all__ = [
    "INITIAL_STATE",
    "READING_STATES",
    "TRANSITIONS",
    "Direction",
    "HandshakeState",
    "Role",
    "Transitions",
    "receivable",
]


class Role(enum.Enum):
    CLIENT = "client"
    AGENT = "agent"
    RELAY = "relay"


class HandshakeState(enum.Enum):
    SEND_HELLO = "send_hello"
    AWAIT_ANSWER = "await_answer"
    AWAIT_HELLO = "await_hello"
    AWAIT_DECISION = "await_decision"
    RAW = "raw"
    SWITCHED = "switched"
    CLOSED = "closed"
    ERROR = "error"


class Direction(enum.Enum):
    SEND = "send"
    RECEIVE = "receive"


INITIAL_STATE = {
    Role.CLIENT: HandshakeState.SEND_HELLO,
    Role.AGENT: HandshakeState.SEND_HELLO,
    Role.RELAY: HandshakeState.AWAIT_HELLO,
}

_S = HandshakeState
_SEND, _RECEIVE = Direction.SEND, Direction.RECEIVE


Transitions = dict[tuple[HandshakeState, Direction, type[HandshakeMessage]], HandshakeState]


def _dialer(hello: type[HandshakeMessage]) -> Transitions:
    return {
        (_S.SEND_HELLO, _SEND, hello): _S.AWAIT_ANSWER,
        (_S.AWAIT_ANSWER, _RECEIVE, HelloAccepted): _S.RAW,
        (_S.AWAIT_ANSWER, _RECEIVE, HelloRefused): _S.CLOSED,
    }


TRANSITIONS: dict[Role, Transitions] = {
    Role.CLIENT: _dialer(ClientHello),
    Role.AGENT: _dialer(AgentHello),
    Role.RELAY: {
        (_S.AWAIT_HELLO, _RECEIVE, ClientHello): _S.AWAIT_DECISION,
        (_S.AWAIT_HELLO, _RECEIVE, AgentHello): _S.AWAIT_DECISION,
        (_S.AWAIT_HELLO, _SEND, HelloRefused): _S.CLOSED,
        (_S.AWAIT_DECISION, _SEND, HelloAccepted): _S.RAW,
        (_S.AWAIT_DECISION, _SEND, HelloRefused): _S.CLOSED,
        (_S.ERROR, _SEND, HelloRefused): _S.CLOSED,
    },
}

# States in which next_event() reads frames; elsewhere it reports PAUSED
# (waiting on our own decision, or raw bytes follow) or the terminal outcome.
READING_STATES = frozenset({_S.SEND_HELLO, _S.AWAIT_ANSWER, _S.AWAIT_HELLO})


def receivable(role: Role) -> frozenset[type[HandshakeMessage]]:
    """The message types `role` ever accepts from its peer."""
    return frozenset(
        message for (_, direction, message) in TRANSITIONS[role] if direction is _RECEIVE
    )
