from __future__ import annotations

import importlib
import pkgutil

import nvrshare.protocol

# Other packages build on these names: changing this list is an API change.
PUBLIC_NAMES = [
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


def test_public_names_are_pinned() -> None:
    assert sorted(nvrshare.protocol.__all__) == sorted(PUBLIC_NAMES)
    for name in PUBLIC_NAMES:
        assert hasattr(nvrshare.protocol, name), name


def test_every_module_declares_its_public_names() -> None:
    for module_info in pkgutil.iter_modules(nvrshare.protocol.__path__):
        module = importlib.import_module(f"nvrshare.protocol.{module_info.name}")
        assert isinstance(module.__all__, list), module_info.name
        for name in module.__all__:
            assert hasattr(module, name), f"{module_info.name}.{name}"
