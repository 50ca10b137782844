"""The simulated recorder's ISAPI HTTP surface (aiohttp), over a `SimDevice`.

Serves exactly what the `isapi` backend calls, the way Hikvision NVR firmware
answers: deviceInfo, InputProxy channels (+ status), Streaming/channels,
Security/adminAccesses (the RTSP port), ContentMgmt/search, PTZCtrl
continuous/status/presets, the multipart Event/notification/alertStream with
`videoloss inactive` heartbeats, and TwoWayAudio open/close/audioData.  Every
`/ISAPI` and `/sim` path needs HTTP Digest (qop=auth).  `/sim/...` are the
simulator's own control endpoints (trigger alarms, read the talk sink).

Handlers are thin: they parse, call the `SimDevice`, and render `isapi_xml`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

from nvrshare.firmware_shim.errors import (
    DeviceBusy,
    NotFound,
    NotSupported,
    ShimError,
    ShimUsageError,
)
from nvrshare.firmware_shim.models import AlarmKind, Capability, PtzVector
from nvrshare.firmware_shim.simdevice import SimDevice, TalkSession
from nvrshare.simulators import isapi_xml as xml
from nvrshare.simulators.digest import AuthResult, DigestAuthenticator

__all__ = ["HttpFaults", "IsapiService", "isapi_track_time", "parse_isapi_time"]

BOUNDARY = "boundary"
MAX_SEARCH_RESULTS = 50
MIC_CHUNK = 160  # 20 ms of 8 kHz G.711
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(kw_only=True, slots=True)
class HttpFaults:
    """Mutable fault knobs for the HTTP surface."""

    response_delay: float = 0.0  # seconds before handling each request
    stall: bool = False  # requests hang and alert streams go silent while set


def parse_isapi_time(text: str) -> datetime:
    """`2026-01-02T03:04:05Z` (or with an offset) -> aware datetime; ValueError if not."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def isapi_track_time(when: datetime) -> str:
    """The compact form used in playback URIs: 20260102T030405Z."""
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _xml_response(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="application/xml")


def _status(request: web.Request, http: int, code: int, text: str, sub: str) -> web.Response:
    return _xml_response(xml.response_status_xml(request.path, code, text, sub), http)


