from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nvrshare.protocol import codec
from nvrshare.protocol import handshake as h
from nvrshare.protocol import messages as m
from nvrshare.protocol.errors import LocalProtocolError, RemoteProtocolError
from nvrshare.protocol.framing import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    FrameReceived,
    FramingConfig,
    HandshakeConnection,
    encode_frame,
)
from nvrshare.protocol.handshake_state import TRANSITIONS, Direction, HandshakeState, Role
from nvrshare.protocol.reasons import RefusalReason

SID = bytes(range(16))
SECRET = b"k" * 32
REQUEST = m.SessionRequest(device_serial="DS-1", channel=1, kind=m.SessionKind.LIVE_SUB)
CLIENT_HELLO = h.ClientHello(token=b"token", request=REQUEST, client_nonce=b"n" * 16)
AGENT_HELLO = h.AgentHello(session_id=SID, proof=h.agent_proof(SECRET, SID))
ACCEPTED = h.HelloAccepted(session_id=SID)
REFUSED = h.HelloRefused(reason=RefusalReason.TOKEN_EXPIRED, message="")
ALL_HELLOS: list[codec.HandshakeMessage] = [CLIENT_HELLO, AGENT_HELLO, ACCEPTED, REFUSED]
HELLO_FOR = {Role.CLIENT: CLIENT_HELLO, Role.AGENT: AGENT_HELLO}


def drain(conn: HandshakeConnection) -> list[object]:
    events: list[object] = []
    while True:
        event = conn.next_event()
        if event is NEED_DATA or event is PAUSED:
            return events
        events.append(event)
        if isinstance(event, ConnectionClosed):
            return events


def feed(conn: HandshakeConnection, data: bytes, chunk: int = 1) -> list[object]:
    events: list[object] = []
    for i in range(0, len(data), chunk):
        conn.receive_data(data[i : i + chunk])
        events += drain(conn)
    return events


@pytest.mark.parametrize("role", [Role.CLIENT, Role.AGENT])
def test_handshake_then_raw_bytes_are_never_lost(role: Role) -> None:
    dialer, relay = HandshakeConnection(role), HandshakeConnection(Role.RELAY)
    hello = HELLO_FOR[role]
    # The dialer pipelines stream bytes behind its hello; the relay must keep them.
    events = feed(relay, dialer.send(hello) + b"GET / RTSP/1.0\r\n", chunk=3)
    assert events == [FrameReceived(message=hello)]
    assert relay.state is HandshakeState.AWAIT_DECISION
    assert relay.next_event() is PAUSED
    # The relay answers and starts streaming in the same write; byte-at-a-time delivery.
    answer = relay.send(ACCEPTED) + b"\x00stream"
    assert relay.state is HandshakeState.RAW
    assert relay.switch_to_raw() == (b"GET / RTSP/1.0\r\n", False)
    assert feed(dialer, answer) == [FrameReceived(message=ACCEPTED)]
    assert dialer.state is HandshakeState.RAW
    assert dialer.next_event() is PAUSED
    assert dialer.trailing_data == (b"\x00stream", False)
    dialer.receive_data(b"")
    assert dialer.switch_to_raw() == (b"\x00stream", True)
    assert dialer.state is HandshakeState.SWITCHED


def test_refusal_closes_both_sides() -> None:
    client, relay = HandshakeConnection(Role.CLIENT), HandshakeConnection(Role.RELAY)
    feed(relay, client.send(CLIENT_HELLO), chunk=1000)
    events = feed(client, relay.send(REFUSED), chunk=1000)
    assert events == [FrameReceived(message=REFUSED), ConnectionClosed()]
    for conn in (client, relay):
        assert conn.state is HandshakeState.CLOSED
        assert conn.next_event() == ConnectionClosed()
        with pytest.raises(LocalProtocolError):
            conn.switch_to_raw()


def test_relay_can_refuse_a_malformed_hello() -> None:
    relay = HandshakeConnection(Role.RELAY)
    relay.receive_data(encode_frame(b"\xc1"))  # 0xc1 is never valid msgpack
    with pytest.raises(RemoteProtocolError):
        relay.next_event()
    assert relay.state is HandshakeState.ERROR
    with pytest.raises(RemoteProtocolError):
        relay.next_event()
    refusal = h.HelloRefused(reason=RefusalReason.BAD_REQUEST, message="malformed hello")
    assert relay.send(refusal)
    assert relay.state is HandshakeState.CLOSED


