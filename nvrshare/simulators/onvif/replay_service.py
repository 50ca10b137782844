"""Replay service (ver10, Profile G): GetReplayUri for a recording, RTP-Unicast over RTSP.

The URI names the recording's span; a client narrows it with `Range: clock=`
on PLAY (ONVIF streaming) or, with this camera's RTSP server, with the
``starttime`` / ``endtime`` query it carries.
"""

from __future__ import annotations

from .context import Handler, OperationContext, qname
from .search_service import archive
from .soap import NAMESPACES, SoapFault, SoapRequest, child, child_text, text

TRP = NAMESPACES["trp"]
TT = NAMESPACES["tt"]


async def get_replay_uri(ctx: OperationContext, request: SoapRequest) -> str:
    store = archive(ctx)
    setup = child(request.body, TRP, "StreamSetup")
    if setup is None:
        raise SoapFault("StreamSetup is required", detail_subcode="ter:InvalidStreamSetup")
    stream = child_text(setup, TT, "Stream")
    transport = child(setup, TT, "Transport")
    protocol = child_text(transport, TT, "Protocol") if transport is not None else None
    if stream != "RTP-Unicast" or protocol not in ("RTSP", "TCP"):
        raise SoapFault(
            "only RTP-Unicast over RTSP is offered", detail_subcode="ter:InvalidStreamSetup"
        )
    token = child_text(request.body, TRP, "RecordingToken")
    if not token:
        raise SoapFault("RecordingToken is required", detail_subcode="ter:NoRecording")
    segment = store.find(token, ctx.state.video_sources)
    if segment is None:
        raise SoapFault("no such recording", detail_subcode="ter:NoRecording")
    uri = store.replay_uri(segment.video_source, segment.start, segment.end)
    return f"<trp:GetReplayUriResponse><trp:Uri>{text(uri)}</trp:Uri></trp:GetReplayUriResponse>"


async def get_service_capabilities(ctx: OperationContext, _request: SoapRequest) -> str:
    archive(ctx)
    return (
        "<trp:GetServiceCapabilitiesResponse>"
        '<trp:Capabilities ReversePlayback="false" SessionTimeoutRange="60 60" '
        'RTP_RTSP_TCP="true"/>'
        "</trp:GetServiceCapabilitiesResponse>"
    )


OPERATIONS: dict[tuple[str, str], Handler] = {
    qname("trp", "GetReplayUri"): get_replay_uri,
    qname("trp", "GetServiceCapabilities"): get_service_capabilities,
}
