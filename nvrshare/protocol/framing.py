"""Data-plane handshake framing: length-prefixed frames, then raw bytes.

A frame is a 2-byte big-endian length followed by that many bytes of one
codec-encoded handshake message (`handshake`).  Frames are bounded by
`FramingConfig.max_frame_size`; a zero-length or oversized frame is an error.

`HandshakeConnection` is sans-IO with h11's call shape::

    conn.receive_data(chunk)     # b"" means EOF
    event = conn.next_event()    # FrameReceived | ConnectionClosed | NEED_DATA | PAUSED
    wire = conn.send(message)    # bytes to write

Once the handshake reaches RAW, frames stop: whatever arrived behind the
last frame belongs to the stream, and `switch_to_raw()` hands it over so that
not one byte is lost (like h11's ``trailing_data``).  States and transitions
live in `handshake_state`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, Literal, cast

from nvrshare.protocol import codec
from nvrshare.protocol.codec import HandshakeMessage
from nvrshare.protocol.errors import LocalProtocolError, RemoteProtocolError
from nvrshare.protocol.handshake_state import (
    INITIAL_STATE,
    READING_STATES,
    TRANSITIONS,
    Direction,
    HandshakeState,
    Role,
    receivable,
)
from nvrshare.protocol.wire import WireLimits

__all__ = [
    "LENGTH_PREFIX",
    "NEED_DATA",
    "PAUSED",
    "ConnectionClosed",
    "FrameReceived",
    "FramingConfig",
    "HandshakeConnection",
    "Sentinel",
    "encode_frame",
]

LENGTH_PREFIX = 2
MAX_FRAME_LIMIT = 2 ** (8 * LENGTH_PREFIX) - 1


class Sentinel(enum.Enum):
    NEED_DATA = "need_data"  # feed more bytes (or EOF) with receive_data()
    PAUSED = "paused"  # no more frames: send our answer, or switch_to_raw()


NEED_DATA: Final = Sentinel.NEED_DATA
PAUSED: Final = Sentinel.PAUSED


# A hello is a token plus a few small fields: tight limits cost nothing.
HANDSHAKE_LIMITS = WireLimits(max_size=16 * 1024, max_string=4096, max_items=64, max_depth=4)


@dataclass(frozen=True, kw_only=True, slots=True)
class FramingConfig:
    """Bounds for one handshake connection.

    `max_frame_size`: largest frame payload accepted or sent (≤ 65535).
    `max_buffer_size`: most unprocessed bytes held before the handshake is
    over; the adapter must stop reading once `next_event` says PAUSED.
    `limits`: msgpack limits for each frame's message.
    """

    max_frame_size: int = 16 * 1024
    max_buffer_size: int = 1024 * 1024
    limits: WireLimits = HANDSHAKE_LIMITS

    def __post_init__(self) -> None:
        if not 1 <= self.max_frame_size <= MAX_FRAME_LIMIT:
            raise LocalProtocolError(f"max_frame_size must be in 1..{MAX_FRAME_LIMIT}")
        if self.max_buffer_size < self.max_frame_size + LENGTH_PREFIX:
            raise LocalProtocolError("max_buffer_size must hold at least one whole frame")


@dataclass(frozen=True, kw_only=True, slots=True)
class FrameReceived:
    message: HandshakeMessage


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The handshake ended without a stream: close the socket.

    Reported when the peer closed cleanly between frames, and from then on
    whenever a refusal was sent or received.
    """


Event = FrameReceived | ConnectionClosed


def encode_frame(payload: bytes, *, max_frame_size: int = MAX_FRAME_LIMIT) -> bytes:
    """`payload` with its length prefix; `LocalProtocolError` if empty or too big."""
    if not 0 < len(payload) <= min(max_frame_size, MAX_FRAME_LIMIT):
        raise LocalProtocolError(f"a frame payload must be 1..{max_frame_size} bytes")
    return len(payload).to_bytes(LENGTH_PREFIX, "big") + payload


