"""The ONVIF simulator's Profile G services (Search, Replay, Recording).

Driven by the real, unmodified onvif-zeep-async client, and by raw requests for
input no client sends: every bad request is a SOAP fault, never a crash.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import secrets
from collections.abc import AsyncIterator
from xml.sax.saxutils import escape

import aiohttp
import pytest
import zeep.exceptions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from onvif import ONVIFCamera

from nvrshare.simulators.onvif import (
    OnvifCameraServer,
    OnvifCameraState,
    OnvifSimulatorConfig,
    RecordingArchive,
    default_profiles,
    recording_service,
    replay_service,
    search_service,
)
from nvrshare.simulators.onvif.auth import password_digest
from nvrshare.simulators.onvif.context import OperationContext
from nvrshare.simulators.onvif.recordings import RecordedSegment, SearchJobs
from nvrshare.simulators.onvif.soap import SoapFault, envelope, parse_request
from tests.simulators.onvif_client import connected_camera

USER, PASSWORD = "operator", "p4ss-w0rd"
SEARCH_NS = "http://www.onvif.org/ver10/search/wsdl"
REPLAY_NS = "http://www.onvif.org/ver10/replay/wsdl"
RECORDING_NS = "http://www.onvif.org/ver10/recording/wsdl"
ENV12 = "http://www.w3.org/2003/05/soap-envelope"
BASE = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
_SERVICES = (search_service, replay_service, recording_service)
_HANDLERS = {
    key[1]: (key[0], handler)
    for service in _SERVICES
    for key, handler in service.OPERATIONS.items()
}
_FIELD_NAMES = [
    "Scope", "MaxMatches", "KeepAliveTime", "SearchToken", "MaxResults", "MinResults",
    "WaitTime", "RecordingToken", "StreamSetup",
]  # fmt: skip
STREAM_SETUP = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}


def _segments(count: int) -> list[tuple[dt.datetime, dt.datetime]]:
    starts = [BASE + i * dt.timedelta(minutes=30) for i in range(count)]
    return [(start, start + dt.timedelta(minutes=20)) for start in starts]


def _archive(count: int = 130) -> RecordingArchive:
    def replay_uri(source: str, start: dt.datetime, end: dt.datetime) -> str:
        return f"rtsp://127.0.0.1:8554/replay/{source}?from={int(start.timestamp())}"

    return RecordingArchive(segments=lambda _source: _segments(count), replay_uri=replay_uri)


def _state(archive: RecordingArchive | None) -> OnvifCameraState:
    return OnvifCameraState(
        profiles=default_profiles("rtsp://127.0.0.1/a", "rtsp://127.0.0.1/b"), recordings=archive
    )


@pytest.fixture
async def server() -> AsyncIterator[OnvifCameraServer]:
    config = OnvifSimulatorConfig(username=USER, password=PASSWORD)
    async with OnvifCameraServer(_state(_archive()), config) as running:
        yield running


@pytest.fixture
async def camera(server: OnvifCameraServer) -> AsyncIterator[ONVIFCamera]:
    async with connected_camera(server.port, USER, PASSWORD) as cam:
        yield cam


async def test_services_are_advertised(camera: ONVIFCamera, server: OnvifCameraServer) -> None:
    for namespace, path in (
        (SEARCH_NS, "search_service"),
        (REPLAY_NS, "replay_service"),
        (RECORDING_NS, "recording_service"),
    ):
        assert camera.xaddrs[namespace] == f"{server.base_url}/onvif/{path}"
    capabilities = await camera.get_capabilities()
    assert capabilities is not None
    # zeep's greedy xs:any in CapabilitiesExtension keeps these as raw elements, as it
    # does for real cameras; the XAddrs clients use come from GetServices anyway.
    raw = {
        etree.QName(element).localname: element.findtext("{http://www.onvif.org/ver10/schema}XAddr")
        for element in capabilities["Extension"]["_value_1"]
    }
    assert raw["Search"] == f"{server.base_url}/onvif/search_service"
    assert raw["Replay"] == f"{server.base_url}/onvif/replay_service"
    assert raw["Recording"] == f"{server.base_url}/onvif/recording_service"
    device = await camera.create_devicemgmt_service()
    scopes = [str(s.ScopeItem) for s in await device.GetScopes()]
    assert "onvif://www.onvif.org/Profile/G" in scopes


async def test_search_pages_until_completed(camera: ONVIFCamera, server: OnvifCameraServer) -> None:
    search = await camera.create_search_service()
    token = await search.FindRecordings({"Scope": {}, "MaxMatches": 1000, "KeepAliveTime": "PT10S"})
    seen: list[str] = []
    states: list[str] = []
    for _ in range(10):
        page = await search.GetRecordingSearchResults(
            {"SearchToken": token, "MinResults": 1, "MaxResults": 50, "WaitTime": "PT1S"}
        )
        states.append(str(page.SearchState))
        seen += [str(info.RecordingToken) for info in page.RecordingInformation or []]
        if page.SearchState == "Completed":
            break
    assert states == ["Searching", "Searching", "Completed"]
    assert seen == [
        RecordedSegment(video_source="VideoSource_1", start=s, end=e).token
        for s, e in _segments(130)
    ]
    first = (await search.GetRecordingSearchResults({"SearchToken": token})).RecordingInformation
    assert not first  # nothing left, still Completed until EndSearch
    assert isinstance(await search.EndSearch({"SearchToken": token}), dt.datetime)
    assert len(server.state.searches) == 0
    with pytest.raises(zeep.exceptions.Fault):
        await search.GetRecordingSearchResults({"SearchToken": token})


async def test_search_scope_and_max_matches(camera: ONVIFCamera) -> None:
    search = await camera.create_search_service()

    async def count(params: dict[str, object]) -> int:
        token = await search.FindRecordings({"KeepAliveTime": "PT5S", **params})
        page = await search.GetRecordingSearchResults({"SearchToken": token, "MaxResults": 100})
        await search.EndSearch({"SearchToken": token})
        return len(page.RecordingInformation or [])

    assert await count({"Scope": {}, "MaxMatches": 7}) == 7
    assert await count({"Scope": {"IncludedSources": [{"Token": "VideoSource_9"}]}}) == 0
    assert await count({"Scope": {"IncludedSources": [{"Token": "VideoSource_1"}]}}) == 100
    token = RecordedSegment(video_source="VideoSource_1", start=BASE, end=BASE).token
    assert await count({"Scope": {"IncludedRecordings": [token]}}) == 1
    summary = await search.GetRecordingSummary()
    assert summary.NumberRecordings == 130
    assert summary.DataFrom == BASE


async def test_replay_uri_and_recordings(camera: ONVIFCamera) -> None:
    replay = await camera.create_replay_service()
    token = RecordedSegment(video_source="VideoSource_1", start=BASE, end=BASE).token
    uri = await replay.GetReplayUri({"StreamSetup": STREAM_SETUP, "RecordingToken": token})
    assert uri == f"rtsp://127.0.0.1:8554/replay/VideoSource_1?from={int(BASE.timestamp())}"
    with pytest.raises(zeep.exceptions.Fault):
        await replay.GetReplayUri({"StreamSetup": STREAM_SETUP, "RecordingToken": "REC_x_1"})
    assert (await replay.GetServiceCapabilities()).RTP_RTSP_TCP is True
    recording = await camera.create_recording_service()
    items = await recording.GetRecordings()
    assert len(items) == 130
    assert items[0].RecordingToken == token
    assert items[0].Configuration.Source.SourceId == "VideoSource_1"
    assert items[0].Tracks.Track[0].Configuration.TrackType == "Video"
    search = await camera.create_search_service()
    assert (await search.GetServiceCapabilities()).MetadataSearch is False


async def test_camera_without_archive_offers_no_storage() -> None:
    config = OnvifSimulatorConfig(username=USER, password=PASSWORD)
    async with OnvifCameraServer(_state(None), config) as server:
        cam = ONVIFCamera("127.0.0.1", server.port, USER, PASSWORD, no_cache=True)
        try:
            await cam.update_xaddrs()
            assert SEARCH_NS not in cam.xaddrs
            assert REPLAY_NS not in cam.xaddrs
            capabilities = await cam.get_capabilities()
            assert capabilities is not None
            assert capabilities["Extension"] is None
        finally:
            await cam.close()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http:
            status, codes = await _post(
                http, f"{server.base_url}/onvif/search_service", _find("PT5S")
            )
        assert status == 500
        assert "ter:ActionNotSupported" in codes


# --- hostile input, raw ----------------------------------------------------------------------


def _security() -> str:
    nonce = secrets.token_bytes(16)
    created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    profile = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
    return (
        '<wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/'
        'oasis-200401-wss-wssecurity-secext-1.0.xsd" xmlns:wsu="http://docs.oasis-open.org/wss/'
        '2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"><wsse:UsernameToken>'
        f"<wsse:Username>{USER}</wsse:Username>"
        f'<wsse:Password Type="{profile}#PasswordDigest">'
        f"{password_digest(nonce, created, PASSWORD)}</wsse:Password>"
        f"<wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce>"
        f"<wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security>"
    )


def _envelope(operation: str, *, authenticated: bool = True) -> bytes:
    header = _security() if authenticated else ""
    return (
        f'<e:Envelope xmlns:e="{ENV12}" xmlns:tt="http://www.onvif.org/ver10/schema">'
        f"<e:Header>{header}</e:Header><e:Body>{operation}</e:Body></e:Envelope>"
    ).encode()


def _find(keep_alive: str, extra: str = "", scope: str = "<Scope/>") -> bytes:
    return _envelope(
        f'<FindRecordings xmlns="{SEARCH_NS}">{scope}{extra}'
        f"<KeepAliveTime>{keep_alive}</KeepAliveTime></FindRecordings>"
    )


def _replay(inner: str) -> bytes:
    return _envelope(f'<GetReplayUri xmlns="{REPLAY_NS}">{inner}</GetReplayUri>')


_SETUP = (
    "<StreamSetup><tt:Stream>RTP-Unicast</tt:Stream>"
    "<tt:Transport><tt:Protocol>RTSP</tt:Protocol></tt:Transport></StreamSetup>"
)

BAD_REQUESTS = {
    "no scope": ("search", _find("PT5S", scope="")),
    "no keep-alive": ("search", _find("")),
    "bad keep-alive": ("search", _find("forever")),
    "negative max": ("search", _find("PT5S", "<MaxMatches>-1</MaxMatches>")),
    "text max": ("search", _find("PT5S", "<MaxMatches>many</MaxMatches>")),
    "long token": ("search", _envelope(f'<EndSearch xmlns="{SEARCH_NS}"><SearchToken>{"x" * 2000}</SearchToken></EndSearch>')),  # noqa: E501
    "unknown job": ("search", _envelope(f'<GetRecordingSearchResults xmlns="{SEARCH_NS}"><SearchToken>nope</SearchToken></GetRecordingSearchResults>')),  # noqa: E501
    "no job token": ("search", _envelope(f'<EndSearch xmlns="{SEARCH_NS}"/>')),
    "bad wait": ("search", _envelope(f'<GetRecordingSearchResults xmlns="{SEARCH_NS}"><SearchToken>a</SearchToken><WaitTime>soon</WaitTime></GetRecordingSearchResults>')),  # noqa: E501
    "no setup": ("replay", _replay("<RecordingToken>REC_VideoSource_1_1</RecordingToken>")),
    "multicast": ("replay", _replay(_SETUP.replace("RTP-Unicast", "RTP-Multicast") + "<RecordingToken>t</RecordingToken>")),  # noqa: E501
    "no recording token": ("replay", _replay(_SETUP)),
    "odd recording token": ("replay", _replay(_SETUP + "<RecordingToken>REC_../../etc_1</RecordingToken>")),  # noqa: E501
    "huge start": ("replay", _replay(_SETUP + "<RecordingToken>REC_VideoSource_1_999999999999</RecordingToken>")),  # noqa: E501
    "unauthenticated": ("search", _envelope(f'<GetRecordingSummary xmlns="{SEARCH_NS}"/>', authenticated=False)),  # noqa: E501
}  # fmt: skip


async def _post(http: aiohttp.ClientSession, url: str, data: bytes) -> tuple[int, list[str]]:
    headers = {"Content-Type": "application/soap+xml; charset=utf-8"}
    async with http.post(url, data=data, headers=headers) as response:
        root = etree.fromstring(await response.read())
    assert root.find(f".//{{{ENV12}}}Fault") is not None or response.status == 200
    return response.status, [v.text or "" for v in root.iter(f"{{{ENV12}}}Value")]


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
async def test_bad_input_is_a_soap_fault(server: OnvifCameraServer, case: str) -> None:
    service, data = BAD_REQUESTS[case]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http:
        status, codes = await _post(http, f"{server.base_url}/onvif/{service}_service", data)
    assert status == 400, codes  # the client's mistake, never an internal error
    assert codes[0] == "env:Sender"


# --- search jobs ------------------------------------------------------------------------------


def test_search_jobs_expire_and_are_bounded() -> None:
    jobs = SearchJobs(limit=2)
    first = jobs.start([], keep_alive=10, now=0)
    assert jobs.get(first.token, now=9) is first  # use restarts the keep-alive
    assert jobs.get(first.token, now=18) is first
    assert jobs.get(first.token, now=29) is None  # expired
    a = jobs.start([], keep_alive=10, now=100)
    b = jobs.start([], keep_alive=20, now=100)
    c = jobs.start([], keep_alive=30, now=100)  # full: the one expiring first makes room
    assert len(jobs) == 2
    assert jobs.get(a.token, now=101) is None
    assert jobs.get(b.token, now=101) is b
    assert jobs.get(c.token, now=101) is c
    assert jobs.end(c.token)
    assert not jobs.end(c.token)


# --- fuzzing the handlers directly -------------------------------------------------------------

_FIELD = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["PT5S", "P", "PT", "-1", "0", "99999999999999999999", "REC_VideoSource_1_0"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    operation=st.sampled_from(sorted(_HANDLERS)),
    names=st.lists(st.sampled_from(_FIELD_NAMES), max_size=5),
    values=st.lists(_FIELD, min_size=5, max_size=5),
)
def test_handlers_answer_or_fault_on_any_field(
    operation: str, names: list[str], values: list[str]
) -> None:
    namespace, handler = _HANDLERS[operation]
    fields = "".join(
        f"<x:{name}>{escape(value)}</x:{name}>" for name, value in zip(names, values, strict=False)
    )
    body = (
        f'<e:Envelope xmlns:e="{ENV12}"><e:Body><x:{operation} xmlns:x="{namespace}">{fields}'
        f"</x:{operation}></e:Body></e:Envelope>"
    ).encode()
    state = _state(_archive(5))
    context = OperationContext(
        state=state,
        config=OnvifSimulatorConfig(),
        base_url="http://127.0.0.1:1",
        now=0.0,
        wall_now=BASE,
    )
    try:
        request = parse_request(body, max_bytes=64 * 1024)
        reply = asyncio.run(handler(context, request))
    except SoapFault:
        return
    etree.fromstring(envelope(reply))  # a well-formed answer
