"""The gate's conversation: app ⇄ gate ⇄ recorder, as a sans-IO state machine.

Theory of operation: the app (through the tunnel) and the recorder each feed
their bytes in (`client_data`, `upstream_data`; b"" = EOF) and the adapter
writes out what `data_for_client` / `data_for_upstream` return.  Requests from
the app are taken one at a time (RTSP clients do not pipeline in practice;
a small bounded queue absorbs those that do): each one goes through
`decide_request`; a refusal is answered locally, a forward is renumbered with
the gate's own CSeq (the gate inserts requests of its own when it answers an
auth challenge, so the two sides' numbering differs), authenticated, and sent.
The recorder's answer is rewritten (`rewrite_response`) and given the app's
CSeq back.  `$`-interleaved frames pass straight through from the recorder;
from the app only on the channels a SETUP answer assigned (RTCP receiver
reports), anything else is dropped.  Requests the recorder sends to the app
(rare) are answered by the gate and never reach the app.

A replay bounded only by `Range: clock=A-B` (ONVIF replay, `policy.clock_window`)
is also held to it here: the exchange counts the media time of the video the
recorder sends (`rtp_clock.ReplayBudget`, from RTP timestamps at the SDP's
clock rates) and closes once it runs past B - A by more than `replay_slack`, so
a recorder that ignores the range's end cannot stream the rest of its archive.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from dataclasses import dataclass

from nvrshare.agent.sessions.errors import RtspProtocolError, UpstreamError
from nvrshare.agent.sessions.rtp_clock import (
    DEFAULT_VIDEO_RATE,
    ReplayBudget,
    SdpTrack,
    clock_range_seconds,
    parse_sdp_tracks,
    track_for_setup,
)
from nvrshare.agent.sessions.rtsp_auth import UpstreamAuth
from nvrshare.agent.sessions.rtsp_gate import (
    MAX_KEEPALIVE_BODY,
    Forward,
    GatePolicy,
    decide_request,
)
from nvrshare.agent.sessions.rtsp_message import (
    NEED_DATA,
    PEER_CLOSED,
    InterleavedFrame,
    ReaderLimits,
    RtspReader,
    RtspRequest,
    RtspResponse,
)
from nvrshare.agent.sessions.rtsp_rewrite import UrlMapper, rewrite_response

__all__ = ["REPLAY_OVERRUN", "REPLAY_SLACK", "GateExchange"]

MAX_QUEUED_REQUESTS = 8
# Media time a clock-bounded replay may run past its range: a replay starts at
# the keyframe before A, so an honest recorder sends up to about a GOP more.
REPLAY_SLACK = 5.0
REPLAY_OVERRUN = "the recorder played past the granted window"
# Seeking may replay parts of the window; one connection may send this many
# windows' worth of media in all (then the app opens a new session).
REPLAYS_PER_CONNECTION = 4
_CSEQ = re.compile(r"\d{1,9}")
_INTERLEAVED = re.compile(r"interleaved=(\d{1,3})(?:-(\d{1,3}))?", re.IGNORECASE)


@dataclass(slots=True)
class _InFlight:
    client_cseq: str
    request: RtspRequest
    upstream_cseq: int
    retried: bool = False


_ENDS_A_PAUSE = frozenset({"PLAY", "SETUP", "TEARDOWN"})


def _session_id(message: RtspRequest | RtspResponse) -> str | None:
    value = message.header("Session")
    if value is None:
        return None
    return value.partition(";")[0].strip() or None


class GateExchange:
    """One gated RTSP connection; see the module docstring."""

    def __init__(
        self,
        policy: GatePolicy,
        *,
        upstream_url: str,
        username: str = "",
        password: str = "",
        logger: logging.Logger | None = None,
        replay_slack: float = REPLAY_SLACK,
    ) -> None:
        self.policy = policy
        self.mapper = UrlMapper(upstream_url=upstream_url, public_path=policy.public_path)
        self._auth = UpstreamAuth(username, password)
        self._log = logger or logging.getLogger(__name__)
        self._client = RtspReader(ReaderLimits(max_body=MAX_KEEPALIVE_BODY))
        self._upstream = RtspReader()
        self._to_client = bytearray()
        self._to_upstream = bytearray()
        self._queue: deque[RtspRequest] = deque()
        self._in_flight: _InFlight | None = None
        self._next_cseq = 1
        self._channels: set[int] = set()
        self.closed = False
        self.close_reason = ""
        self.playing = False
        # The recorder session that a PAUSE stopped after it PLAYed within bounds: a
        # PLAY without Range on it resumes there (RFC 2326 §10.5), so the gate must
        # not send it back to the window's start. Anything else gets the window.
        self._paused_session: str | None = None
        # Only replays bounded by a clock range are metered (see the module docstring),
        # on the one recorder session the first accepted SETUP opened.
        window = policy.clock_window
        self._budget = (
            None
            if window is None
            else ReplayBudget(
                replay_slack, total_allowance=REPLAYS_PER_CONNECTION * (window.end - window.start)
            )
        )
        self._replay_session: str | None = None
        self._sdp: list[SdpTrack] = []

    # -- input -------------------------------------------------------------------------

    def client_data(self, data: bytes) -> None:
        """Bytes from the app side; b"" when it closed."""
        if self.closed:
            return
        try:
            self._client.receive_data(data)
            self._drain_client()
        except RtspProtocolError as exc:
            self._close(f"app protocol error: {exc}")

    def upstream_data(self, data: bytes) -> None:
        """Bytes from the recorder; b"" when it closed."""
        if self.closed:
            return
        try:
            self._upstream.receive_data(data)
            self._drain_upstream()
        except RtspProtocolError as exc:
            self._close(f"recorder protocol error: {exc}")
        except UpstreamError as exc:
            self._close(f"recorder: {exc}")

    # -- output ------------------------------------------------------------------------

    def data_for_client(self) -> bytes:
        data = bytes(self._to_client)
        self._to_client.clear()
        return data

    def data_for_upstream(self) -> bytes:
        data = bytes(self._to_upstream)
        self._to_upstream.clear()
        return data

    # -- internals ---------------------------------------------------------------------

    def _close(self, reason: str) -> None:
        if not self.closed:
            self.closed = True
            self.close_reason = reason
            self._log.info("rtsp gate closing: %s", reason)

    def _drain_client(self) -> None:
        while not self.closed:
            event = self._client.next_event()
            if event is NEED_DATA:
                return
            if event is PEER_CLOSED:
                self._close("app closed")
                return
            if isinstance(event, InterleavedFrame):
                if event.channel in self._channels:
                    self._to_upstream += event.raw
            elif isinstance(event, RtspRequest):
                if len(self._queue) >= MAX_QUEUED_REQUESTS:
                    raise RtspProtocolError("too many outstanding requests")
                self._queue.append(event)
                self._pump()
            # Responses from the app answer nothing we asked: ignore them.

    def _pump(self) -> None:
        while self._in_flight is None and self._queue and not self.closed:
            request = self._queue.popleft()
            cseq = (request.header("CSeq") or "").strip()
            if not _CSEQ.fullmatch(cseq):
                self._answer_client("0", 400, "Bad Request")
                continue
            refusal = self._one_replay_session(request)
            if refusal is not None:
                self._log.info("rtsp gate refused %s: %s", request.method, refusal)
                self._answer_client(cseq, 455, "Method Not Valid in This State")
                continue
            resuming = (
                request.method == "PLAY"
                and self._paused_session is not None
                and _session_id(request) == self._paused_session
            )
            decision = decide_request(request, self.policy, self.mapper, resuming=resuming)
            if not isinstance(decision, Forward):
                self._log.info("rtsp gate refused %s: %s", request.method, decision.why)
                self._answer_client(cseq, decision.status, decision.reason, decision.headers)
                continue
            self._in_flight = _InFlight(cseq, decision.request, 0)
            self._send_upstream()

    def _one_replay_session(self, request: RtspRequest) -> str | None:
        """Why a metered replay refuses `request`, or None.

        The budget meters one recorder session on this connection: a second
        session, or a SETUP once playing (a fresh track, a re-SETUP of a metered
        one), would give the app a fresh allowance for the same recording.
        """
        if self._budget is None:
            return None
        session = _session_id(request)
        if self._replay_session is not None and session not in (None, self._replay_session):
            return "one recorder session per replay"
        if request.method == "SETUP" and (self.playing or (
            self._replay_session is not None and session is None
        )):  # fmt: skip
            return "no new tracks or sessions once a replay is set up and playing"
        return None

    def _send_upstream(self) -> None:
        assert self._in_flight is not None
        request = self._in_flight.request
        self._in_flight.upstream_cseq = self._next_cseq
        self._next_cseq += 1
        headers = [(k, v) for k, v in request.headers if k.lower() != "cseq"]
        headers.insert(0, ("CSeq", str(self._in_flight.upstream_cseq)))
        authorization = self._auth.authorization(request.method, request.uri)
        if authorization is not None:
            headers.append(("Authorization", authorization))
        self._to_upstream += request.with_headers(tuple(headers)).to_bytes()

    def _answer_client(
        self, cseq: str, status: int, reason: str, extra: tuple[tuple[str, str], ...] = ()
    ) -> None:
        response = RtspResponse(status=status, reason=reason, headers=(("CSeq", cseq), *extra))
        self._to_client += response.to_bytes()

    def _drain_upstream(self) -> None:
        while not self.closed:
            event = self._upstream.next_event()
            if event is NEED_DATA:
                return
            if event is PEER_CLOSED:
                self._close("recorder closed")
                return
            if isinstance(event, InterleavedFrame):
                if self._budget is not None and event.channel not in self._channels:
                    continue  # a metered replay passes only what a SETUP assigned
                if self._budget is not None and not self._budget.frame(event.raw):
                    self._log.warning(
                        "rtsp gate: %.1f s of media for a %.1f s clock range",
                        self._budget.media_time,
                        self._budget.allowance or 0.0,
                    )
                    self._close(REPLAY_OVERRUN)
                    return
                self._to_client += event.raw
            elif isinstance(event, RtspRequest):
                self._answer_recorder(event)
            elif isinstance(event, RtspResponse):
                self._on_response(event)

    def _answer_recorder(self, request: RtspRequest) -> None:
        cseq = (request.header("CSeq") or "0").strip()
        cseq = cseq if _CSEQ.fullmatch(cseq) else "0"
        if request.method in {"GET_PARAMETER", "OPTIONS"}:
            response = RtspResponse(status=200, reason="OK", headers=(("CSeq", cseq),))
        else:
            response = RtspResponse(status=501, reason="Not Implemented", headers=(("CSeq", cseq),))
        self._to_upstream += response.to_bytes()

    def _on_response(self, response: RtspResponse) -> None:
        in_flight = self._in_flight
        if in_flight is None or (response.header("CSeq") or "").strip() != str(
            in_flight.upstream_cseq
        ):
            self._log.debug("rtsp gate dropped an unsolicited recorder response")
            return
        if response.status == 401 and not in_flight.retried:
            in_flight.retried = True
            if self._auth.challenge(response.header_values("WWW-Authenticate")):
                self._send_upstream()
                return
        self._in_flight = None
        if response.status == 401:
            self._log.warning("recorder refused the shim's credentials")
            self._answer_client(in_flight.client_cseq, 502, "Bad Gateway")
        else:
            rewritten = rewrite_response(response, self.mapper)
            headers = [(k, v) for k, v in rewritten.headers if k.lower() != "cseq"]
            headers.insert(0, ("CSeq", in_flight.client_cseq))
            if response.status == 200:
                self._meter(in_flight.request, response)
            if in_flight.request.method == "PLAY" and response.status == 200:
                self.playing = True
            self._note_pause(in_flight.request, response.status)
            self._to_client += RtspResponse(
                status=rewritten.status,
                reason=rewritten.reason,
                headers=tuple(headers),
                body=rewritten.body,
            ).to_bytes()
        self._pump()

    def _note_pause(self, request: RtspRequest, status: int) -> None:
        # Only an accepted PAUSE of a session that played opens a resume; an answered
        # PLAY, SETUP or TEARDOWN closes it (keep-alives while paused leave it be).
        session = _session_id(request)
        if request.method == "PAUSE":
            if status == 200 and self.playing and session is not None:
                self._paused_session = session
        elif request.method in _ENDS_A_PAUSE:
            self._paused_session = None

    def _meter(self, request: RtspRequest, response: RtspResponse) -> None:
        """Learn channels, and for a metered replay its tracks' clocks and PLAYed ranges."""
        method, budget = request.method, self._budget
        if method == "SETUP":
            first = self._learn_channels(response.header("Transport") or "")
            if budget is not None:
                self._replay_session = self._replay_session or _session_id(response)
            if budget is not None and first is not None:
                track = track_for_setup(self._sdp, request.uri)
                if track is None or track.media == "video":
                    # Unknown tracks count at the video clock: audio at a lower rate is
                    # then undercounted, never cut early.
                    rates = set(track.rates.values()) if track is not None else set()
                    rate = rates.pop() if len(rates) == 1 else DEFAULT_VIDEO_RATE
                    budget.watch(first, rate)
        if budget is None:
            return
        if method == "DESCRIBE" and (response.header("Content-Type") or "").lower().startswith(
            "application/sdp"
        ):
            self._sdp = parse_sdp_tracks(response.body)
        elif method == "PLAY":
            forwarded = request.header("Range")
            if forwarded is None and budget.allowance is not None:
                budget.resume()  # after PAUSE: the range's budget carries on
                return
            seconds = clock_range_seconds(forwarded or "")
            window = self.policy.clock_window
            assert window is not None  # a budget exists only for clock-bounded replay
            budget.start(seconds if seconds is not None else float(window.end - window.start))

    def _learn_channels(self, transport: str) -> int | None:
        """Note the interleaved channels a SETUP answer assigned; the first of them."""
        match = _INTERLEAVED.search(transport)
        if match is None:
            return None
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) else first
        if first % 2 == 0 and last in (first, first + 1) and last <= 255:
            self._channels.update(range(first, last + 1))
            return first
        return None