def test_clean_eof_between_frames_and_truncated_frames() -> None:
    relay = HandshakeConnection(Role.RELAY)
    relay.receive_data(b"")
    assert relay.next_event() == ConnectionClosed()
    assert relay.state is HandshakeState.CLOSED
    with pytest.raises(LocalProtocolError):
        relay.receive_data(b"x")
    for partial in (b"\x00", encode_frame(codec.encode(CLIENT_HELLO))[:-1]):
        relay = HandshakeConnection(Role.RELAY)
        relay.receive_data(partial)
        assert relay.next_event() is NEED_DATA
        relay.receive_data(b"")
        with pytest.raises(RemoteProtocolError, match="middle of a frame"):
            relay.next_event()


@pytest.mark.parametrize("prefix", [b"\x00\x00", b"\x40\x01"])
def test_frame_length_bounds(prefix: bytes) -> None:
    relay = HandshakeConnection(Role.RELAY)
    relay.receive_data(prefix)
    with pytest.raises(RemoteProtocolError, match="out of bounds"):
        relay.next_event()


def test_buffer_is_bounded() -> None:
    config = FramingConfig(max_frame_size=100, max_buffer_size=200)
    relay = HandshakeConnection(Role.RELAY, config)
    relay.receive_data(b"\x00" * 150)
    with pytest.raises(RemoteProtocolError, match="too much"):
        relay.receive_data(b"\x00" * 51)
    assert relay.state is HandshakeState.ERROR


def test_messages_outside_the_handshake_are_refused() -> None:
    relay = HandshakeConnection(Role.RELAY)
    relay.receive_data(encode_frame(codec.encode(m.SessionAccept(session_id=SID))))
    with pytest.raises(RemoteProtocolError, match="unexpected message type"):
        relay.next_event()
    client = HandshakeConnection(Role.CLIENT)
    with pytest.raises(LocalProtocolError):
        client.send(m.SessionAccept(session_id=SID))  # type: ignore[arg-type]


def test_oversized_outgoing_message_is_refused() -> None:
    client = HandshakeConnection(Role.CLIENT, FramingConfig(max_frame_size=64))
    with pytest.raises(LocalProtocolError, match="one frame"):
        client.send(CLIENT_HELLO)
    assert client.state is HandshakeState.SEND_HELLO


def test_switched_connection_is_done() -> None:
    client, relay = HandshakeConnection(Role.CLIENT), HandshakeConnection(Role.RELAY)
    feed(relay, client.send(CLIENT_HELLO))
    feed(client, relay.send(ACCEPTED))
    client.switch_to_raw()
    with pytest.raises(LocalProtocolError):
        client.receive_data(b"x")
    with pytest.raises(LocalProtocolError):
        client.next_event()
    with pytest.raises(LocalProtocolError):
        client.send(CLIENT_HELLO)


def test_framing_bounds_are_validated() -> None:
    with pytest.raises(LocalProtocolError):
        FramingConfig(max_frame_size=0)
    with pytest.raises(LocalProtocolError):
        FramingConfig(max_frame_size=65536)
    with pytest.raises(LocalProtocolError):
        FramingConfig(max_frame_size=1000, max_buffer_size=1001)
    with pytest.raises(LocalProtocolError):
        encode_frame(b"")
    with pytest.raises(LocalProtocolError):
        encode_frame(b"x" * 11, max_frame_size=10)
    assert encode_frame(b"abc") == b"\x00\x03abc"


# --- every (state, input) pair ---------------------------------------------------------

# How to reach each state of each role by legal moves: (direction, message) steps.
PATHS: dict[Role, dict[HandshakeState, list[tuple[Direction, codec.HandshakeMessage]]]] = {
    role: {
        HandshakeState.SEND_HELLO: [],
        HandshakeState.AWAIT_ANSWER: [(Direction.SEND, HELLO_FOR[role])],
        HandshakeState.RAW: [(Direction.SEND, HELLO_FOR[role]), (Direction.RECEIVE, ACCEPTED)],
        HandshakeState.CLOSED: [(Direction.SEND, HELLO_FOR[role]), (Direction.RECEIVE, REFUSED)],
    }
    for role in (Role.CLIENT, Role.AGENT)
}
PATHS[Role.RELAY] = {
    HandshakeState.AWAIT_HELLO: [],
    HandshakeState.AWAIT_DECISION: [(Direction.RECEIVE, CLIENT_HELLO)],
    HandshakeState.RAW: [(Direction.RECEIVE, AGENT_HELLO), (Direction.SEND, ACCEPTED)],
    HandshakeState.CLOSED: [(Direction.RECEIVE, CLIENT_HELLO), (Direction.SEND, REFUSED)],
}


def connection_in(role: Role, state: HandshakeState) -> HandshakeConnection:
    conn = HandshakeConnection(role)
    for direction, message in PATHS[role][state]:
        if direction is Direction.SEND:
            conn.send(message)
        else:
            conn.receive_data(encode_frame(codec.encode(message)))
            assert isinstance(conn.next_event(), FrameReceived)
    assert conn.state is state
    return conn


