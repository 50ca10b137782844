"""The ONVIF simulator's HTTP surface under hostile or odd input: always a SOAP answer."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from collections.abc import AsyncIterator

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from nvrshare.simulators.onvif import (
    OnvifCameraServer,
    OnvifCameraState,
    OnvifSimulatorConfig,
    default_profiles,
)
from nvrshare.simulators.onvif.auth import password_digest

SOAP12 = "application/soap+xml; charset=utf-8"
ENV12 = "http://www.w3.org/2003/05/soap-envelope"
ENV11 = "http://schemas.xmlsoap.org/soap/envelope/"


def _body(operation: str, *, env: str = ENV12, header: str = "") -> bytes:
    return (
        f'<e:Envelope xmlns:e="{env}"><e:Header>{header}</e:Header><e:Body>{operation}</e:Body>'
        "</e:Envelope>"
    ).encode()


def _security(user: str, password: str) -> str:
    nonce = base64.b64decode("bm9uY2Vub25jZW5vbmNl") + dt.datetime.now(dt.UTC).isoformat().encode()
    nonce = nonce[:32]
    created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    profile = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
    return (
        '<wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/'
        'oasis-200401-wss-wssecurity-secext-1.0.xsd" xmlns:wsu="http://docs.oasis-open.org/wss/'
        '2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"><wsse:UsernameToken>'
        f"<wsse:Username>{user}</wsse:Username>"
        f'<wsse:Password Type="{profile}#PasswordDigest">'
        f"{password_digest(nonce, created, password)}</wsse:Password>"
        f"<wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce>"
        f"<wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security>"
    )


DEVICE_INFO = '<GetDeviceInformation xmlns="http://www.onvif.org/ver10/device/wsdl"/>'
CLOCK = '<GetSystemDateAndTime xmlns="http://www.onvif.org/ver10/device/wsdl"/>'


@pytest.fixture
async def server() -> AsyncIterator[OnvifCameraServer]:
    state = OnvifCameraState(profiles=default_profiles("rtsp://127.0.0.1/a", "rtsp://127.0.0.1/b"))
    config = OnvifSimulatorConfig(
        username="admin", password="pw", max_body_bytes=8192, max_pull_timeout=30.0
    )
    async with OnvifCameraServer(state, config) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


async def _post(
    http: aiohttp.ClientSession, url: str, data: bytes, content_type: str = SOAP12
) -> tuple[int, etree._Element]:
    async with http.post(url, data=data, headers={"Content-Type": content_type}) as response:
        payload = await response.read()
        root = etree.fromstring(payload)
        return response.status, root


def _subcodes(root: etree._Element) -> list[str]:
    return [v.text or "" for v in root.iter(f"{{{ENV12}}}Value")]


async def test_unauthenticated_call_is_a_not_authorized_fault(
    server: OnvifCameraServer, http: aiohttp.ClientSession
) -> None:
    status, root = await _post(http, server.device_service_url, _body(DEVICE_INFO))
    assert status == 400
    assert _subcodes(root) == ["env:Sender", "ter:NotAuthorized"]
    status, root = await _post(http, server.device_service_url, _body(CLOCK))
    assert status == 200
    assert root.find(f".//{{{ENV12}}}Body")[0].tag.endswith("GetSystemDateAndTimeResponse")
    header = _security("admin", "pw")
    status, root = await _post(http, server.device_service_url, _body(DEVICE_INFO, header=header))
    assert status == 200
    # The same token again is a replay.
    status, root = await _post(http, server.device_service_url, _body(DEVICE_INFO, header=header))
    assert status == 400
    assert "ter:NotAuthorized" in _subcodes(root)


async def test_soap11_is_answered_in_soap11(
    server: OnvifCameraServer, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        server.device_service_url,
        data=_body(CLOCK, env=ENV11),
        headers={"Content-Type": "text/xml; charset=utf-8"},
    ) as response:
        assert response.status == 200
        assert response.content_type == "text/xml"
        root = etree.fromstring(await response.read())
    assert etree.QName(root).namespace == ENV11


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        (b"garbage", SOAP12, 400),
        (_body(CLOCK), "application/json", 400),
        (_body("<Reboot xmlns='http://www.onvif.org/ver10/device/wsdl'/>"), SOAP12, 400),
        (_body("<GetProfiles xmlns='urn:nowhere'/>"), SOAP12, 400),
        (b"<x>" + b"a" * 10000 + b"</x>", SOAP12, 400),
    ],
)
async def test_bad_requests_get_soap_faults(
    server: OnvifCameraServer,
    http: aiohttp.ClientSession,
    data: bytes,
    content_type: str,
    status: int,
) -> None:
    got, root = await _post(http, server.device_service_url, data, content_type)
    assert got == status
    assert root.find(f".//{{{ENV12}}}Fault") is not None


async def test_unsupported_operations_are_only_named_to_authenticated_callers(
    server: OnvifCameraServer, http: aiohttp.ClientSession
) -> None:
    reboot = "<SystemReboot xmlns='http://www.onvif.org/ver10/device/wsdl'/>"
    status, root = await _post(http, server.device_service_url, _body(reboot))
    assert (status, _subcodes(root)) == (400, ["env:Sender", "ter:NotAuthorized"])
    header = _security("admin", "pw")
    status, root = await _post(http, server.device_service_url, _body(reboot, header=header))
    assert (status, _subcodes(root)) == (500, ["env:Receiver", "ter:ActionNotSupported"])


async def test_oversized_chunked_body_is_refused(
    server: OnvifCameraServer, http: aiohttp.ClientSession
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 2048

    async with http.post(
        server.device_service_url, data=chunks(), headers={"Content-Type": SOAP12}
    ) as response:
        assert response.status in (400, 413)


async def test_unknown_paths(server: OnvifCameraServer, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{server.base_url}/onvif/nothing", data=b"") as response:
        assert response.status == 404
    status, root = await _post(
        http,
        f"{server.base_url}/onvif/pullpoint/00aa",
        _body(
            '<PullMessages xmlns="http://www.onvif.org/ver10/events/wsdl"><Timeout>PT1S</Timeout>'
            "<MessageLimit>1</MessageLimit></PullMessages>",
            header=_security("admin", "pw"),
        ),
    )
    assert status == 400
    assert "wsrf-rw:ResourceUnknownFault" in _subcodes(root)


async def test_shutdown_wakes_long_polls() -> None:
    state = OnvifCameraState(profiles=default_profiles("rtsp://127.0.0.1/a", "rtsp://127.0.0.1/b"))
    config = OnvifSimulatorConfig(username="admin", password="pw", max_pull_timeout=30.0)
    server = OnvifCameraServer(state, config)
    async with aiohttp.ClientSession() as http:
        async with server:
            subscription = state.broker.create(state.clock(), seconds=60.0)
            url = f"{server.base_url}/onvif/pullpoint/{subscription.id}"
            pull = _body(
                '<PullMessages xmlns="http://www.onvif.org/ver10/events/wsdl">'
                "<Timeout>PT30S</Timeout><MessageLimit>5</MessageLimit></PullMessages>",
                header=_security("admin", "pw"),
            )
            poll = asyncio.create_task(_post(http, url, pull))
            # Shut down only once the pull waits on the subscription (asyncio.Event keeps its
            # waiters in `_waiters`); a fixed sleep may not be long enough on a slow machine.
            async with asyncio.timeout(5.0):
                while not subscription.wakeup._waiters:  # noqa: ASYNC110 - polling
                    await asyncio.sleep(0.01)
            loop = asyncio.get_running_loop()
            started = loop.time()
        assert loop.time() - started < 5.0
        status, _ = await asyncio.wait_for(poll, 5.0)
        assert status == 200


@settings(
    max_examples=40,
    deadline=None,  # real HTTP round trips: a slow machine is not a bug
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.binary(max_size=300))
async def test_fuzzed_bodies_never_break_the_server(data: bytes) -> None:
    state = OnvifCameraState(profiles=default_profiles("rtsp://127.0.0.1/a", "rtsp://127.0.0.1/b"))
    async with OnvifCameraServer(state) as server, aiohttp.ClientSession() as http:
        for payload in (data, _body(data.decode("latin-1").replace("<", "&lt;"))):
            async with http.post(
                server.device_service_url, data=payload, headers={"Content-Type": SOAP12}
            ) as response:
                assert response.status in (200, 400, 500)
                etree.fromstring(await response.read())
