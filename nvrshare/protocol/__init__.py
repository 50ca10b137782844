"""nvrshare's sans-IO protocol core: messages, framing, topics, permissions, tokens.

No sockets, no asyncio, no clock: time is always an argument.

Module map, bottom up:

- `errors`: `ProtocolError` → `LocalProtocolError` (caller's fault) /
  `RemoteProtocolError` (peer's fault; the only thing a decoder raises).
- `wire`: bounded msgpack.  `validation`: serials and domains.
- `permissions`: per-channel `Permission` flags, `Grant`, and `check`, the one
  access rule.  `signing`: Ed25519 with key ids and purpose contexts.
- `tokens`: share tokens (issue / verify, rejection reasons).
- `messages`: control-plane messages (MQTT); `handshake`: data-plane hellos;
  `reasons`: refusal and close reasons on the wire.
- `codec`: messages ⇄ bytes, and signed envelopes (grant sets, registrations).
- `topics`: MQTT topic names, relay filters, per-device ACL patterns.
- `framing` + `handshake_state`: the length-prefixed data-plane handshake as a
  sans-IO connection, then raw bytes.
"""

from nvrshare.protocol.codec import (
    CONTROL_MESSAGES,
    HANDSHAKE_MESSAGES,
    PROTOCOL_VERSION,
    ControlMessage,
    HandshakeMessage,
    Message,
    SignedEnvelope,
    decode,
    decode_registration,
    decode_signed,
    encode,
    encode_signed,
    open_envelope,
)
from nvrshare.protocol.errors import (
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    SignatureError,
    TokenError,
    TokenRejection,
)
from nvrshare.protocol.framing import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    FrameReceived,
    FramingConfig,
    HandshakeConnection,
    encode_frame,
)
from nvrshare.protocol.handshake import (
    AGENT_PROOF_CONTEXT,
    AgentHello,
    ClientHello,
    HelloAccepted,
    HelloRefused,
    agent_proof,
    verify_agent_proof,
)
from nvrshare.protocol.handshake_state import HandshakeState, Role
from nvrshare.protocol.messages import (
    MAX_PRESET,
    NONCE_LENGTH,
    SESSION_ID_LENGTH,
    SESSION_SECRET_LENGTH,
    AccountGrant,
    AlarmEvent,
    ChannelInfo,
    DeviceRegistration,
    DeviceState,
    ErrorMessage,
    GrantSet,
    Heartbeat,
    PtzAction,
    PtzCommand,
    PtzResult,
    RegistrationResult,
    SessionAccept,
    SessionClose,
    SessionKind,
    SessionOffer,
    SessionRefuse,
    SessionRequest,
)
from nvrshare.protocol.permissions import (
    ALL_PERMISSIONS,
    MAX_CHANNEL,
    Allow,
    Decision,
    Deny,
    DenyReason,
    Grant,
    Permission,
    TimeWindow,
    check,
    check_playback,
)
from nvrshare.protocol.reasons import (
    CloseReason,
    RefusalReason,
    refusal_for_denial,
    refusal_for_token,
)
from nvrshare.protocol.signing import (
    CONTEXT_GRANT_SET,
    CONTEXT_REGISTRATION,
    CONTEXT_SHARE_TOKEN,
    KeyRing,
    SigningKey,
    key_id_for,
    load_public_key,
    public_key_bytes,
)
from nvrshare.protocol.tokens import (
    Audience,
    ShareClaims,
    TokenIssuer,
    TokenVerifier,
    token_from_text,
    token_to_text,
)
from nvrshare.protocol.topics import (
    DEFAULT_ROOT,
    DeviceTopic,
    TopicKind,
    TopicPatterns,
    device_subscription,
    device_topic,
    device_topic_patterns,
    parse_device_topic,
    relay_filters,
    relay_subscriptions,
)
from nvrshare.protocol.validation import (
    is_valid_domain,
    is_valid_serial,
)
from nvrshare.protocol.wire import (
    WireLimits,
)

__all__ = [
    "AGENT_PROOF_CONTEXT",
    "ALL_PERMISSIONS",
    "CONTEXT_GRANT_SET",
    "CONTEXT_REGISTRATION",
    "CONTEXT_SHARE_TOKEN",
    "CONTROL_MESSAGES",
    "DEFAULT_ROOT",
    "HANDSHAKE_MESSAGES",
    "MAX_CHANNEL",
    "MAX_PRESET",
    "NEED_DATA",
    "NONCE_LENGTH",
    "PAUSED",
    "PROTOCOL_VERSION",
    "SESSION_ID_LENGTH",
    "SESSION_SECRET_LENGTH",
    "AccountGrant",
    "AgentHello",
    "AlarmEvent",
    "Allow",
    "Audience",
    "ChannelInfo",
    "ClientHello",
    "CloseReason",
    "ConnectionClosed",
    "ControlMessage",
    "Decision",
    "Deny",
    "DenyReason",
    "DeviceRegistration",
    "DeviceState",
    "DeviceTopic",
    "ErrorMessage",
    "FrameReceived",
    "FramingConfig",
    "Grant",
    "GrantSet",
    "HandshakeConnection",
    "HandshakeMessage",
    "HandshakeState",
    "Heartbeat",
    "HelloAccepted",
    "HelloRefused",
    "KeyRing",
    "LocalProtocolError",
    "Message",
    "Permission",
    "ProtocolError",
    "PtzAction",
    "PtzCommand",
    "PtzResult",
    "RefusalReason",
    "RegistrationResult",
    "RemoteProtocolError",
    "Role",
    "SessionAccept",
    "SessionClose",
    "SessionKind",
    "SessionOffer",
    "SessionRefuse",
    "SessionRequest",
    "ShareClaims",
    "SignatureError",
    "SignedEnvelope",
    "SigningKey",
    "TimeWindow",
    "TokenError",
    "TokenIssuer",
    "TokenRejection",
    "TokenVerifier",
    "TopicKind",
    "TopicPatterns",
    "WireLimits",
    "agent_proof",
    "check",
    "check_playback",
    "decode",
    "decode_registration",
    "decode_signed",
    "device_subscription",
    "device_topic",
    "device_topic_patterns",
    "encode",
    "encode_frame",
    "encode_signed",
    "is_valid_domain",
    "is_valid_serial",
    "key_id_for",
    "load_public_key",
    "open_envelope",
    "parse_device_topic",
    "public_key_bytes",
    "refusal_for_denial",
    "refusal_for_token",
    "relay_filters",
    "relay_subscriptions",
    "token_from_text",
    "token_to_text",
    "verify_agent_proof",
]
