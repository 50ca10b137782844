"""Hypothesis strategies for valid protocol messages, shared by the protocol tests."""

from __future__ import annotations

from hypothesis import strategies as st

from nvrshare.protocol import handshake as h
from nvrshare.protocol import messages as m
from nvrshare.protocol._checks import MAX_TIMESTAMP
from nvrshare.protocol.permissions import MAX_CHANNEL, Permission, TimeWindow
from nvrshare.protocol.reasons import CloseReason, RefusalReason

serials = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,30}", fullmatch=True)
domains = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
timestamps = st.integers(0, MAX_TIMESTAMP)
channels = st.integers(1, MAX_CHANNEL)
permissions = st.integers(1, 31).map(Permission)
ips = st.ip_addresses().map(str)
ports = st.integers(1, 65535)
unit_floats = st.floats(-1.0, 1.0, allow_nan=False)


def texts(max_size: int, min_size: int = 0) -> st.SearchStrategy[str]:
    alphabet = st.characters(exclude_categories=("Cs", "Cc", "Cf"))
    return st.text(alphabet, min_size=min_size, max_size=max_size)


def exact_bytes(size: int) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=size, max_size=size)


tokens = st.binary(min_size=1, max_size=300)
session_ids = exact_bytes(16)
windows = st.tuples(st.integers(0, MAX_TIMESTAMP - 2**20), st.integers(1, 2**20)).map(
    lambda t: TimeWindow(start=t[0], end=t[0] + t[1])
)
channel_matrices = st.dictionaries(channels, permissions, min_size=1, max_size=8)


@st.composite
def session_requests(draw: st.DrawFn) -> m.SessionRequest:
    kind = draw(st.sampled_from(m.SessionKind))
    return m.SessionRequest(
        device_serial=draw(serials),
        channel=draw(channels),
        kind=kind,
        playback_window=draw(windows) if kind is m.SessionKind.PLAYBACK else None,
    )


@st.composite
def account_grants(draw: st.DrawFn) -> m.AccountGrant:
    valid_from = draw(st.none() | st.integers(0, 2**32))
    valid_until = draw(st.none() | st.integers(2**32 + 1, 2**33))
    return m.AccountGrant(
        account_id=draw(texts(40, min_size=1)),
        channels=draw(channel_matrices),
        valid_from=valid_from,
        valid_until=valid_until,
        playback_window=draw(st.none() | windows),
    )


@st.composite
def ptz_commands(draw: st.DrawFn) -> m.PtzCommand:
    action = draw(st.sampled_from(m.PtzAction))
    preset_action = action in {m.PtzAction.GOTO_PRESET, m.PtzAction.SET_PRESET}
    return m.PtzCommand(
        request_id=draw(exact_bytes(16)),
        token=draw(tokens),
        channel=draw(channels),
        action=action,
        pan=draw(unit_floats),
        tilt=draw(unit_floats),
        zoom=draw(unit_floats),
        preset=draw(st.integers(1, m.MAX_PRESET)) if preset_action else None,
    )


channel_infos = st.builds(
    m.ChannelInfo,
    number=channels,
    name=texts(20),
    online=st.booleans(),
    capabilities=st.integers(0, 31).map(Permission),
)


@st.composite
def registrations(draw: st.DrawFn) -> m.DeviceRegistration:
    infos = draw(st.lists(channel_infos, max_size=6, unique_by=lambda c: c.number))
    return m.DeviceRegistration(
        serial=draw(serials),
        domain=draw(domains),
        model=draw(texts(20, min_size=1)),
        firmware_version=draw(texts(20, min_size=1)),
        channels=tuple(infos),
        ip=draw(ips),
        port=draw(ports),
        public_key=draw(exact_bytes(32)),
        timestamp=draw(timestamps),
        nonce=draw(exact_bytes(16)),
    )


@st.composite
def grant_sets(draw: st.DrawFn) -> m.GrantSet:
    grants = draw(st.lists(account_grants(), max_size=4, unique_by=lambda g: g.account_id))
    return m.GrantSet(
        device_serial=draw(serials),
        version=draw(st.integers(0, 2**63 - 1)),
        share_epoch=draw(st.integers(0, 2**63 - 1)),
        issued_at=draw(timestamps),
        service_enabled=draw(st.booleans()),
        grants=tuple(grants),
        revoked_token_ids=tuple(draw(st.lists(exact_bytes(16), max_size=3))),
        revoked_accounts=tuple(draw(st.lists(texts(20, min_size=1), max_size=3))),
        relay_public_keys=tuple(draw(st.lists(exact_bytes(32), max_size=2))),
    )


control_messages = st.one_of(
    registrations(),
    st.builds(
        m.RegistrationResult,
        serial=serials,
        accepted=st.booleans(),
        reason=texts(40),
        grant_set_version=st.integers(0, 2**63 - 1),
    ),
    st.builds(
        m.DeviceState,
        serial=serials,
        online=st.booleans(),
        timestamp=timestamps,
        ip=ips,
        port=ports,
    ),
    st.builds(m.Heartbeat, serial=serials, timestamp=timestamps),
    grant_sets(),
    session_requests(),
    st.builds(
        m.SessionOffer,
        session_id=session_ids,
        token=tokens,
        request=session_requests(),
        relay_host=st.sampled_from(["relay.example.com", "127.0.0.1", "::1", "r1"]),
        relay_port=ports,
        session_secret=exact_bytes(32),
        expires_at=timestamps,
    ),
    st.builds(m.SessionAccept, session_id=session_ids),
    st.builds(m.SessionRefuse, session_id=session_ids, reason=st.sampled_from(RefusalReason)),
    st.builds(m.SessionClose, session_id=session_ids, reason=st.sampled_from(CloseReason)),
    ptz_commands(),
    st.builds(m.PtzResult, request_id=exact_bytes(16), ok=st.booleans(), reason=texts(40)),
    st.builds(
        m.AlarmEvent,
        device_serial=serials,
        channel=channels,
        event_type=texts(30, min_size=1),
        active=st.booleans(),
        timestamp=timestamps,
    ),
    st.builds(m.ErrorMessage, code=texts(20, min_size=1), message=texts(60)),
)

handshake_messages = st.one_of(
    st.builds(
        h.ClientHello, token=tokens, request=session_requests(), client_nonce=exact_bytes(16)
    ),
    st.builds(h.AgentHello, session_id=session_ids, proof=exact_bytes(32)),
    st.builds(h.HelloAccepted, session_id=session_ids),
    st.builds(h.HelloRefused, reason=st.sampled_from(RefusalReason), message=texts(40)),
)

messages = control_messages | handshake_messages
