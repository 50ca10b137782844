"""The server side of an RTSP conversation on one TCP connection, sans-IO.

Theory of operation: the adapter (`rtsp_server`) feeds each parsed
`RtspRequest` to `RtspConversation.handle`, which returns a `Reply`: the
response bytes, plus what the media side must do (start or resume pacing a
session, pause it, stop it) and whether to close the connection.  No sockets,
tasks or clocks here; ids and random bases come from an injected `randbits`.

A media session moves through the RFC 2326 (Appendix A.1) server states;
the table below is the whole of it.  A (state, method) pair missing from the
table is answered 455 Method Not Valid in This State and changes nothing.
SETUP creates a session in READY; TEARDOWN ends it (state None).
"""

from __future__ import annotations

import enum
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

from nvrshare.simulators.digest import AuthResult, DigestAuthenticator
from nvrshare.simulators.h264clip import H264Clip
from nvrshare.simulators.rtp import CLOCK_RATE, PAYLOAD_TYPE, H264Packetizer
from nvrshare.simulators.rtsp_messages import RtspRequest, format_response

__all__ = [
    "PUBLIC",
    "TRANSITIONS",
    "MediaAction",
    "MediaSession",
    "Reply",
    "RtspConversation",
    "SessionState",
    "StreamResolver",
    "StreamSpec",
]

PUBLIC = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER"
_TRACK_SUFFIX = re.compile(r"/?trackID=\d+$")
_INTERLEAVED = re.compile(r"interleaved=(\d{1,3})(?:-(\d{1,3}))?")


@dataclass(frozen=True, kw_only=True, slots=True)
class StreamSpec:
    """What a path serves: a clip, looped forever (live) or for `duration` seconds.

    A recording also has an `origin`, the wall-clock time of its first frame:
    PLAY may then seek it by `Range: clock=<start>-[<end>]`, as ONVIF replay does.
    `ignores_clock_end` makes a faulty device: it answers the clock range it was
    asked for but plays on to the recording's end.
    """

    clip: H264Clip
    duration: float | None = None
    origin: datetime | None = None
    ignores_clock_end: bool = False


StreamResolver = Callable[[str, Mapping[str, str]], StreamSpec | None]


class SessionState(enum.Enum):
    READY = "ready"
    PLAYING = "playing"


class MediaAction(enum.Enum):
    NONE = "none"
    PLAY = "play"  # start (or resume) pacing the session's media
    PAUSE = "pause"
    STOP = "stop"  # the session is gone


_KEEP = {"GET_PARAMETER", "SET_PARAMETER"}
TRANSITIONS: Mapping[tuple[SessionState, str], tuple[SessionState | None, MediaAction]] = {
    (SessionState.READY, "PLAY"): (SessionState.PLAYING, MediaAction.PLAY),
    (SessionState.READY, "PAUSE"): (SessionState.READY, MediaAction.NONE),
    (SessionState.READY, "TEARDOWN"): (None, MediaAction.STOP),
    (SessionState.PLAYING, "PLAY"): (SessionState.PLAYING, MediaAction.NONE),
    (SessionState.PLAYING, "PAUSE"): (SessionState.READY, MediaAction.PAUSE),
    (SessionState.PLAYING, "TEARDOWN"): (None, MediaAction.STOP),
    **{(state, method): (state, MediaAction.NONE) for state in SessionState for method in _KEEP},
}


@dataclass(slots=True)
class MediaSession:
    """One SETUP'd stream: where it is in the clip and its RTP numbering."""

    session_id: str
    spec: StreamSpec
    setup_uri: str
    channel: int
    packetizer: H264Packetizer
    timestamp_base: int
    state: SessionState = SessionState.READY
    frame_index: int = 0
    first_frame: int = 0  # where the last seek put the stream
    end_frame: int | None = None  # a clock range's end; None: the stream's own end
    clock_end: datetime | None = None  # set by a clock range: answer in clock times
    frames_sent: int = 0

    @property
    def ticks_per_frame(self) -> int:
        return CLOCK_RATE // self.spec.clip.fps

    @property
    def frame_limit(self) -> int | None:
        """The frame index the stream ends before (None: live, it never ends)."""
        if self.spec.duration is None:
            return None
        last = int(self.spec.duration * self.spec.clip.fps)
        return last if self.end_frame is None else min(self.end_frame, last)

    def timestamp(self, frame_index: int | None = None) -> int:
        index = self.frame_index if frame_index is None else frame_index
        return (self.timestamp_base + index * self.ticks_per_frame) & 0xFFFFFFFF


@dataclass(frozen=True, kw_only=True, slots=True)
class Reply:
    response: bytes
    action: MediaAction = MediaAction.NONE
    session: MediaSession | None = None
    close: bool = False