class HandshakeConnection:
    """One side (client, agent or relay) of a data-plane handshake."""

    def __init__(self, role: Role, config: FramingConfig | None = None) -> None:
        self.role = role
        self.config = config if config is not None else FramingConfig()
        self._state = INITIAL_STATE[role]
        self._transitions = TRANSITIONS[role]
        self._accept = receivable(role)
        self._buffer = bytearray()
        self._eof = False

    @property
    def state(self) -> HandshakeState:
        return self._state

    @property
    def trailing_data(self) -> tuple[bytes, bool]:
        """Bytes received but not consumed as frames, and whether EOF was seen."""
        return bytes(self._buffer), self._eof

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer; `b""` means it closed its side.

        Raises `LocalProtocolError` after EOF or after `switch_to_raw()`, and
        `RemoteProtocolError` if the peer sent more than `max_buffer_size`.
        """
        if self._state is HandshakeState.SWITCHED:
            raise LocalProtocolError("the connection was switched to raw bytes")
        if self._eof:
            raise LocalProtocolError("data received after EOF")
        if not data:
            self._eof = True
            return
        if len(self._buffer) + len(data) > self.config.max_buffer_size:
            self._state = HandshakeState.ERROR
            raise RemoteProtocolError("peer sent too much before the handshake finished")
        self._buffer += data

    def next_event(self) -> Event | Literal[Sentinel.NEED_DATA, Sentinel.PAUSED]:
        """The next thing the peer did, or NEED_DATA, or PAUSED.

        Raises `RemoteProtocolError` (and moves to ERROR) on a malformed or
        out-of-order frame, or on EOF in the middle of a frame.
        """
        state = self._state
        if state is HandshakeState.ERROR:
            raise RemoteProtocolError("the connection already failed")
        if state is HandshakeState.SWITCHED:
            raise LocalProtocolError("the connection was switched to raw bytes")
        if state is HandshakeState.CLOSED:
            return ConnectionClosed()
        if state not in READING_STATES:
            return PAUSED
        try:
            return self._read_frame()
        except RemoteProtocolError:
            self._state = HandshakeState.ERROR
            raise

    def _read_frame(self) -> Event | Literal[Sentinel.NEED_DATA]:
        buffer = self._buffer
        if len(buffer) >= LENGTH_PREFIX:
            length = int.from_bytes(buffer[:LENGTH_PREFIX], "big")
            if not 0 < length <= self.config.max_frame_size:
                raise RemoteProtocolError(f"frame length {length} out of bounds")
            end = LENGTH_PREFIX + length
            if len(buffer) >= end:
                payload = bytes(buffer[LENGTH_PREFIX:end])
                del buffer[:end]
                message = cast(
                    "HandshakeMessage",
                    codec.decode(payload, limits=self.config.limits, accept=self._accept),
                )
                self._transition(Direction.RECEIVE, message)
                return FrameReceived(message=message)
        if not self._eof:
            return NEED_DATA
        if buffer:
            raise RemoteProtocolError("connection closed in the middle of a frame")
        self._state = HandshakeState.CLOSED
        return ConnectionClosed()

    def _transition(self, direction: Direction, message: HandshakeMessage) -> None:
        next_state = self._transitions.get((self._state, direction, type(message)))
        if next_state is None:
            name = type(message).__name__
            if direction is Direction.RECEIVE:
                raise RemoteProtocolError(f"unexpected {name} in state {self._state.value}")
            raise LocalProtocolError(f"cannot send {name} in state {self._state.value}")
        self._state = next_state

    def send(self, message: HandshakeMessage) -> bytes:
        """The bytes that carry `message`; `LocalProtocolError` if it may not be sent now."""
        payload = codec.encode(message)
        if len(payload) > self.config.max_frame_size:
            raise LocalProtocolError("message does not fit in one frame")
        self._transition(Direction.SEND, message)
        return encode_frame(payload)

    def switch_to_raw(self) -> tuple[bytes, bool]:
        """End the handshake; return the stream bytes already received and the EOF flag.

        Only in RAW (after HelloAccepted); `LocalProtocolError` otherwise.
        """
        if self._state is not HandshakeState.RAW:
            raise LocalProtocolError(f"cannot switch to raw bytes in state {self._state.value}")
        trailing = self.trailing_data
        self._buffer.clear()
        self._state = HandshakeState.SWITCHED
        return trailing