CASES = [
    (role, state, message)
    for role, states in PATHS.items()
    for state in states
    for message in ALL_HELLOS
]


@pytest.mark.parametrize(("role", "state", "message"), CASES)
def test_every_state_and_input(
    role: Role, state: HandshakeState, message: codec.HandshakeMessage
) -> None:
    allowed = TRANSITIONS[role]
    sender = connection_in(role, state)
    if (state, Direction.SEND, type(message)) in allowed:
        sender.send(message)
        assert sender.state is allowed[state, Direction.SEND, type(message)]
    else:
        with pytest.raises(LocalProtocolError):
            sender.send(message)
        assert sender.state is state

    receiver = connection_in(role, state)
    receiver.receive_data(encode_frame(codec.encode(message)))
    if (state, Direction.RECEIVE, type(message)) in allowed:
        assert receiver.next_event() == FrameReceived(message=message)
        assert receiver.state is allowed[state, Direction.RECEIVE, type(message)]
    elif state in (HandshakeState.AWAIT_DECISION, HandshakeState.RAW):
        assert receiver.next_event() is PAUSED  # not read: it belongs to the stream
    elif state is HandshakeState.CLOSED:
        assert receiver.next_event() == ConnectionClosed()
    else:
        with pytest.raises(RemoteProtocolError):
            receiver.next_event()
        assert receiver.state is HandshakeState.ERROR


# --- fuzzing --------------------------------------------------------------------------


@given(
    role=st.sampled_from(Role),
    data=st.binary(max_size=300)
    | st.sampled_from(ALL_HELLOS).map(lambda msg: encode_frame(codec.encode(msg))),
    tail=st.binary(max_size=40),
    chunk=st.integers(1, 64),
    eof=st.booleans(),
)
def test_any_bytes_in_any_chunks_yield_events_or_remote_errors(
    role: Role, data: bytes, tail: bytes, chunk: int, eof: bool
) -> None:
    conn = HandshakeConnection(role)
    stream = data + tail
    try:
        for i in range(0, len(stream), chunk):
            conn.receive_data(stream[i : i + chunk])
            for event in drain(conn):
                assert isinstance(event, FrameReceived | ConnectionClosed)
        if eof:
            conn.receive_data(b"")
            drain(conn)
    except RemoteProtocolError:
        assert conn.state is HandshakeState.ERROR


@given(st.binary(max_size=200), st.lists(st.integers(1, 50), max_size=20))
def test_trailing_bytes_survive_any_chunking(raw: bytes, cuts: list[int]) -> None:
    client, relay = HandshakeConnection(Role.CLIENT), HandshakeConnection(Role.RELAY)
    feed(relay, client.send(CLIENT_HELLO), chunk=7)
    stream = relay.send(ACCEPTED) + raw
    position = 0
    for cut in [*cuts, len(stream)]:
        piece = stream[position : position + cut]
        position += len(piece)
        if piece:
            client.receive_data(piece)
            drain(client)
    assert client.state is HandshakeState.RAW
    assert client.switch_to_raw() == (raw, False)


Operation = tuple[str, object]
operations = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.sampled_from(ALL_HELLOS)),
        st.tuples(st.just("frame"), st.sampled_from(ALL_HELLOS)),
        st.tuples(st.just("bytes"), st.binary(max_size=8)),
        st.tuples(st.just("eof"), st.none()),
        st.tuples(st.just("switch"), st.none()),
    ),
    max_size=8,
)


@given(role=st.sampled_from(Role), ops=operations)
def test_random_operation_sequences_follow_the_table(role: Role, ops: list[Operation]) -> None:
    conn = HandshakeConnection(role)
    allowed = TRANSITIONS[role]
    for kind, argument in ops:
        before = conn.state
        try:
            if kind == "send":
                assert isinstance(
                    argument, h.ClientHello | h.AgentHello | h.HelloAccepted | h.HelloRefused
                )
                conn.send(argument)
                assert conn.state is allowed[before, Direction.SEND, type(argument)]
            elif kind == "switch":
                conn.switch_to_raw()
                assert before is HandshakeState.RAW
            else:
                if kind == "frame":
                    assert isinstance(
                        argument, h.ClientHello | h.AgentHello | h.HelloAccepted | h.HelloRefused
                    )
                    conn.receive_data(encode_frame(codec.encode(argument)))
                elif kind == "bytes":
                    assert isinstance(argument, bytes)
                    conn.receive_data(argument)
                else:
                    conn.receive_data(b"")
                drain(conn)
        except LocalProtocolError:
            assert conn.state is before  # misuse changes nothing
        except RemoteProtocolError:
            assert conn.state is HandshakeState.ERROR
