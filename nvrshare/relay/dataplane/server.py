"""The relay's data port: hellos in, paired and spliced sessions out.

Theory of operation.  Every accepted connection gets one task in the data
plane's TaskGroup.  It reads one hello within `hello_timeout`:

* `ClientHello` → `admit` (token, permission, share state, presence, limits);
  a refusal is answered with `HelloRefused` and the connection closes.  An
  admitted hello becomes a pending session (`PairingTable`), the device is
  sent a `SessionOffer` through the injected publisher, and the task waits at
  most `agent_timeout` for the agent.  Paired: both sides get `HelloAccepted`
  and the byte mover takes over both sockets until the session ends.
* `AgentHello` → `PairingTable.claim` checks the one-use proof and hands the
  socket to the waiting client task; this task is then done with it.
* anything else, or nothing in time → `HelloRefused` and close.

So a client always gets either a refusal or bytes, never a hang.  Live
sessions are indexed for `revoke`, which closes the matching ones at once;
each session also ends after `max_session_seconds` (and, if configured, when
the token that opened it expires).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator

from nvrshare.protocol.errors import ProtocolError
from nvrshare.protocol.handshake import AgentHello, ClientHello
from nvrshare.protocol.messages import SessionOffer
from nvrshare.protocol.reasons import RefusalReason
from nvrshare.protocol.signing import KeyRing
from nvrshare.protocol.tokens import Audience, TokenVerifier
from nvrshare.relay.dataplane.admission import (
    Admission,
    DevicePresence,
    GrantState,
    Refused,
    SessionSlots,
    admit,
)
from nvrshare.relay.dataplane.config import DataPlaneConfig
from nvrshare.relay.dataplane.connection import (
    Connection,
    SocketConnection,
    TlsConnection,
    accept_tls,
)
from nvrshare.relay.dataplane.hello import HelloChannel, HelloError, read_hello
from nvrshare.relay.dataplane.live import LiveSession, Revocation
from nvrshare.relay.dataplane.metrics import MetricsRegistry
from nvrshare.relay.dataplane.pairing import PairingTable, PendingSession
from nvrshare.relay.dataplane.relaying import CloseReason, RelaySession
from nvrshare.relay.dataplane.splice import HAVE_SPLICE, PipePool, start_relay
from nvrshare.relay.dataplane.streams import StreamRelaySession
from nvrshare.relay.dataplane.telemetry import DataPlaneMetrics

__all__ = ["DataPlane", "DataPlaneConfig", "LiveSession", "OfferPublisher"]

OfferPublisher = Callable[[SessionOffer], Awaitable[None]]
# Revocations remembered for sessions that were mid-admission when they happened;
# admission takes at most a few seconds, so this only has to cover a burst.
MAX_REMEMBERED_REVOCATIONS = 4096


class DataPlane:
    """The data port server; `async with DataPlane(...) as plane:` runs it.

    Collaborators are injected: `key_ring` holds the token-verifying public
    keys only; `grant_state` and `presence` answer for the control plane;
    `publish_offer` delivers a `SessionOffer` to the device (MQTT, QoS 1).
    """

    def __init__(
        self,
        config: DataPlaneConfig,
        *,
        key_ring: KeyRing,
        grant_state: GrantState,
        presence: DevicePresence,
        publish_offer: OfferPublisher,
        clock: Callable[[], float] = time.time,
        logger: logging.Logger | None = None,
    ) -> None:
        self.config = config
        self._verifier = TokenVerifier(key_ring, Audience.RELAY)
        self._grant_state = grant_state
        self._presence = presence
        self._publish_offer = publish_offer
        self._clock = clock
        self._log = logger or logging.getLogger("nvrshare.relay.dataplane")
        self._slots = SessionSlots(config.limits)
        self._pairing = PairingTable()
        self._live: dict[bytes, LiveSession] = {}
        self._revocations: collections.deque[Revocation] = collections.deque(
            maxlen=MAX_REMEMBERED_REVOCATIONS
        )
        self._handshakes = 0
        self._pool = PipePool(config.relay.pipe_size, config.relay.max_free_pipes)
        self._listener: socket.socket | None = None
        self._tasks: asyncio.TaskGroup | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._metrics = DataPlaneMetrics(self._live.values, lambda: len(self._pairing))
        self.port = 0

    @property
    def metrics(self) -> MetricsRegistry:
        return self._metrics.registry

    def refusal_count(self, reason: RefusalReason) -> int:
        return int(self._metrics.refusals.value(reason=reason.value))

    @property
    def live_sessions(self) -> list[LiveSession]:
        return list(self._live.values())

    # -- lifecycle ----------------------------------------------------------

    async def __aenter__(self) -> DataPlane:
        listener = socket.create_server(
            (self.config.host, self.config.port), backlog=self.config.backlog, reuse_port=False
        )
        listener.setblocking(False)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._tasks = asyncio.TaskGroup()
        await self._tasks.__aenter__()
        self._accept_task = self._tasks.create_task(self._accept_loop(), name="dataplane.accept")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._tasks is None or self._listener is None:
            return  # never entered, or already closed
        if self._accept_task is not None:
            self._accept_task.cancel()
        self._listener.close()
        for live in list(self._live.values()):
            live.relay.close(CloseReason.SHUTDOWN)
        for task in list(self._connections):
            task.cancel()
        tasks, self._tasks = self._tasks, None
        await tasks.__aexit__(None, None, None)
        self._pool.close()

    # -- revocation -----------------------------------------------------------

    def revoke(
        self,
        device_serial: str,
        account_id: str | None = None,
        token_ids: Iterable[bytes] = (),
    ) -> int:
        """Close the matching live (and pending) sessions now; returns how many.

        A session matches when it is on `device_serial` and, if given, belongs
        to `account_id` and, if given, uses one of `token_ids`.
        """
        revocation = Revocation(
            at=time.monotonic(),
            device_serial=device_serial,
            account_id=account_id,
            token_ids=frozenset(token_ids),
        )
        # Sessions still being admitted are not indexed yet: they check this log
        # once they are (see `_revoked_since`), so no revocation slips between.
        self._revocations.append(revocation)
        closed = 0
        for admission, close in self._sessions_with_closers():
            if revocation.matches(admission):
                close()
                closed += 1
        return closed

    def refuse_pending(self, serial: str, session_id: bytes, reason: RefusalReason) -> bool:
        """Fail the session still waiting for `serial`'s agent with the device's `reason`.

        Returns whether such a session was waiting.  Only the device the session
        was offered to can refuse it: a refusal naming another device's session
        is ignored, so one device cannot cut another's viewers.
        """
        if not isinstance(reason, RefusalReason):
            raise TypeError("reason must be a RefusalReason")
        pending = self._pairing.get(session_id)
        if pending is None or pending.admission.claims.device_serial != serial:
            return False
        if not pending.agent.done():
            pending.agent.set_exception(Refused(reason, "the device refused"))
        return True

    def _revoked_since(self, admission: Admission, since: float) -> bool:
        return any(
            revocation.at >= since and revocation.matches(admission)
            for revocation in reversed(self._revocations)
        )

    def _sessions_with_closers(self) -> Iterator[tuple[Admission, Callable[[], None]]]:
        for live in list(self._live.values()):
            yield live.admission, functools.partial(live.relay.close, CloseReason.REVOKED)
        for pending in self._pairing.snapshot():
            yield pending.admission, functools.partial(self._revoke_pending, pending)

    @staticmethod
    def _revoke_pending(pending: PendingSession) -> None:
        if not pending.agent.done():
            pending.agent.set_exception(Refused(RefusalReason.REVOKED, "share stopped"))

    # -- connections ----------------------------------------------------------

    async def _accept_loop(self) -> None:
        assert self._listener is not None
        assert self._tasks is not None
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, _ = await loop.sock_accept(self._listener)
            except OSError as exc:  # EMFILE and friends: back off instead of spinning
                self._log.warning("data port accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            if self._handshakes >= self.config.max_handshakes:
                sock.close()
                self._metrics.refusals.inc(reason="overload")
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._track(self._tasks.create_task(self._serve(sock), name="dataplane.conn"))

    async def _serve(self, sock: socket.socket) -> None:
        owned = True  # whether this task must close the connection when it ends
        connection: Connection = SocketConnection(sock)
        # Only the unauthenticated phase counts against max_handshakes; live sessions
        # are bounded by the session limits instead.
        self._handshakes += 1
        in_handshake = True
        try:
            if self.config.tls is not None:
                try:
                    async with asyncio.timeout(self.config.hello_timeout):
                        connection = await accept_tls(sock, self.config.tls)
                except (OSError, TimeoutError):
                    self._metrics.refusals.inc(reason="tls_failed")
                    owned = False  # asyncio closed it with its transport; the fd may be reused
                    return
            try:
                channel, hello = await read_hello(connection, within=self.config.hello_timeout)
            except HelloError as exc:
                if exc.answer:
                    await self._refuse(exc.channel, Refused(exc.reason, exc.message))
                else:
                    self._metrics.refusals.inc(reason="hangup")
                return
            self._handshakes -= 1
            in_handshake = False
            owned = False
            if isinstance(hello, ClientHello):
                await self._serve_client(channel, hello)
            else:
                self._pair_agent(channel, hello)
        except Exception:  # one connection's bug must not take the data port down
            self._log.exception("data port connection failed")
            connection.close()
        finally:
            if in_handshake:
                self._handshakes -= 1
            if owned:
                connection.close()

    async def _refuse(self, channel: HelloChannel, refusal: Refused) -> None:
        """Tell the peer why (best effort, bounded) and close its connection."""
        self._metrics.refusals.inc(reason=refusal.reason.value)
        message = refusal.message if refusal.message != refusal.reason.value else ""
        try:
            async with asyncio.timeout(1.0):
                await channel.refuse(refusal.reason, message)
        except (OSError, TimeoutError, ProtocolError):
            pass  # the peer is gone or not reading: closing is the answer
        finally:
            channel.connection.close()

    def _pair_agent(self, channel: HelloChannel, hello: AgentHello) -> None:
        """Hand the agent's connection to its waiting client task, or refuse it."""
        try:
            pending = self._pairing.claim(hello, now=asyncio.get_running_loop().time())
        except Refused as refusal:
            self._spawn_refusal(channel, refusal)
            return
        if pending.agent.done():  # the client gave up (or was revoked) a moment ago
            self._spawn_refusal(channel, Refused(RefusalReason.TIMEOUT, "client left"))
            return
        pending.agent.set_result(channel)

    def _spawn_refusal(self, channel: HelloChannel, refusal: Refused) -> None:
        assert self._tasks is not None
        task = self._tasks.create_task(self._refuse(channel, refusal), name="dataplane.refuse")
        self._track(task)

    def _track(self, task: asyncio.Task[None]) -> None:
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _serve_client(self, channel: HelloChannel, hello: ClientHello) -> None:
        started = asyncio.get_running_loop().time()
        admitting_since = time.monotonic()
        try:
            async with asyncio.timeout(self.config.hello_timeout):
                admission = await admit(
                    hello,
                    now=self._clock(),
                    verifier=self._verifier,
                    grant_state=self._grant_state,
                    presence=self._presence,
                    slots=self._slots,
                )
        except Refused as refusal:
            await self._refuse(channel, refusal)
            return
        except Exception:  # the injected control-plane interfaces failed: say so, don't hang
            self._log.exception("admission failed")
            await self._refuse(channel, Refused(RefusalReason.INTERNAL, "try again later"))
            return
        try:
            agent = await self._await_agent(channel, admission, admitting_since)
            if agent is not None:
                await self._relay(channel, agent, admission, started, admitting_since)
        finally:
            self._slots.release(admission.claims.account_id, admission.request)

    async def _await_agent(
        self, channel: HelloChannel, admission: Admission, admitting_since: float
    ) -> tuple[HelloChannel, bytes] | None:
        """Offer the session to the device and wait for its agent; None if refused."""
        loop = asyncio.get_running_loop()
        pending = self._pairing.create(admission, expires_at=loop.time() + self.config.offer_ttl)
        try:
            if self._revoked_since(admission, admitting_since):
                raise Refused(RefusalReason.REVOKED, "share stopped")
            offer = SessionOffer(
                session_id=pending.session_id,
                token=admission.token,
                request=admission.request,
                relay_host=self.config.advertised_host or self.config.host,
                relay_port=self.config.advertised_port or self.port,
                session_secret=pending.secret,
                expires_at=int(self._clock()) + self.config.offer_ttl,
            )
            try:
                async with asyncio.timeout(self.config.publish_timeout):
                    await self._publish_offer(offer)
            except Exception as exc:  # the publisher is foreign code: any failure is "offline"
                self._log.warning("session offer not delivered: %r", exc)
                raise Refused(RefusalReason.DEVICE_OFFLINE, "offer not delivered") from None
            try:
                async with asyncio.timeout(self.config.agent_timeout):
                    agent = await asyncio.shield(pending.agent)
            except TimeoutError:
                raise Refused(RefusalReason.TIMEOUT, "the device did not answer") from None
        except Refused as refusal:
            self._give_up(pending)
            await self._refuse(channel, refusal)
            return None
        except BaseException:
            self._give_up(pending)
            channel.connection.close()
            raise
        self._pairing.discard(pending)
        return agent, pending.session_id

    def _give_up(self, pending: PendingSession) -> None:
        self._pairing.discard(pending)
        # An agent may have arrived in the same instant as the timeout or cancellation.
        future = pending.agent
        if future.done() and not future.cancelled() and future.exception() is None:
            future.result().connection.close()

    async def _start_relay(
        self, client: HelloChannel, agent: HelloChannel, to_agent: bytes, to_client: bytes
    ) -> RelaySession:
        client_conn, agent_conn = client.connection, agent.connection
        if isinstance(client_conn, SocketConnection) and isinstance(agent_conn, SocketConnection):
            return await start_relay(
                client_conn.sock,
                agent_conn.sock,
                self.config.relay,
                engine=self.config.engine if HAVE_SPLICE else "protocol",
                pool=self._pool,
                to_agent=to_agent,
                to_client=to_client,
            )
        # One data plane is all TLS or all plain, so both are TLS here.
        assert isinstance(client_conn, TlsConnection)
        assert isinstance(agent_conn, TlsConnection)
        return await StreamRelaySession.start(
            client_conn, agent_conn, self.config.relay, to_agent=to_agent, to_client=to_client
        )

    async def _relay(
        self,
        channel: HelloChannel,
        paired: tuple[HelloChannel, bytes],
        admission: Admission,
        started: float,
        admitting_since: float,
    ) -> None:
        loop = asyncio.get_running_loop()
        agent, session_id = paired
        try:
            async with asyncio.timeout(self.config.hello_timeout):
                to_agent, to_client = await asyncio.gather(
                    channel.accept(session_id), agent.accept(session_id)
                )
            relay = await self._start_relay(channel, agent, to_agent, to_client)
        except (OSError, TimeoutError):
            channel.connection.close()
            agent.connection.close()
            self._metrics.closed.inc(reason=CloseReason.RESET.value)
            return
        self._metrics.setup.observe(loop.time() - started)
        live = LiveSession(
            session_id=session_id, admission=admission, relay=relay, started_at=loop.time()
        )
        self._live[session_id] = live
        if self._revoked_since(admission, admitting_since):
            relay.close(CloseReason.REVOKED)  # revoked while the accepts were being sent
        lifetime = self.config.max_session_seconds
        if self.config.close_at_token_expiry:
            lifetime = min(lifetime, admission.claims.expires_at - self._clock())
        expiry = loop.call_later(max(0.0, lifetime), relay.close, CloseReason.EXPIRED)
        try:
            reason = await relay.wait_closed()
        finally:
            expiry.cancel()
            relay.close(CloseReason.SHUTDOWN)
            del self._live[session_id]
            self._metrics.closed_bytes["up"] += relay.bytes_up
            self._metrics.closed_bytes["down"] += relay.bytes_down
        self._metrics.closed.inc(reason=reason.value)
