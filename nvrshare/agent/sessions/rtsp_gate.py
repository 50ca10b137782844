"""The RTSP gate's rules: what an app may ask the recorder, and what it may learn back.

Theory of operation: one session = one granted channel and one kind (live main,
live sub, or a playback window).  The app addresses the stream by a *public*
path (`/live/<ch>/main`, `/live/<ch>/sub`, `/playback/<ch>`) on whatever host it
dialled; the gate maps that path, and the track controls below it, onto the
recorder's own URL from the firmware shim, and maps every URL in the answers
back (Content-Base, Content-Location, RTP-Info, SDP `a=control`), so the app
never learns the recorder's address or credentials.  Everything is deny by
default: a whitelist of methods and headers, TCP-interleaved transport only
(a UDP `destination` would let an app aim the recorder's packets anywhere),
no query strings, no `..`, and Range checked against the grant: live grants
take no recording ranges; playback ranges must start inside the granted
window and are always forwarded with an end no later than the window's, and
Scale/Speed must be a forward rate (0 < rate <= MAX_RATE).

`decide_request` is a pure function: request in, `Forward` or `Refuse` out;
the answers are rewritten by `rtsp_rewrite`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from nvrshare.agent.sessions.rtsp_message import Headers, RtspRequest
from nvrshare.agent.sessions.rtsp_rewrite import SUFFIX, UrlMapper
from nvrshare.protocol.permissions import TimeWindow

__all__ = [
    "Forward",
    "GatePolicy",
    "Refuse",
    "decide_request",
    "live_path",
    "playback_path",
]

ALLOWED_METHODS = frozenset(
    {"OPTIONS", "DESCRIBE", "SETUP", "PLAY", "PAUSE", "TEARDOWN", "GET_PARAMETER"}
)
_REQUEST_HEADERS = frozenset(
    {"cseq", "session", "accept", "user-agent", "range", "transport", "content-type"}
)
_PLAYBACK_ONLY_HEADERS = frozenset({"scale", "speed"})
# Where ONVIF replay wants `Require: onvif-replay` (other methods may get 551 for it).
_REPLAY_REQUESTS = frozenset({"DESCRIBE", "SETUP", "PLAY"})
MAX_KEEPALIVE_BODY = 1024
MAX_RATE = 16.0
_SESSION = re.compile(r"[A-Za-z0-9$\-_.+]{1,128}(?:;timeout=\d{1,6})?")
_CLOCK = re.compile(r"(\d{8}T\d{6})(?:\.\d+)?Z")
_NUMBER = re.compile(r"\d{1,9}(?:\.\d{1,9})?")
_CHANNEL_PATH = re.compile(r"/(?:live|playback)/(\d{1,3})(?:/.*)?")


def live_path(channel: int, *, sub: bool = False) -> str:
    return f"/live/{channel}/{'sub' if sub else 'main'}"


def playback_path(channel: int) -> str:
    return f"/playback/{channel}"


@dataclass(frozen=True, kw_only=True, slots=True)
class GatePolicy:
    """What one session may reach: a channel, its public path, and for playback a window."""

    channel: int
    public_path: str
    playback_window: TimeWindow | None = None  # None: a live session
    # The recorder bounds a replay only by `Range: clock=` (ONVIF replay), not
    # by its playback URL: every PLAY then carries the window as clock times.
    seeks_by_clock: bool = False

    @property
    def is_playback(self) -> bool:
        return self.playback_window is not None

    @property
    def clock_window(self) -> TimeWindow | None:
        """The window to express as clock times, for recorders that seek only by clock."""
        return self.playback_window if self.seeks_by_clock else None


@dataclass(frozen=True, slots=True)
class Forward:
    """Send `request` (already rewritten for the recorder) upstream."""

    request: RtspRequest


@dataclass(frozen=True, slots=True)
class Refuse:
    """Answer the app directly with `status`; `why` is for the log, never the wire."""

    status: int
    reason: str
    why: str
    headers: Headers = ()


def _refuse(status: int, why: str, headers: Headers = ()) -> Refuse:
    reasons = {
        400: "Bad Request",
        403: "Forbidden",
        404: "Not Found",
        405: "Method Not Allowed",
        457: "Invalid Range",
        461: "Unsupported Transport",
    }
    return Refuse(status, reasons[status], why, headers)


def _map_uri(request: RtspRequest, policy: GatePolicy, mapper: UrlMapper) -> str | Refuse:
    if request.uri == "*":
        if request.method not in {"OPTIONS", "GET_PARAMETER"}:
            return _refuse(400, "'*' only for OPTIONS")
        return mapper.upstream_base
    try:
        parts = urlsplit(request.uri)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return _refuse(400, "unparseable request URI")
    if parts.scheme.lower() not in {"rtsp", "rtsps"} or not parts.hostname:
        return _refuse(400, "request URI must be absolute rtsp://")
    if parts.username is not None or parts.fragment or "%" in request.uri:
        return _refuse(400, "userinfo, fragments and escapes are not accepted")
    if parts.query:
        return _refuse(403, "query strings are not accepted (ranges go in the Range header)")
    path = parts.path
    if path == policy.public_path or path == policy.public_path + "/":
        suffix = path[len(policy.public_path) :]
    elif path.startswith(policy.public_path + "/"):
        suffix = path[len(policy.public_path) :]
        segments = suffix.strip("/").split("/")
        if not SUFFIX.fullmatch(suffix[1:]) or any(s in {".", ".."} for s in segments):
            return _refuse(404, "bad track path")
    else:
        other = _CHANNEL_PATH.fullmatch(path)
        if other is not None:
            return _refuse(403, f"path {path!r} is outside the granted stream")
        return _refuse(404, f"unknown path {path!r}")
    mapper.authority = parts.netloc
    return mapper.to_upstream(suffix)


def _parse_npt(value: str) -> float | None:
    if value == "now":
        return None
    if _NUMBER.fullmatch(value):
        return float(value)
    pieces = value.split(":")
    if len(pieces) == 3 and all(p.replace(".", "", 1).isdigit() for p in pieces):
        return int(pieces[0]) * 3600 + int(pieces[1]) * 60 + float(pieces[2])
    raise ValueError(value)


def _parse_clock(value: str) -> int:
    match = _CLOCK.fullmatch(value)
    if match is None:
        raise ValueError(value)
    return int(datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC).timestamp())


def _format_clock(moment: float) -> str:
    # Truncated to the millisecond: never later than `moment`, so an end
    # capped at the window's end stays inside it.
    millis = int(moment * 1000)
    seconds, fraction = divmod(millis, 1000)
    text = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y%m%dT%H%M%S")
    return f"{text}.{fraction:03d}Z" if fraction else f"{text}Z"


def _clock_range(start: float, end: float) -> str:
    return f"clock={_format_clock(start)}-{_format_clock(end)}"


def _bounded_range(value: str, policy: GatePolicy) -> str | Refuse:
    """The Range to forward for a PLAY, or why not.

    Live: only "from now" ranges, forwarded as sent.  Playback: whatever the
    app asked, the recorder gets a range with an end no later than the
    window's (an open `clock=<start>-` would let it play on past the grant).
    `clock=` stays absolute; npt counts from the window's start (the
    recorder's playback URL is built from the window) and stays npt, so
    recorders that only seek by npt keep seeking, with the window's length
    as its end.  For a recorder that seeks only by clock, npt becomes the
    clock range it stands for.
    """
    unit, sep, spec = value.strip().partition("=")
    start_text, dash, end_text = spec.partition("-")
    start_text, end_text = start_text.strip(), end_text.strip()
    if not sep or not dash or ";" in spec or "," in spec:
        return _refuse(457, "malformed Range")
    unit = unit.strip().lower()
    window = policy.playback_window
    try:
        if unit == "npt":
            start = _parse_npt(start_text)
            end = _parse_npt(end_text) if end_text else None
            if window is None:
                if start not in (None, 0.0) or end is not None:
                    return _refuse(457, "live sessions only play from now")
                return value
            duration = window.end - window.start
            if end is None:
                end = float(duration)
            if (start or 0.0) >= duration or end > duration or (start or 0.0) >= end:
                return _refuse(457, "npt range runs past the granted window")
            if policy.seeks_by_clock:
                return _clock_range(window.start + (start or 0.0), window.start + end)
            return f"npt={'now' if start is None else f'{start:.3f}'}-{end:.3f}"
        if unit == "clock":
            if window is None:
                return _refuse(457, "recording ranges need a playback grant")
            clock_start = _parse_clock(start_text)
            clock_end = _parse_clock(end_text) if end_text else window.end
            if not window.start <= clock_start < clock_end <= window.end:
                return _refuse(457, "clock range outside the granted window")
            return _clock_range(clock_start, clock_end)
    except ValueError:
        return _refuse(457, "malformed Range")
    return _refuse(457, f"range unit {unit!r} is not supported")


def _check_rate(name: str, value: str) -> Refuse | None:
    """Scale/Speed: a positive factor up to MAX_RATE.

    Negative means reverse play, which walks back out of the window's start
    while the end cap never triggers; huge factors are a load lever on the
    recorder.  Neither is served.
    """
    text = value.strip()
    if not _NUMBER.fullmatch(text.removeprefix("-")):
        return _refuse(400, f"malformed {name}: {text[:32]!r}")
    rate = float(text)
    if not 0 < rate <= MAX_RATE:
        return _refuse(403, f"{name} {rate} is not served (0 < rate <= {MAX_RATE})")
    return None


def _rewrite_transport(value: str) -> str | Refuse:
    for spec in value.split(",")[:8]:
        params = [p.strip() for p in spec.split(";")]
        if params[0].upper() != "RTP/AVP/TCP":
            continue
        interleaved = next((p for p in params if p.lower().startswith("interleaved=")), None)
        if any(
            p.lower().startswith("mode=") and p.lower() not in {"mode=play", 'mode="play"'}
            for p in params
        ):
            return _refuse(461, "only mode=play")
        rebuilt = "RTP/AVP/TCP;unicast"
        if interleaved is not None:
            if not re.fullmatch(r"interleaved=\d{1,3}(-\d{1,3})?", interleaved, re.IGNORECASE):
                return _refuse(400, "bad interleaved channels")
            numbers = [int(n) for n in interleaved.split("=")[1].split("-")]
            # RTP on an even channel, its RTCP on the next one (RFC 2326 10.12):
            # the only shape the gate can tell media from control by.
            if numbers[0] > 254 or numbers[0] % 2 or numbers[1:] not in ([], [numbers[0] + 1]):
                return _refuse(400, "bad interleaved channels")
            rebuilt += f";interleaved={interleaved.split('=')[1]}"
        return rebuilt
    return _refuse(461, "only RTP over the RTSP connection (TCP interleaved) is served")


def decide_request(
    request: RtspRequest, policy: GatePolicy, mapper: UrlMapper, *, resuming: bool = False
) -> Forward | Refuse:
    """Validate one app request and rewrite it for the recorder, or refuse it.

    The result never carries app-supplied credentials or unknown headers;
    CSeq is kept as the app sent it (the exchange renumbers it).  `resuming`:
    this PLAY is on a recorder session that already played within the window,
    so without a Range it resumes there rather than restarting the window.
    """
    if request.method not in ALLOWED_METHODS:
        return _refuse(
            405,
            f"method {request.method} is not served",
            (("Allow", ", ".join(sorted(ALLOWED_METHODS))),),
        )
    if request.body and (
        request.method != "GET_PARAMETER" or len(request.body) > MAX_KEEPALIVE_BODY
    ):
        return _refuse(400, "unexpected request body")
    uri = _map_uri(request, policy, mapper)
    if isinstance(uri, Refuse):
        return uri
    if sum(1 for name, _ in request.headers if name.lower() == "session") > 1:
        return _refuse(400, "more than one Session header")
    headers: list[tuple[str, str]] = []
    seen_range = False
    for name, raw in request.headers:
        lowered, value = name.lower(), raw
        if lowered == "session" and not _SESSION.fullmatch(value.strip()):
            return _refuse(400, "malformed Session header")
        if lowered == "range":
            if request.method != "PLAY":
                continue
            if seen_range:
                return _refuse(400, "more than one Range header")
            seen_range = True
            bounded = _bounded_range(value, policy)
            if isinstance(bounded, Refuse):
                return bounded
            value = bounded
        if lowered == "transport":
            transport = _rewrite_transport(value)
            if isinstance(transport, Refuse):
                return transport
            value = transport
        if lowered in _PLAYBACK_ONLY_HEADERS:
            if not policy.is_playback:
                continue
            refusal = _check_rate(name, value)
            if refusal is not None:
                return refusal
        elif lowered not in _REQUEST_HEADERS:
            continue
        headers.append((name, value))
    if request.method == "SETUP" and not any(k.lower() == "transport" for k, _ in headers):
        return _refuse(461, "SETUP needs a Transport header")
    clock_window = policy.clock_window
    if clock_window is not None:
        # Such a recorder plays its whole recording unless told the window.
        if request.method == "PLAY" and not seen_range and not resuming:
            headers.append(("Range", _clock_range(clock_window.start, clock_window.end)))
        if request.method in _REPLAY_REQUESTS:
            headers.append(("Require", "onvif-replay"))
    if request.header("CSeq") is None:
        return _refuse(400, "missing CSeq")
    return Forward(
        RtspRequest(method=request.method, uri=uri, headers=tuple(headers), body=request.body)
    )