@dataclass(kw_only=True)
class RtspConversation:
    """Answers the requests of one connection; holds its (at most one) media session."""

    resolver: StreamResolver
    auth: DigestAuthenticator | None
    local_address: str = "127.0.0.1"
    session_timeout: int = 60
    randbits: Callable[[int], int] = secrets.randbits
    sessions: dict[str, MediaSession] = field(default_factory=dict)

    def bad_request(self) -> Reply:
        return Reply(
            response=format_response(400, cseq=None, headers={"Connection": "close"}), close=True
        )

    def handle(self, request: RtspRequest) -> Reply:
        cseq = request.cseq
        if request.version != "RTSP/1.0":
            return Reply(response=format_response(505, cseq=cseq), close=True)
        if request.method == "OPTIONS":
            return Reply(response=format_response(200, cseq=cseq, headers={"Public": PUBLIC}))
        if self.auth is not None:
            result = self.auth.verify(
                request.method, request.uri, request.headers.get("authorization")
            )
            if result is not AuthResult.OK:
                challenge = self.auth.challenge(stale=result is AuthResult.STALE)
                return Reply(
                    response=format_response(
                        401, cseq=cseq, headers={"WWW-Authenticate": challenge}
                    )
                )
        if request.method == "DESCRIBE":
            return self._describe(request)
        if request.method == "SETUP":
            return self._setup(request)
        if request.method in ("PLAY", "PAUSE", "TEARDOWN") or request.method in _KEEP:
            return self._in_session(request)
        return Reply(response=format_response(501, cseq=cseq, headers={"Public": PUBLIC}))

    # -- requests without a session -----------------------------------------------------------

    def _resolve(self, uri: str) -> StreamSpec | None:
        # Clients build SETUP URLs as <Content-Base>trackID=0, which lands after
        # the query when the base has one (playback URLs); strip it wherever it is.
        try:
            parts = urlsplit(_TRACK_SUFFIX.sub("", uri))
        except ValueError:  # e.g. an unterminated IPv6 literal
            return None
        path = parts.path.rstrip("/") or "/"
        query = dict(parse_qsl(_TRACK_SUFFIX.sub("", parts.query).rstrip("/")))
        return self.resolver(path, query)

    def _describe(self, request: RtspRequest) -> Reply:
        spec = self._resolve(request.uri)
        if spec is None:
            return Reply(response=format_response(404, cseq=request.cseq))
        base = request.uri if request.uri.endswith("/") else request.uri + "/"
        sdp = describe_sdp(spec, self.local_address, session_id=self.randbits(31))
        return Reply(
            response=format_response(
                200,
                cseq=request.cseq,
                headers={"Content-Type": "application/sdp", "Content-Base": base},
                body=sdp.encode("ascii"),
            )
        )

    def _setup(self, request: RtspRequest) -> Reply:
        cseq = request.cseq
        spec = self._resolve(request.uri)
        if spec is None:
            return Reply(response=format_response(404, cseq=cseq))
        transport = request.headers.get("transport", "")
        if "RTP/AVP/TCP" not in transport.upper():
            return Reply(response=format_response(461, cseq=cseq))  # TCP interleaved only
        match = _INTERLEAVED.search(transport)
        channel = int(match.group(1)) if match else 0
        if channel > 254 or channel % 2:
            return Reply(response=format_response(461, cseq=cseq))
        if "session" in request.headers or self.sessions:
            return Reply(response=format_response(459, cseq=cseq))  # one track, one session
        packetizer = H264Packetizer(ssrc=self.randbits(32), sequence=self.randbits(16))
        session = MediaSession(
            session_id=f"{self.randbits(64):016X}",
            spec=spec,
            setup_uri=request.uri,
            channel=channel,
            packetizer=packetizer,
            timestamp_base=self.randbits(32),
        )
        self.sessions[session.session_id] = session
        reply_transport = (
            f"RTP/AVP/TCP;unicast;interleaved={channel}-{channel + 1};"
            f'ssrc={packetizer.ssrc:08X};mode="PLAY"'
        )
        headers = {
            "Transport": reply_transport,
            "Session": f"{session.session_id};timeout={self.session_timeout}",
        }
        return Reply(response=format_response(200, cseq=cseq, headers=headers))

    # -- requests within a session ------------------------------------------------------------

    def _in_session(self, request: RtspRequest) -> Reply:
        cseq = request.cseq
        session_id = request.headers.get("session", "").split(";")[0].strip()
        if not session_id and request.method in _KEEP:
            return Reply(response=format_response(200, cseq=cseq))  # connection keep-alive
        session = self.sessions.get(session_id)
        if session is None:
            return Reply(response=format_response(454, cseq=cseq))
        step = TRANSITIONS.get((session.state, request.method))
        if step is None:
            return Reply(response=format_response(455, cseq=cseq))
        next_state, action = step
        headers = {"Session": session.session_id}
        seeks = request.method == "PLAY" and session.state is SessionState.READY
        if seeks and not _seek(session, request.headers.get("range", "")):
            return Reply(response=format_response(457, cseq=cseq, headers=headers))
        if request.method == "PLAY":
            headers["Range"] = _served_range(session)
            headers["RTP-Info"] = (
                f"url={session.setup_uri};seq={session.packetizer.sequence};"
                f"rtptime={session.timestamp()}"
            )
        if next_state is None:
            del self.sessions[session.session_id]
        else:
            session.state = next_state
        return Reply(
            response=format_response(200, cseq=cseq, headers=headers),
            action=action,
            session=session,
        )


