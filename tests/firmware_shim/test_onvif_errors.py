"""Foreign errors become shim errors at the onvif backend boundary, and only there."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
import zeep.exceptions
from aiohttp import web
from lxml import etree
from onvif.exceptions import ONVIFAuthError, ONVIFError, ONVIFTimeoutError

from nvrshare.firmware_shim import (
    AuthFailed,
    BadResponse,
    DeviceError,
    DeviceTimeout,
    DeviceUnreachable,
    NotFound,
    NotSupported,
    RecorderConfig,
    ShimError,
    ShimUsageError,
    open_recorder,
)
from nvrshare.firmware_shim.backends.onvif._errors import map_errors, to_shim
from nvrshare.simulators.onvif import (
    OnvifCameraServer,
    OnvifCameraState,
    OnvifSimulatorConfig,
    default_profiles,
)

ERR = "http://www.onvif.org/ver10/error"


def _fault(*subcodes: str) -> zeep.exceptions.Fault:
    return zeep.exceptions.Fault(
        "refused",
        code="{http://www.w3.org/2003/05/soap-envelope}Sender",
        subcodes=[etree.QName(ERR, code) for code in subcodes],
    )


def _onvif_error_from(cause: Exception) -> ONVIFError:
    try:
        raise ONVIFError(cause) from cause
    except ONVIFError as exc:
        return exc


@pytest.mark.parametrize(
    ("foreign", "expected"),
    [
        (_fault("NotAuthorized"), AuthFailed),
        (_fault("ActionNotSupported"), NotSupported),
        (_fault("InvalidArgVal", "NoProfile"), NotFound),
        (_fault("InvalidArgVal", "NoToken"), NotFound),
        (_fault("InvalidArgVal"), DeviceError),
        (zeep.exceptions.Fault("Sender not Authorized"), AuthFailed),
        (zeep.exceptions.TransportError(status_code=401), AuthFailed),
        (zeep.exceptions.TransportError(status_code=500), BadResponse),
        (zeep.exceptions.XMLSyntaxError("bad"), BadResponse),
        (zeep.exceptions.XMLParseError("bad"), BadResponse),
        (zeep.exceptions.ValidationError("bad"), BadResponse),
        (etree.XMLSyntaxError("bad", 1, 1, 1), BadResponse),
        (ONVIFAuthError("no"), AuthFailed),
        (ONVIFTimeoutError("slow"), DeviceTimeout),
        (TimeoutError(), DeviceTimeout),
        (_onvif_error_from(ConnectionRefusedError()), DeviceUnreachable),
        (
            _onvif_error_from(zeep.exceptions.Fault("x", subcodes=[etree.QName(ERR, "NoProfile")])),
            NotFound,
        ),
        (ONVIFError("opaque"), DeviceError),
        (aiohttp.ClientConnectionError(), DeviceUnreachable),
        (aiohttp.ServerDisconnectedError(), DeviceUnreachable),
        (OSError("network is down"), DeviceUnreachable),
        (AttributeError("Uri"), BadResponse),
        (ShimUsageError("serial must be 1..128 characters"), BadResponse),
    ],
)
def test_foreign_errors_map_to_shim_errors(foreign: Exception, expected: type[ShimError]) -> None:
    with pytest.raises(expected) as caught, map_errors("Op"):
        raise foreign
    assert type(caught.value) is expected
    assert str(caught.value).startswith("Op")


def test_shim_errors_and_bugs_pass_through() -> None:
    original = NotFound("no preset")
    with pytest.raises(NotFound) as caught, map_errors("Op"):
        raise original
    assert caught.value is original
    with pytest.raises(RuntimeError), map_errors("Op"):
        raise RuntimeError("a bug stays a bug")
    with pytest.raises(asyncio.CancelledError), map_errors("Op"):
        raise asyncio.CancelledError
    assert to_shim(RuntimeError(), "Op") is None


def test_messages_do_not_carry_credentials() -> None:
    error = to_shim(zeep.exceptions.Fault("x" * 10_000), "Op")
    assert error is not None
    assert len(str(error)) < 300


# --- misbehaving devices over HTTP ---------------------------------------------------

Behaviour = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _garbage(_request: web.Request) -> web.StreamResponse:
    return web.Response(body=b"<html>not soap", content_type="application/soap+xml")


async def _empty_500(_request: web.Request) -> web.StreamResponse:
    return web.Response(status=500)


async def _empty_401(_request: web.Request) -> web.StreamResponse:
    return web.Response(status=401)


async def _slow(_request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(5)
    return web.Response(status=500)


async def _hang_up(request: web.Request) -> web.StreamResponse:
    assert request.transport is not None
    request.transport.close()
    return web.Response()


@pytest.fixture
async def device() -> AsyncIterator[Callable[[Behaviour], Awaitable[int]]]:
    runners: list[web.AppRunner] = []

    async def start(behaviour: Behaviour) -> int:
        app = web.Application()
        app.router.add_post("/onvif/device_service", behaviour)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return int(runner.addresses[0][1])

    try:
        yield start
    finally:
        for runner in runners:
            await runner.cleanup()


def _config(port: int, timeout: float = 5.0) -> RecorderConfig:
    return RecorderConfig(
        backend="onvif", host="127.0.0.1", port=port, username="u", password="p", timeout=timeout
    )


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [
        (_garbage, BadResponse),
        (_empty_500, BadResponse),
        (_empty_401, AuthFailed),
        (_hang_up, DeviceUnreachable),
    ],
)
async def test_misbehaving_device_on_connect(
    device: Callable[[Behaviour], Awaitable[int]],
    behaviour: Behaviour,
    expected: type[ShimError],
) -> None:
    port = await device(behaviour)
    with pytest.raises(expected):
        async with open_recorder(_config(port)):
            pass


async def test_silent_device_times_out(device: Callable[[Behaviour], Awaitable[int]]) -> None:
    port = await device(_slow)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(DeviceTimeout):
        async with open_recorder(_config(port, timeout=0.3)):
            pass
    assert loop.time() - started < 3.0


async def test_device_going_away_after_connect_is_unreachable() -> None:
    state = OnvifCameraState(profiles=default_profiles("rtsp://127.0.0.1/a", "rtsp://127.0.0.1/b"))
    config = OnvifSimulatorConfig(username="u", password="p")
    server = OnvifCameraServer(state, config)
    async with server:
        recorder_context = open_recorder(_config(server.port, timeout=2.0))
        recorder = await recorder_context.__aenter__()
    try:
        with pytest.raises(DeviceUnreachable):
            await recorder.live_source(1)
    finally:
        await recorder_context.__aexit__(None, None, None)
