"""The aiohttp adapter: routes, WS-Security, dispatch to operation handlers, faults.

Handlers stay thin: this module reads the body (bounded), parses the envelope,
checks the UsernameToken (except for GetSystemDateAndTime), calls the
operation, and renders either the reply or a SOAP fault. Nothing a client sends
can make it answer anything but a SOAP envelope.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import MappingProxyType

from aiohttp import web

from . import (
    device_service,
    event_service,
    media_service,
    ptz_service,
    recording_service,
    replay_service,
    search_service,
)
from .auth import UsernameTokenVerifier
from .context import Handler, OnvifSimulatorConfig, OperationContext
from .soap import (
    SOAP12_ENV,
    SoapFault,
    content_type,
    envelope,
    parse_request,
    render_fault,
)
from .state import OnvifCameraState

STATE_KEY = web.AppKey("onvif_state", OnvifCameraState)
CONFIG_KEY = web.AppKey("onvif_config", OnvifSimulatorConfig)

_SERVICES: MappingProxyType[str, dict[tuple[str, str], Handler]] = MappingProxyType(
    {
        "device_service": device_service.OPERATIONS,
        "media_service": media_service.OPERATIONS,
        "ptz_service": ptz_service.OPERATIONS,
        "events_service": event_service.OPERATIONS,
        # Edge storage: these answer ActionNotSupported when the camera has no archive.
        "search_service": search_service.OPERATIONS,
        "replay_service": replay_service.OPERATIONS,
        "recording_service": recording_service.OPERATIONS,
    }
)
_ACCEPTED_TYPES = ("application/soap+xml", "text/xml", "application/xml")


def _base_url_from(request: web.Request) -> str:
    """http://host:port of the socket this request arrived on (what the client can reach)."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if not sockname:
        raise SoapFault("cannot tell the local address", sender=False)
    host, port = sockname[0], sockname[1]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def create_onvif_app(
    state: OnvifCameraState,
    config: OnvifSimulatorConfig | None = None,
    *,
    base_url_provider: Callable[[], str] | None = None,
    logger: logging.Logger | None = None,
) -> web.Application:
    """An aiohttp application serving one simulated camera's ONVIF services.

    Paths: ``/onvif/device_service``, ``/onvif/media_service``, ``/onvif/ptz_service``,
    ``/onvif/events_service``, ``/onvif/pullpoint/<id>`` and, when the state has a
    recording archive, ``/onvif/search_service``, ``/onvif/replay_service`` and
    ``/onvif/recording_service``. XAddrs are absolute,
    built from `base_url_provider()` when given, else from the address the
    request arrived on. Shutting the app down wakes every PullMessages long poll and
    drops every subscription, as a camera reboot does; starting it again accepts new ones.
    """
    config = config or OnvifSimulatorConfig()
    log = logger or logging.getLogger("nvrshare.simulators.onvif")
    verifier = UsernameTokenVerifier(
        username=config.username,
        password=config.password,
        clock_skew=config.clock_skew,
        nonce_cache_size=config.nonce_cache_size,
        allow_password_text=config.allow_password_text,
    )

    async def dispatch(
        request: web.Request,
        operations: dict[tuple[str, str], Handler],
        subscription_id: str | None,
    ) -> web.Response:
        soap_ns = SOAP12_ENV
        try:
            media_type = request.content_type
            if media_type not in _ACCEPTED_TYPES:
                raise SoapFault(f"unsupported Content-Type {media_type[:60]!r}")
            declared = request.content_length
            if declared is not None and declared > config.max_body_bytes:
                raise SoapFault(f"request body exceeds {config.max_body_bytes} bytes")
            body = await _read_bounded(request, config.max_body_bytes)
            soap_request = parse_request(body, max_bytes=config.max_body_bytes)
            soap_ns = soap_request.soap_ns
            key = (soap_request.operation.namespace or "", soap_request.operation.localname)
            wall_now = state.wall_clock()
            # Authenticate before looking the operation up: strangers learn nothing.
            if key not in device_service.UNAUTHENTICATED:
                verifier.verify(soap_request.security, now=wall_now)
            handler = operations.get(key)
            if handler is None:
                raise SoapFault(
                    f"{soap_request.operation.localname[:60]} is not supported here",
                    subcode="ter:ActionNotSupported",
                    sender=False,
                )
            context = OperationContext(
                state=state,
                config=config,
                base_url=base_url_provider() if base_url_provider else _base_url_from(request),
                now=state.clock(),
                wall_now=wall_now,
                subscription_id=subscription_id,
            )
            reply = await handler(context, soap_request)
        except SoapFault as fault:
            log.debug("ONVIF fault on %s: %s (%s)", request.path, fault.reason, fault.subcode)
            return _respond(render_fault(fault, soap_ns=soap_ns), soap_ns, fault.http_status)
        except Exception:
            # A bug in the simulator must still answer like a camera, not drop the connection.
            log.exception("ONVIF simulator failed on %s", request.path)
            internal = SoapFault("internal error", subcode="ter:Action", sender=False)
            return _respond(render_fault(internal, soap_ns=soap_ns), soap_ns, internal.http_status)
        return _respond(envelope(reply, soap_ns=soap_ns), soap_ns, 200)

    async def service(request: web.Request) -> web.Response:
        operations = _SERVICES.get(request.match_info["service"])
        if operations is None:
            raise web.HTTPNotFound
        return await dispatch(request, operations, None)

    async def pullpoint(request: web.Request) -> web.Response:
        return await dispatch(
            request, event_service.SUBSCRIPTION_OPERATIONS, request.match_info["subscription"]
        )

    async def accept_subscriptions(_app: web.Application) -> None:
        state.broker.open()

    async def wake_pollers(_app: web.Application) -> None:
        state.broker.close()

    app = web.Application(client_max_size=config.max_body_bytes)
    app[STATE_KEY] = state
    app[CONFIG_KEY] = config
    app.router.add_post("/onvif/pullpoint/{subscription:[0-9a-f]{1,32}}", pullpoint)
    app.router.add_post("/onvif/{service}", service)
    app.on_startup.append(accept_subscriptions)
    app.on_shutdown.append(wake_pollers)
    return app


async def _read_bounded(request: web.Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(16 * 1024):
        size += len(chunk)
        if size > limit:
            raise SoapFault(f"request body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _respond(payload: bytes, soap_ns: str, status: int) -> web.Response:
    return web.Response(
        body=payload, status=status, headers={"Content-Type": content_type(soap_ns)}
    )


class OnvifCameraServer:
    """Serve `create_onvif_app` on a loopback port for the lifetime of an ``async with``.

    ``port=0`` picks a free port; `base_url` and `device_service_url` are known
    once entered. Leaving stops the site and wakes pending long polls first.
    """

    def __init__(
        self,
        state: OnvifCameraState,
        config: OnvifSimulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        logger: logging.Logger | None = None,
    ) -> None:
        self.state = state
        self.config = config or OnvifSimulatorConfig()
        self._host = host
        self._port = port
        self._logger = logger
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    @property
    def device_service_url(self) -> str:
        return f"{self.base_url}/onvif/device_service"

    async def __aenter__(self) -> OnvifCameraServer:
        app = create_onvif_app(self.state, self.config, logger=self._logger)
        runner = web.AppRunner(app, shutdown_timeout=2.0, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port, reuse_address=True)
            await site.start()
            bound = runner.addresses
            if not bound:
                raise RuntimeError("the ONVIF simulator did not bind a TCP socket")
            self.port = int(bound[0][1])
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
