"""Messages ⇄ bytes: msgpack envelopes, strict typed decoding, signed envelopes.

Wire form of a message: msgpack ``[PROTOCOL_VERSION, "<TypeName>", {field: value}]``
where nested messages are maps too, tuples are arrays, enums their values,
`Permission` its bits, and the channel matrix ``{channel: bits}``.

Decoding is driven by the dataclass annotations and is exact: every field
present, no unknown field, bool is not int, int is not float, enum values
known.  The message constructors then apply the domain rules (serials,
channel ranges, fixed byte lengths).  Whatever the bytes, `decode` raises
only `RemoteProtocolError`.

A signed envelope wraps an encoded message so it can be verified before it is
trusted: ``[PROTOCOL_VERSION, "signed", {"kid": str, "body": bytes, "sig": bytes}]``
with an Ed25519 signature over ``body`` under a purpose context (see
`signing`).
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from nvrshare.protocol.errors import LocalProtocolError, RemoteProtocolError
from nvrshare.protocol.handshake import AgentHello, ClientHello, HelloAccepted, HelloRefused
from nvrshare.protocol.messages import (
    AlarmEvent,
    DeviceRegistration,
    DeviceState,
    ErrorMessage,
    GrantSet,
    Heartbeat,
    PtzCommand,
    PtzResult,
    RegistrationResult,
    SessionAccept,
    SessionClose,
    SessionOffer,
    SessionRefuse,
    SessionRequest,
)
from nvrshare.protocol.permissions import (
    ALL_PERMISSIONS,
    Permission,
    decode_channel_matrix,
    encode_channel_matrix,
)
from nvrshare.protocol.signing import (
    CONTEXT_REGISTRATION,
    KEY_ID_LENGTH,
    SIGNATURE_LENGTH,
    KeyRing,
    SigningKey,
    load_public_key,
)
from nvrshare.protocol.wire import DEFAULT_LIMITS, WireLimits, pack, unpack

__all__ = [
    "CONTROL_MESSAGES",
    "HANDSHAKE_MESSAGES",
    "PROTOCOL_VERSION",
    "ControlMessage",
    "HandshakeMessage",
    "Message",
    "SignedEnvelope",
    "decode",
    "decode_registration",
    "decode_signed",
    "encode",
    "encode_signed",
    "open_envelope",
]

PROTOCOL_VERSION = 1
SIGNED = "signed"

ControlMessage = (
    DeviceRegistration
    | RegistrationResult
    | DeviceState
    | Heartbeat
    | GrantSet
    | SessionRequest
    | SessionOffer
    | SessionAccept
    | SessionRefuse
    | SessionClose
    | PtzCommand
    | PtzResult
    | AlarmEvent
    | ErrorMessage
)
HandshakeMessage = ClientHello | AgentHello | HelloAccepted | HelloRefused
Message = ControlMessage | HandshakeMessage

CONTROL_MESSAGES: frozenset[type[Message]] = frozenset(typing.get_args(ControlMessage))
HANDSHAKE_MESSAGES: frozenset[type[Message]] = frozenset(typing.get_args(HandshakeMessage))
_ALL_MESSAGES = CONTROL_MESSAGES | HANDSHAKE_MESSAGES
_BY_NAME: dict[str, type[Message]] = {cls.__name__: cls for cls in _ALL_MESSAGES}

_Decoder = Callable[[object, str], object]


# --- encoding ---------------------------------------------------------------


# Field names of every dataclass a message can contain; filled by `_struct`
# while the decoders are compiled at import.
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _to_wire(value: object) -> object:
    if isinstance(value, enum.Enum):  # before str/int: StrEnum and IntFlag are both
        return value.value
    names = _FIELD_NAMES.get(type(value))
    if names is not None:
        return {name: _to_wire(getattr(value, name)) for name in names}
    if isinstance(value, tuple):
        return [_to_wire(item) for item in value]
    if isinstance(value, Mapping):  # the only mapping in a message is a channel matrix
        return encode_channel_matrix(value)
    return value


def encode(message: Message) -> bytes:
    """The wire form of `message`; `LocalProtocolError` if it is not a known message."""
    if type(message) not in _ALL_MESSAGES:
        raise LocalProtocolError(f"not a protocol message: {type(message).__name__}")
    return pack([PROTOCOL_VERSION, type(message).__name__, _to_wire(message)])


# --- decoding ---------------------------------------------------------------


def _exact(expected: type) -> _Decoder:
    def decode_exact(value: object, path: str) -> object:
        if type(value) is not expected:
            raise RemoteProtocolError(f"{path} must be {expected.__name__}")
        return value

    return decode_exact


def _permission(value: object, path: str) -> object:
    if type(value) is not int or value & ~int(ALL_PERMISSIONS):
        raise RemoteProtocolError(f"{path} must be permission bits")
    return Permission(value)


def _channel_matrix(value: object, path: str) -> object:
    try:
        return decode_channel_matrix(value)
    except RemoteProtocolError as exc:
        raise RemoteProtocolError(f"{path}: {exc}") from None


def _str_enum(cls: type[enum.StrEnum]) -> _Decoder:
    members = {member.value: member for member in cls}

    def decode_enum(value: object, path: str) -> object:
        if type(value) is not str or value not in members:
            raise RemoteProtocolError(f"{path} must be one of {sorted(members)}")
        return members[value]

    return decode_enum


def _optional(inner: _Decoder) -> _Decoder:
    def decode_optional(value: object, path: str) -> object:
        return None if value is None else inner(value, path)

    return decode_optional


def _tuple_of(item: _Decoder) -> _Decoder:
    def decode_tuple(value: object, path: str) -> object:
        if type(value) is not list:
            raise RemoteProtocolError(f"{path} must be an array")
        return tuple(item(element, f"{path}[{i}]") for i, element in enumerate(value))

    return decode_tuple


def _struct(cls: type[object]) -> _Decoder:
    hints = typing.get_type_hints(cls)
    fields = {f.name: _decoder_for(hints[f.name]) for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    names = frozenset(fields)
    _FIELD_NAMES[cls] = tuple(fields)

    def decode_struct(value: object, path: str) -> object:
        if type(value) is not dict or value.keys() != names:
            raise RemoteProtocolError(f"{path} must be a map of exactly {sorted(names)}")
        arguments = {name: field(value[name], f"{path}.{name}") for name, field in fields.items()}
        try:
            return cls(**arguments)
        except LocalProtocolError as exc:
            raise RemoteProtocolError(f"{path}: {exc}") from None

    return decode_struct


_SCALARS: dict[object, _Decoder] = {
    bool: _exact(bool),
    int: _exact(int),
    float: _exact(float),
    str: _exact(str),
    bytes: _exact(bytes),
    Permission: _permission,
}


def _decoder_for(annotation: object) -> _Decoder:
    """Compile a decoder for one field annotation (done once, at import)."""
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is types.UnionType:  # only `X | None` appears in messages
        (inner,) = (a for a in arguments if a is not type(None))
        return _optional(_decoder_for(inner))
    if origin is tuple:  # tuple[X, ...]
        return _tuple_of(_decoder_for(arguments[0]))
    if origin is Mapping:  # Mapping[int, Permission]: the channel matrix
        return _channel_matrix
    if isinstance(annotation, type) and issubclass(annotation, enum.StrEnum):
        return _str_enum(annotation)
    return _struct(typing.cast("type[object]", annotation))


_DECODERS: dict[type[Message], _Decoder] = {cls: _struct(cls) for cls in _ALL_MESSAGES}


def decode(
    data: bytes,
    *,
    limits: WireLimits = DEFAULT_LIMITS,
    accept: Collection[type[Message]] = _ALL_MESSAGES,
) -> Message:
    """Parse one message, of a type in `accept`, from `data`.

    Raises `RemoteProtocolError` for anything else: bytes over `limits`, bad
    msgpack, another protocol version, an unknown or unaccepted type, missing,
    extra or mistyped fields, or a value a message constructor refuses.
    """
    raw = unpack(data, limits)
    if type(raw) is not list or len(raw) != 3:
        raise RemoteProtocolError("a message is [version, type, fields]")
    version, name, body = raw
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise RemoteProtocolError(f"unsupported protocol version {version!r:.20}")
    cls = _BY_NAME.get(name) if type(name) is str else None
    if cls is None or cls not in accept:
        raise RemoteProtocolError(f"unexpected message type {name!r:.40}")
    return typing.cast("Message", _DECODERS[cls](body, cls.__name__))


# --- signed envelopes ---------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class SignedEnvelope:
    """A signed message as received, before its signature was checked."""

    key_id: str
    body: bytes
    signature: bytes


def encode_signed(message: Message, signing_key: SigningKey, context: bytes) -> bytes:
    """`message` encoded and signed by `signing_key` for the purpose `context`."""
    body = encode(message)
    signature = signing_key.sign(context, body)
    return pack(
        [PROTOCOL_VERSION, SIGNED, {"kid": signing_key.key_id, "body": body, "sig": signature}]
    )


def open_envelope(data: bytes, *, limits: WireLimits = DEFAULT_LIMITS) -> SignedEnvelope:
    """Parse the envelope without verifying it; `RemoteProtocolError` if malformed."""
    raw = unpack(data, limits)
    if type(raw) is not list or len(raw) != 3 or raw[1] != SIGNED:
        raise RemoteProtocolError("not a signed envelope")
    if type(raw[0]) is not int or raw[0] != PROTOCOL_VERSION:
        raise RemoteProtocolError(f"unsupported protocol version {raw[0]!r:.20}")
    fields = raw[2]
    if type(fields) is not dict or fields.keys() != {"kid", "body", "sig"}:
        raise RemoteProtocolError("a signed envelope has exactly kid, body and sig")
    key_id, body, signature = fields["kid"], fields["body"], fields["sig"]
    if type(key_id) is not str or len(key_id) != KEY_ID_LENGTH:
        raise RemoteProtocolError("envelope key id is malformed")
    if (
        type(body) is not bytes
        or type(signature) is not bytes
        or len(signature) != SIGNATURE_LENGTH
    ):
        raise RemoteProtocolError("envelope body or signature is malformed")
    return SignedEnvelope(key_id=key_id, body=body, signature=signature)


def _ring(keys: KeyRing | Ed25519PublicKey) -> KeyRing:
    return keys if isinstance(keys, KeyRing) else KeyRing([keys])


def decode_signed(
    data: bytes,
    keys: KeyRing | Ed25519PublicKey,
    *,
    context: bytes,
    limits: WireLimits = DEFAULT_LIMITS,
    accept: Collection[type[Message]] = _ALL_MESSAGES,
) -> tuple[Message, str]:
    """Verify a signed envelope with `keys` (a ring, or one explicit key), then decode it.

    Returns the message and the id of the key that signed it.  Raises
    `SignatureError` (unknown key or bad signature) or `RemoteProtocolError`;
    nothing inside the body is looked at before the signature verifies.
    """
    envelope = open_envelope(data, limits=limits)
    _ring(keys).verify(envelope.key_id, context, envelope.body, envelope.signature)
    return decode(envelope.body, limits=limits, accept=accept), envelope.key_id


def decode_registration(
    data: bytes,
    *,
    pinned_key: Ed25519PublicKey | None = None,
    limits: WireLimits = DEFAULT_LIMITS,
) -> tuple[DeviceRegistration, str]:
    """Verify and decode a signed `DeviceRegistration`.

    With `pinned_key` (a device seen before) the envelope must be signed by
    that key; the registration may carry a new key, which is how a device
    rotates.  Without one (first contact) it must be signed by the key it
    carries: that proves possession of the key, not the right to the serial,
    which the caller decides (claim codes, an allow-list).
    """
    if pinned_key is not None:
        message, key_id = decode_signed(
            data,
            pinned_key,
            context=CONTEXT_REGISTRATION,
            limits=limits,
            accept=(DeviceRegistration,),
        )
        return typing.cast("DeviceRegistration", message), key_id
    envelope = open_envelope(data, limits=limits)
    registration = typing.cast(
        "DeviceRegistration", decode(envelope.body, limits=limits, accept=(DeviceRegistration,))
    )
    own_key = load_public_key(registration.public_key)
    KeyRing([own_key]).verify(
        envelope.key_id, CONTEXT_REGISTRATION, envelope.body, envelope.signature
    )
    return registration, envelope.key_id