def _part(body: bytes) -> bytes:
    """One multipart part as Hikvision firmware frames it (with a Content-Length)."""
    head = (
        f"--{BOUNDARY}\r\nContent-Type: application/xml; charset=\"UTF-8\"\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body + b"\r\n"


def _ok(request: web.Request) -> web.Response:
    return _status(request, 200, 1, "OK", "ok")


class IsapiService:
    """Builds the aiohttp application for one simulated recorder."""

    def __init__(
        self,
        device: SimDevice,
        *,
        auth: DigestAuthenticator,
        rtsp_base: Callable[[], str],
        http_port: Callable[[], int],
        rtsp_port: Callable[[], int],
        stream_sizes: dict[int, tuple[int, int]],
        heartbeat: float = 10.0,
        logger: logging.Logger | None = None,
    ) -> None:
        self.device = device
        self.faults = HttpFaults()
        self._auth = auth
        self._rtsp_base = rtsp_base
        self._http_port = http_port
        self._rtsp_port = rtsp_port
        self._sizes = stream_sizes
        self._heartbeat = heartbeat
        self._log = logger or logging.getLogger(__name__)
        self._talk: dict[int, tuple[str, TalkSession]] = {}
        # Long-lived alert / audio requests by id() (requests are unhashable mappings).
        self._streams: dict[int, web.Request] = {}
        self.alert_connections = 0  # alert streams opened so far, for tests

    # -- plumbing ---------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[self._fault_middleware, self._auth_middleware, self._error_middleware],
            client_max_size=64 * 1024,
        )
        ptz = "/ISAPI/PTZCtrl/channels/{ch:\\d{1,3}}"
        talk = "/ISAPI/System/TwoWayAudio/channels/{ch:\\d{1,3}}"
        app.add_routes(
            [
                web.get("/ISAPI/System/deviceInfo", self.device_info),
                web.get("/ISAPI/ContentMgmt/InputProxy/channels", self.channels),
                web.get("/ISAPI/ContentMgmt/InputProxy/channels/status", self.channel_status),
                web.get("/ISAPI/Streaming/channels", self.streaming_channels),
                web.get("/ISAPI/Security/adminAccesses", self.admin_accesses),
                web.post("/ISAPI/ContentMgmt/search", self.search),
                web.put(f"{ptz}/continuous", self.ptz_continuous),
                web.get(f"{ptz}/status", self.ptz_status),
                web.get(f"{ptz}/presets", self.ptz_presets),
                web.put(f"{ptz}/presets/{{preset:\\d{{1,3}}}}", self.ptz_set_preset),
                web.put(f"{ptz}/presets/{{preset:\\d{{1,3}}}}/goto", self.ptz_goto_preset),
                web.get("/ISAPI/Event/notification/alertStream", self.alert_stream),
                web.get("/ISAPI/System/TwoWayAudio/channels", self.talk_channels),
                web.put(f"{talk}/open", self.talk_open),
                web.put(f"{talk}/close", self.talk_close),
                web.put(f"{talk}/audioData", self.talk_upload),
                web.get(f"{talk}/audioData", self.talk_download),
                web.post("/sim/alarm", self.sim_alarm),
                web.get("/sim/talk/{ch:\\d{1,3}}", self.sim_talk_received),
            ]
        )
        app.on_shutdown.append(self._close_streams)
        return app

    async def _close_streams(self, _app: web.Application) -> None:
        self.drop_alert_streams()

    @property
    def open_streams(self) -> int:
        """Long-lived requests (alert streams, audio) open right now."""
        return len(self._streams)

    def change_password(self, password: str) -> None:
        """Scenario: the owner changed the device password."""
        self._auth.change_password(password)

    def drop_alert_streams(self) -> int:
        """Fault: cut (TCP abort) every open alert / audio stream; returns how many."""
        requests = list(self._streams.values())
        for request in requests:
            if request.transport is not None:
                request.transport.abort()
        return len(requests)

    @web.middleware
    async def _fault_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.faults.response_delay > 0:
            await asyncio.sleep(self.faults.response_delay)
        while self.faults.stall:  # noqa: ASYNC110 - a knob flipped by tests, polled
            await asyncio.sleep(0.05)
        return await handler(request)

    @web.middleware
    async def _auth_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        result = self._auth.verify(
            request.method, request.raw_path, request.headers.get("Authorization")
        )
        if result is AuthResult.OK:
            return await handler(request)
        response = _status(request, 401, 4, "Invalid Operation", "unAuthorized")
        response.headers["WWW-Authenticate"] = self._auth.challenge(
            stale=result is AuthResult.STALE
        )
        return response

    @web.middleware
    async def _error_middleware(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status == 404:
                return _status(request, 404, 4, "Invalid Operation", "notSupport")
            raise
        except NotSupported:
            return _status(request, 403, 4, "Invalid Operation", "notSupport")
        except DeviceBusy:
            return _status(request, 403, 3, "Device Busy", "deviceBusy")
        except NotFound:
            return _status(request, 404, 4, "Invalid Operation", "notExist")
        except (ShimUsageError, xml.XmlError, ValueError, OverflowError, ShimError):
            return _status(request, 400, 6, "Invalid Content", "badXmlContent")

    # -- identity -------------------------------------------------------------------------------

    async def device_info(self, request: web.Request) -> web.Response:
        channels = len(self.device.channels())
        return _xml_response(xml.device_info_xml(self.device.device_info(), channels))

    async def channels(self, request: web.Request) -> web.Response:
        return _xml_response(xml.channels_xml(self.device.channels()))

    async def channel_status(self, request: web.Request) -> web.Response:
        return _xml_response(xml.channel_status_xml(self.device.channels()))

    async def streaming_channels(self, request: web.Request) -> web.Response:
        return _xml_response(xml.streaming_channels_xml(self.device.channels(), self._sizes))

    async def admin_accesses(self, request: web.Request) -> web.Response:
        return _xml_response(xml.admin_accesses_xml(self._http_port(), self._rtsp_port()))

    # -- recordings ----------------------------------------------------------------------------

    async def search(self, request: web.Request) -> web.Response:
        root = xml.parse_xml(await request.read())
        search_id = xml.find_text(root, "searchID") or secrets.token_hex(8)
        track = int(xml.find_text(root, "trackID") or "0")
        channel = track // 100
        start = parse_isapi_time(xml.find_text(root, "startTime") or "")
        end = parse_isapi_time(xml.find_text(root, "endTime") or "")
        wanted = min(int(xml.find_text(root, "maxResults") or "40"), MAX_SEARCH_RESULTS)
        position = int(
            xml.find_text(root, "searchResultPostion", "searchResultPosition") or "0"
        )
        if wanted <= 0 or position < 0 or track % 100 != 1:
            raise ValueError("bad search window")
        found = self.device.search_recordings(channel, start, end, limit=position + wanted + 1)
        page = found[position : position + wanted]
        base = self._rtsp_base()
        matches = [
            (
                track,
                s,
                e,
                f"{base}/Streaming/tracks/{track}/?starttime={isapi_track_time(s)}"
                f"&endtime={isapi_track_time(e)}",
            )
            for s, e in page
        ]
        body = xml.search_result_xml(search_id, matches, more=len(found) > position + wanted)
        return _xml_response(body)

    # -- PTZ ---------------------------------------------------------------------------------------

    async def ptz_continuous(self, request: web.Request) -> web.Response:
        root = xml.parse_xml(await request.read())
        speeds = []
        for axis in ("pan", "tilt", "zoom"):
            value = int(xml.find_text(root, axis) or "0")
            if not -100 <= value <= 100:
                raise ValueError("speed out of range")
            speeds.append(value / 100)
        self.device.ptz_move(
            int(request.match_info["ch"]), PtzVector(pan=speeds[0], tilt=speeds[1], zoom=speeds[2])
        )
        return _ok(request)

    async def ptz_status(self, request: web.Request) -> web.Response:
        status = self.device.ptz_status(int(request.match_info["ch"]))
        return _xml_response(xml.ptz_status_xml(status))

    async def ptz_presets(self, request: web.Request) -> web.Response:
        presets = self.device.ptz_presets(int(request.match_info["ch"]))
        return _xml_response(xml.presets_xml(presets))

    async def ptz_set_preset(self, request: web.Request) -> web.Response:
        body = await request.read()
        name = ""
        if body:
            name = xml.find_text(xml.parse_xml(body), "presetName") or ""
        self.device.ptz_set_preset(
            int(request.match_info["ch"]), int(request.match_info["preset"]), name
        )
        return _ok(request)

    async def ptz_goto_preset(self, request: web.Request) -> web.Response:
        self.device.ptz_goto_preset(
            int(request.match_info["ch"]), int(request.match_info["preset"])
        )
        return _ok(request)

    # -- alarms -----------------------------------------------------------------------------------

    async def alert_stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": f"multipart/mixed; boundary={BOUNDARY}"}
        )
        mac = self.device.config.mac
        # Subscribe before the head goes out, so "too many subscribers" is a clean 403.
        with self.device.subscribe() as queue:
            await response.prepare(request)
            self.alert_connections += 1
            self._streams[id(request)] = request
            try:
                while True:
                    try:
                        async with asyncio.timeout(self._heartbeat):
                            event = await queue.get()
                        document = xml.alert_xml(event, mac=mac)
                    except TimeoutError:
                        document = xml.heartbeat_xml(datetime.now(UTC), mac=mac)
                    if self.faults.stall:
                        continue
                    await response.write(_part(document.encode()))
            except ConnectionError:
                pass  # the client went away (or a drop fault cut it)
            finally:
                self._streams.pop(id(request), None)
        return response

    async def sim_alarm(self, request: web.Request) -> web.Response:
        """Simulator control: POST /sim/alarm?kind=motion&channel=1&active=true (or input=2)."""
        query = request.query
        kind = AlarmKind(query.get("kind", "motion"))
        channel = int(query["channel"]) if "channel" in query else None
        port = int(query["input"]) if "input" in query else None
        active = query.get("active", "true").lower() in ("1", "true", "yes")
        self.device.trigger_alarm(kind, channel=channel, input_port=port, active=active)
        return _ok(request)

    # -- two-way audio ------------------------------------------------------------------------

    def _talk_channel(self, request: web.Request) -> int:
        channel = int(request.match_info["ch"])
        if Capability.TALK not in self.device.channel(channel).capabilities:
            raise NotSupported("no two-way audio on this channel")
        return channel

    def _talk_session(self, request: web.Request) -> TalkSession:
        channel = self._talk_channel(request)
        held = self._talk.get(channel)
        wanted = request.query.get("sessionId")
        if held is None or held[1].closed or (wanted is not None and wanted != held[0]):
            raise NotFound("no open talk session")
        return held[1]

    async def talk_channels(self, request: web.Request) -> web.Response:
        channels = [
            c.number for c in self.device.channels() if Capability.TALK in c.capabilities
        ]
        return _xml_response(xml.talk_channels_xml(channels))

    async def talk_open(self, request: web.Request) -> web.Response:
        channel = self._talk_channel(request)
        session = self.device.talk_open(channel)  # DeviceBusy if already open
        session_id = secrets.token_hex(8)
        self._talk[channel] = (session_id, session)
        return _xml_response(xml.talk_session_xml(session_id))

    async def talk_close(self, request: web.Request) -> web.Response:
        channel = self._talk_channel(request)
        self.device.talk_force_close(channel)
        self._talk.pop(channel, None)
        return _ok(request)

    async def talk_upload(self, request: web.Request) -> web.Response:
        session = self._talk_session(request)
        async for chunk in request.content.iter_any():
            if session.closed:
                break
            self.device.talk_receive(session, chunk)
        return _ok(request)

    async def talk_download(self, request: web.Request) -> web.StreamResponse:
        session = self._talk_session(request)
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        self._streams[id(request)] = request
        sequence = 0
        try:
            with contextlib.suppress(ConnectionError):
                while not session.closed:
                    sequence += 1
                    await response.write(self.device.microphone_chunk(sequence, MIC_CHUNK))
                    await asyncio.sleep(MIC_CHUNK / 8000)
        finally:
            self._streams.pop(id(request), None)
        return response

    async def sim_talk_received(self, request: web.Request) -> web.Response:
        """Simulator control: everything channel `ch`'s speaker received."""
        channel = int(request.match_info["ch"])
        return web.Response(
            body=self.device.talk_received(channel), content_type="application/octet-stream"
        )
