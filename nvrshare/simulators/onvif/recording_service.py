"""Recording service (ver10, Profile G), read-only: what recordings exist and their tracks.

Clients (ONVIF Device Manager, VMSs) list recordings with GetRecordings before
searching; configuration changes are not offered.
"""

from __future__ import annotations

from .context import Handler, OperationContext, qname
from .search_service import archive
from .soap import SoapRequest, text


async def get_recordings(ctx: OperationContext, _request: SoapRequest) -> str:
    items = "".join(
        "<trc:RecordingItem>"
        f"<tt:RecordingToken>{text(segment.token)}</tt:RecordingToken>"
        "<tt:Configuration><tt:Source>"
        f"<tt:SourceId>{text(segment.video_source)}</tt:SourceId>"
        f"<tt:Name>{text(segment.video_source)}</tt:Name><tt:Location></tt:Location>"
        f"<tt:Description>continuous</tt:Description>"
        f"<tt:Address>{text(segment.video_source)}</tt:Address>"
        "</tt:Source><tt:Content>continuous</tt:Content>"
        "<tt:MaximumRetentionTime>PT0S</tt:MaximumRetentionTime></tt:Configuration>"
        "<tt:Tracks><tt:Track><tt:TrackToken>VIDEO001</tt:TrackToken>"
        "<tt:Configuration><tt:TrackType>Video</tt:TrackType>"
        "<tt:Description>video</tt:Description></tt:Configuration></tt:Track></tt:Tracks>"
        "</trc:RecordingItem>"
        for segment in archive(ctx).recordings(ctx.state.video_sources)
    )
    return f"<trc:GetRecordingsResponse>{items}</trc:GetRecordingsResponse>"


async def get_service_capabilities(ctx: OperationContext, _request: SoapRequest) -> str:
    archive(ctx)
    return (
        "<trc:GetServiceCapabilitiesResponse>"
        '<trc:Capabilities DynamicRecordings="false" DynamicTracks="false" Encoding="H264" '
        'MaxRate="4096" MaxTotalRate="4096" MaxRecordings="1" MaxRecordingJobs="1" '
        'Options="false" MetadataRecording="false"/>'
        "</trc:GetServiceCapabilitiesResponse>"
    )


OPERATIONS: dict[tuple[str, str], Handler] = {
    qname("trc", "GetRecordings"): get_recordings,
    qname("trc", "GetServiceCapabilities"): get_service_capabilities,
}