_NPT = re.compile(r"^\s*npt\s*=\s*(\d{1,7}(?:\.\d{1,6})?)\s*-")
_CLOCK_TIME = r"(\d{8}T\d{6})(?:\.(\d{1,9}))?Z"
_CLOCK = re.compile(rf"^\s*clock\s*=\s*{_CLOCK_TIME}\s*-\s*(?:{_CLOCK_TIME})?\s*$", re.IGNORECASE)
_CLOCK_UNIT = re.compile(r"^\s*clock\s*=", re.IGNORECASE)
_MICROS = timedelta(microseconds=1)


def _seek(session: MediaSession, range_header: str) -> bool:
    """Honour a PLAY's Range on a finite (playback) stream before it plays; False: 457.

    `npt=<start>-` seeks from the start of the stream.  `clock=<start>-[<end>]`
    seeks a recording (a stream with an origin) by wall-clock time and ends at
    <end>, as an ONVIF replay server does; a clock range that is malformed or
    does not start inside the recording is refused.  Live streams have no
    timeline to seek in, and other units (smpte=, clock= without an origin)
    are ignored: the stream resumes where it was, as RFC 2326 allows.
    """
    spec = session.spec
    if spec.duration is None:
        return True
    fps = spec.clip.fps
    last = int(spec.duration * fps)
    if _CLOCK_UNIT.match(range_header) and spec.origin is not None:
        clock = _clock_range(range_header)
        if clock is None:
            return False
        start, end = clock
        recording_end = spec.origin + timedelta(seconds=spec.duration)
        end = recording_end if end is None else min(end, recording_end)
        first, limit = _frame_at(start, spec.origin, fps), _frame_at(end, spec.origin, fps)
        if not 0 <= first < limit:
            return False
        if spec.ignores_clock_end:
            limit = last
        session.frame_index = session.first_frame = first
        session.end_frame, session.clock_end = limit, end
        return True
    match = _NPT.match(range_header)
    if match is not None:
        session.frame_index = max(0, min(last, int(float(match.group(1)) * fps)))
        session.first_frame = session.frame_index
        session.end_frame = session.clock_end = None
    return True


def _clock_range(range_header: str) -> tuple[datetime, datetime | None] | None:
    """(start, end) of a `clock=` range (end None: open), or None if it is malformed."""
    match = _CLOCK.match(range_header[:128])
    if match is None:
        return None
    try:
        start = _parse_clock(match.group(1), match.group(2))
        end = _parse_clock(match.group(3), match.group(4)) if match.group(3) else None
    except (ValueError, OverflowError):  # e.g. month 13
        return None
    return start, end


def _frame_at(moment: datetime, origin: datetime, fps: int) -> int:
    """The first frame at or after `moment`, in whole microseconds (no float drift)."""
    return -(-((moment - origin) // _MICROS) * fps // 1_000_000)


def _parse_clock(whole: str, fraction: str | None) -> datetime:
    moment = datetime.strptime(whole, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    return moment + timedelta(microseconds=int((fraction or "0")[:6].ljust(6, "0")))


def _format_clock(moment: datetime) -> str:
    text = moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    millis = moment.microsecond // 1000
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


def _served_range(session: MediaSession) -> str:
    """The Range a PLAY answer carries: where the stream plays from, to its end."""
    spec, fps = session.spec, session.spec.clip.fps
    if session.clock_end is not None and spec.origin is not None:
        start = spec.origin + timedelta(seconds=session.frame_index / fps)
        return f"clock={_format_clock(start)}-{_format_clock(session.clock_end)}"
    end = f"{spec.duration:.3f}" if spec.duration else ""
    return f"npt={session.frame_index / fps:.3f}-{end}"


def describe_sdp(spec: StreamSpec, address: str, *, session_id: int) -> str:
    """The SDP for one H.264 track (RFC 6184 §8.2.1 fmtp with the parameter sets)."""
    clip = spec.clip
    family = "IP6" if ":" in address else "IP4"
    span = f"npt=0-{spec.duration:.3f}" if spec.duration else "npt=0-"
    lines = [
        "v=0",
        f"o=- {session_id} 1 IN {family} {address}",
        "s=nvrshare simulated stream",
        f"c=IN {family} {address}",
        "t=0 0",
        "a=control:*",
        f"a=range:{span}",
        f"m=video 0 RTP/AVP {PAYLOAD_TYPE}",
        f"a=rtpmap:{PAYLOAD_TYPE} H264/{CLOCK_RATE}",
        (
            f"a=fmtp:{PAYLOAD_TYPE} packetization-mode=1;profile-level-id={clip.profile_level_id};"
            f"sprop-parameter-sets={clip.sprop_parameter_sets}"
        ),
        f"a=framerate:{clip.fps}",
        f"a=x-dimensions:{clip.width},{clip.height}",
        "a=control:trackID=0",
    ]
    return "\r\n".join(lines) + "\r\n"
