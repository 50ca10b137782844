"""`SessionHandler`: the agent's answer to session offers and PTZ commands from the relay.

Theory of operation.  The control channel hands every `SessionOffer` and
`PtzCommand` here (the `DownlinkHandler` hook).  For an offer:

1. `Authorizer.admit` decides on the device's own terms (pinned keys, synced
   grant set, replays, token allowance); session counts are bounded;
2. the recorder side is prepared (stream URL from the shim, talk channel
   opened, alarm feed) so a broken recorder is refused before the relay is
   bothered;
3. the relay's data port is dialled and the one-time secret proven;
4. the session is served in its own task and kept in a registry.

A refusal at any step goes back as `SessionRefuse` on `up/session`.  Every
new grant set (and a periodic tick, for validity periods running out)
re-checks the live sessions; those no longer allowed are cancelled and
reported with `SessionClose(revoked | service_disabled)`.

Use it as `async with SessionHandler(...) as handler:` and register
`handler.on_grants_changed` with `GrantStore.on_change`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Protocol, Self

from nvrshare.agent.grants import GrantStore
from nvrshare.agent.sessions.authorize import Admission, Authorizer, ReplayGuard
from nvrshare.agent.sessions.config import SessionConfig
from nvrshare.agent.sessions.errors import SessionRefused, UpstreamError
from nvrshare.agent.sessions.media import serve_alarms, serve_talk
from nvrshare.agent.sessions.ptz import execute_ptz
from nvrshare.agent.sessions.rtsp_gate import GatePolicy, live_path, playback_path
from nvrshare.agent.sessions.rtsp_proxy import serve_rtsp
from nvrshare.agent.sessions.tunnel import Dialer, Tunnel, dial_relay, tls_dialer
from nvrshare.firmware_shim import errors as shim_errors
from nvrshare.firmware_shim.interface import Recorder, TalkChannel
from nvrshare.firmware_shim.models import StreamKind, StreamSource
from nvrshare.protocol.codec import Message
from nvrshare.protocol.messages import (
    GrantSet,
    PtzCommand,
    PtzResult,
    SessionAccept,
    SessionClose,
    SessionKind,
    SessionOffer,
    SessionRefuse,
    SessionRequest,
)
from nvrshare.protocol.permissions import Permission
from nvrshare.protocol.reasons import CloseReason, RefusalReason
from nvrshare.protocol.topics import TopicKind

__all__ = ["LiveSession", "SessionConfig", "SessionHandler"]


class Uplink(Protocol):
    async def send(self, kind: TopicKind, message: Message) -> None: ...


@dataclass(eq=False, slots=True)
class LiveSession:
    """A session being served."""

    session_id: bytes
    request: SessionRequest
    admission: Admission
    uplink: Uplink
    task: asyncio.Task[None] | None = None
    close_reason: CloseReason | None = None


_Prepared = StreamSource | TalkChannel | None


def _shim_refusal(exc: shim_errors.ShimError) -> SessionRefused:
    if isinstance(exc, shim_errors.DeviceBusy):
        reason = RefusalReason.DEVICE_BUSY
    elif isinstance(
        exc, shim_errors.NotFound | shim_errors.NotSupported | shim_errors.ShimUsageError
    ):
        reason = RefusalReason.BAD_REQUEST
    elif isinstance(exc, shim_errors.DeviceUnreachable | shim_errors.DeviceTimeout):
        reason = RefusalReason.DEVICE_OFFLINE
    else:
        reason = RefusalReason.INTERNAL
    return SessionRefused(reason, f"recorder: {exc}")


class SessionHandler:
    """Implements the control channel's `DownlinkHandler`; see the module docstring."""

    def __init__(
        self,
        *,
        serial: str,
        grants: GrantStore,
        recorder: Recorder,
        config: SessionConfig | None = None,
        clock: Callable[[], float] = time.time,
        dialer: Dialer | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.config = config or SessionConfig()
        self._serial = serial
        self._recorder = recorder
        self._clock = clock
        tls = self.config.relay_tls
        self._dialer = dialer if dialer is not None or tls is None else tls_dialer(tls)
        self._log = logger or logging.getLogger(f"nvrshare.agent[{serial}].sessions")
        replay = ReplayGuard(
            max_entries=self.config.replay_entries,
            max_uses_per_token=self.config.max_uses_per_token,
        )
        self.authorizer = Authorizer(grants, serial, replay)
        self._sessions: dict[bytes, LiveSession] = {}
        self._pending: dict[bytes, bytes] = {}  # session id -> token id, while setting up
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._ticker = asyncio.create_task(self._tick(), name=f"agent[{self._serial}].sessions")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tasks = [t for t in (self._ticker, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def sessions(self) -> tuple[LiveSession, ...]:
        return tuple(self._sessions.values())

    # -- DownlinkHandler ---------------------------------------------------------------

    async def on_session_offer(self, offer: SessionOffer, uplink: Uplink) -> None:
        """Admit, prepare, dial and start serving one offer; refusals go back on uplink."""
        prepared: _Prepared = None
        tunnel: Tunnel | None = None
        try:
            admission = self._admit(offer)
            self._pending[offer.session_id] = admission.claims.token_id
            prepared = await self._prepare(offer.request)
            tunnel = await dial_relay(
                offer, time_limit=self.config.dial_timeout, **self._dial_kwargs()
            )
            # The grant set may have changed while we dialled: decide again, now.
            refusal = self.authorizer.still_allowed(admission, offer.request, self._clock())
            if refusal is not None:
                raise SessionRefused(refusal, "revoked while the session was being set up")
        except BaseException as exc:
            if tunnel is not None:
                await tunnel.close()
            if isinstance(prepared, TalkChannel):
                with contextlib.suppress(shim_errors.ShimError):
                    await asyncio.shield(prepared.close())
            if not isinstance(exc, SessionRefused):
                raise
            self._log.info("refused session %s: %s", offer.session_id.hex(), exc)
            refuse = SessionRefuse(session_id=offer.session_id, reason=RefusalReason(exc.reason))
            await self._report(uplink, refuse)
            return
        finally:
            self._pending.pop(offer.session_id, None)
        assert tunnel is not None
        session = LiveSession(offer.session_id, offer.request, admission, uplink)
        self._sessions[offer.session_id] = session
        task = asyncio.create_task(
            self._serve(session, tunnel, prepared),
            name=f"agent[{self._serial}].session[{offer.session_id.hex()[:8]}]",
        )
        session.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: self._reap(session, tunnel))
        await self._report(uplink, SessionAccept(session_id=offer.session_id))

    async def on_ptz_command(self, command: PtzCommand, uplink: Uplink) -> None:
        """Execute a PTZ command if the token and the synced grant both allow PTZ there."""
        try:
            self.authorizer.admit_command(
                token=command.token,
                channel=command.channel,
                permission=Permission.PTZ,
                request_id=command.request_id,
                now=self._clock(),
            )
            await execute_ptz(self._recorder, command)
            result = PtzResult(request_id=command.request_id, ok=True, reason="")
        except SessionRefused as exc:
            result = PtzResult(request_id=command.request_id, ok=False, reason=exc.reason)
        except shim_errors.ShimError as exc:
            refusal = _shim_refusal(exc)
            result = PtzResult(request_id=command.request_id, ok=False, reason=refusal.reason)
        self._log.info(
            "ptz %s on channel %d: %s",
            command.action.value,
            command.channel,
            "ok" if result.ok else result.reason,
        )
        await self._report(uplink, result)

    def on_grants_changed(self, grant_set: GrantSet | None = None) -> None:
        """Re-check every live session against the grant set now in force."""
        del grant_set  # the store is the source of truth; the argument is the listener shape
        self.recheck()

    def recheck(self) -> list[bytes]:
        """Cancel the sessions the current grants no longer allow; returns their ids."""
        now = self._clock()
        closed = []
        for session in list(self._sessions.values()):
            if session.close_reason is not None:
                continue
            refusal = self.authorizer.still_allowed(session.admission, session.request, now)
            if refusal is None:
                continue
            session.close_reason = (
                CloseReason.SERVICE_DISABLED
                if refusal is RefusalReason.SERVICE_DISABLED
                else CloseReason.REVOKED
            )
            self._log.info("closing session %s: %s", session.session_id.hex(), refusal.value)
            if session.task is not None:
                session.task.cancel()
            closed.append(session.session_id)
        return closed

    # -- internals ---------------------------------------------------------------------

    def _dial_kwargs(self) -> dict[str, Dialer]:
        return {"dialer": self._dialer} if self._dialer is not None else {}

    def _admit(self, offer: SessionOffer) -> Admission:
        now = self._clock()
        if offer.expires_at <= now:
            raise SessionRefused(RefusalReason.TIMEOUT, "offer expired")
        allowed = self.config.allowed_relays
        if allowed and (offer.relay_host, offer.relay_port) not in allowed:
            raise SessionRefused(RefusalReason.BAD_REQUEST, "offer names an unknown relay")
        if len(self._sessions) + len(self._pending) >= self.config.max_sessions:
            raise SessionRefused(RefusalReason.DEVICE_BUSY, "too many sessions")
        admission = self.authorizer.admit(
            token=offer.token, request=offer.request, session_id=offer.session_id, now=now
        )
        token_id = admission.claims.token_id
        same_token = sum(
            1 for s in self._sessions.values() if s.admission.claims.token_id == token_id
        ) + sum(1 for pending in self._pending.values() if pending == token_id)
        if same_token >= self.config.max_sessions_per_token:
            raise SessionRefused(RefusalReason.DEVICE_BUSY, "too many sessions on one token")
        return admission

    async def _prepare(self, request: SessionRequest) -> _Prepared:
        recorder = self._recorder
        try:
            if request.kind in {SessionKind.LIVE_MAIN, SessionKind.LIVE_SUB}:
                kind = StreamKind.SUB if request.kind is SessionKind.LIVE_SUB else StreamKind.MAIN
                return await recorder.live_source(request.channel, kind)
            if request.kind is SessionKind.PLAYBACK:
                window = request.playback_window
                assert window is not None
                return await recorder.playback_source(
                    request.channel,
                    datetime.fromtimestamp(window.start, UTC),
                    datetime.fromtimestamp(window.end, UTC),
                )
            if request.kind is SessionKind.TALK:
                return await recorder.open_talk(request.channel)
            return None  # ALARM: the feed is opened when serving starts
        except shim_errors.ShimError as exc:
            raise _shim_refusal(exc) from exc

    async def _serve(self, session: LiveSession, tunnel: Tunnel, prepared: _Prepared) -> None:
        log = self._log.getChild(session.session_id.hex()[:8])
        request = session.request
        outcome = CloseReason.NORMAL
        try:
            if isinstance(prepared, StreamSource):
                policy = GatePolicy(
                    channel=request.channel,
                    public_path=(
                        playback_path(request.channel)
                        if request.kind is SessionKind.PLAYBACK
                        else live_path(request.channel, sub=request.kind is SessionKind.LIVE_SUB)
                    ),
                    playback_window=request.playback_window,
                    seeks_by_clock=prepared.seeks_by_clock,
                )
                why = await serve_rtsp(
                    tunnel.reader,
                    tunnel.writer,
                    policy,
                    prepared,
                    initial=tunnel.initial,
                    config=self.config.proxy,
                    logger=log,
                )
            elif isinstance(prepared, TalkChannel):
                why = await serve_talk(tunnel, prepared, logger=log)
            else:
                why = await serve_alarms(
                    tunnel,
                    self._recorder.alarm_events(),
                    serial=self._serial,
                    allowed=lambda: self.authorizer.alarm_channels(
                        session.admission, self._clock()
                    ),
                    logger=log,
                )
            log.info("session ended: %s", why)
        except (UpstreamError, shim_errors.ShimError) as exc:
            log.warning("session failed: %s", exc)
            outcome = CloseReason.ERROR
        except asyncio.CancelledError:
            outcome = session.close_reason or CloseReason.NORMAL
            raise
        finally:
            self._sessions.pop(session.session_id, None)
            await tunnel.close()
            await self._report(
                session.uplink, SessionClose(session_id=session.session_id, reason=outcome)
            )

    def _reap(self, session: LiveSession, tunnel: Tunnel) -> None:
        # A task cancelled before its first step never runs `_serve`, so its `finally`
        # never closes the tunnel (revocation or shutdown right after the accept).
        # Closing is idempotent; after a normal end this does nothing.
        self._sessions.pop(session.session_id, None)
        tunnel.writer.close()

    async def _report(self, uplink: Uplink, message: Message) -> None:
        # The relay learns outcomes best-effort: a broken uplink must not break sessions.
        try:
            async with asyncio.timeout(self.config.report_timeout):
                await uplink.send(TopicKind.UP_SESSION, message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._log.debug("could not report %s: %r", type(message).__name__, exc)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.config.recheck_interval)
            self.recheck()
