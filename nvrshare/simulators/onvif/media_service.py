"""Media service (ver10): profiles with their encoder and PTZ configurations, stream URIs."""

from __future__ import annotations

from .context import Handler, OperationContext, qname
from .soap import NAMESPACES, SoapFault, SoapRequest, attr, child, child_text, text
from .state import OnvifProfile, source_configuration_token

TRT = NAMESPACES["trt"]
TT = NAMESPACES["tt"]

PAN_TILT_POSITION = "http://www.onvif.org/ver10/tptz/PanTiltSpaces/PositionGenericSpace"
ZOOM_POSITION = "http://www.onvif.org/ver10/tptz/ZoomSpaces/PositionGenericSpace"
PAN_TILT_TRANSLATION = "http://www.onvif.org/ver10/tptz/PanTiltSpaces/TranslationGenericSpace"
ZOOM_TRANSLATION = "http://www.onvif.org/ver10/tptz/ZoomSpaces/TranslationGenericSpace"
PAN_TILT_VELOCITY = "http://www.onvif.org/ver10/tptz/PanTiltSpaces/VelocityGenericSpace"
ZOOM_VELOCITY = "http://www.onvif.org/ver10/tptz/ZoomSpaces/VelocityGenericSpace"
PAN_TILT_SPEED = "http://www.onvif.org/ver10/tptz/PanTiltSpaces/GenericSpeedSpace"
ZOOM_SPEED = "http://www.onvif.org/ver10/tptz/ZoomSpaces/ZoomGenericSpeedSpace"


def ptz_node_token(video_source: str) -> str:
    return f"PTZNode_{video_source}"


def ptz_configuration_xml(video_source: str, element: str = "tt:PTZConfiguration") -> str:
    """A PTZ configuration whose default spaces are the generic ones (what clients read)."""
    return (
        f"<{element} token={attr('PTZ_' + video_source)}>"
        f"<tt:Name>PTZ {text(video_source)}</tt:Name><tt:UseCount>2</tt:UseCount>"
        f"<tt:NodeToken>{text(ptz_node_token(video_source))}</tt:NodeToken>"
        f"<tt:DefaultAbsolutePantTiltPositionSpace>{PAN_TILT_POSITION}"
        "</tt:DefaultAbsolutePantTiltPositionSpace>"
        f"<tt:DefaultAbsoluteZoomPositionSpace>{ZOOM_POSITION}</tt:DefaultAbsoluteZoomPositionSpace>"
        f"<tt:DefaultRelativePanTiltTranslationSpace>{PAN_TILT_TRANSLATION}"
        "</tt:DefaultRelativePanTiltTranslationSpace>"
        f"<tt:DefaultRelativeZoomTranslationSpace>{ZOOM_TRANSLATION}"
        "</tt:DefaultRelativeZoomTranslationSpace>"
        f"<tt:DefaultContinuousPanTiltVelocitySpace>{PAN_TILT_VELOCITY}"
        "</tt:DefaultContinuousPanTiltVelocitySpace>"
        f"<tt:DefaultContinuousZoomVelocitySpace>{ZOOM_VELOCITY}"
        "</tt:DefaultContinuousZoomVelocitySpace>"
        "<tt:DefaultPTZSpeed>"
        f'<tt:PanTilt x="1" y="1" space="{PAN_TILT_SPEED}"/>'
        f'<tt:Zoom x="1" space="{ZOOM_SPEED}"/>'
        "</tt:DefaultPTZSpeed>"
        "<tt:DefaultPTZTimeout>PT10S</tt:DefaultPTZTimeout>"
        f"<tt:PanTiltLimits><tt:Range><tt:URI>{PAN_TILT_POSITION}</tt:URI>"
        "<tt:XRange><tt:Min>-1</tt:Min><tt:Max>1</tt:Max></tt:XRange>"
        "<tt:YRange><tt:Min>-1</tt:Min><tt:Max>1</tt:Max></tt:YRange>"
        "</tt:Range></tt:PanTiltLimits>"
        f"<tt:ZoomLimits><tt:Range><tt:URI>{ZOOM_POSITION}</tt:URI>"
        "<tt:XRange><tt:Min>0</tt:Min><tt:Max>1</tt:Max></tt:XRange>"
        "</tt:Range></tt:ZoomLimits>"
        f"</{element}>"
    )


def _video_source_configuration(profile: OnvifProfile) -> str:
    token = source_configuration_token(profile.video_source)
    return (
        f"<tt:VideoSourceConfiguration token={attr(token)}>"
        f"<tt:Name>{text(profile.video_source)}</tt:Name><tt:UseCount>2</tt:UseCount>"
        f"<tt:SourceToken>{text(profile.video_source)}</tt:SourceToken>"
        f'<tt:Bounds x="0" y="0" width="{profile.width}" height="{profile.height}"/>'
        "</tt:VideoSourceConfiguration>"
    )


def _video_encoder_configuration(profile: OnvifProfile) -> str:
    codec = ""
    if profile.encoding == "H264":
        codec = (
            "<tt:H264><tt:GovLength>50</tt:GovLength>"
            "<tt:H264Profile>Main</tt:H264Profile></tt:H264>"
        )
    return (
        f"<tt:VideoEncoderConfiguration token={attr('VEC_' + profile.token)}>"
        f"<tt:Name>{text(profile.name)}</tt:Name><tt:UseCount>1</tt:UseCount>"
        f"<tt:Encoding>{text(profile.encoding)}</tt:Encoding>"
        f"<tt:Resolution><tt:Width>{profile.width}</tt:Width>"
        f"<tt:Height>{profile.height}</tt:Height></tt:Resolution>"
        "<tt:Quality>5</tt:Quality>"
        f"<tt:RateControl><tt:FrameRateLimit>{profile.framerate}</tt:FrameRateLimit>"
        "<tt:EncodingInterval>1</tt:EncodingInterval>"
        f"<tt:BitrateLimit>{profile.bitrate_kbps}</tt:BitrateLimit></tt:RateControl>"
        f"{codec}"
        "<tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type><tt:IPv4Address>0.0.0.0</tt:IPv4Address>"
        "</tt:Address><tt:Port>0</tt:Port><tt:TTL>1</tt:TTL><tt:AutoStart>false</tt:AutoStart>"
        "</tt:Multicast>"
        "<tt:SessionTimeout>PT60S</tt:SessionTimeout>"
        "</tt:VideoEncoderConfiguration>"
    )


def profile_xml(profile: OnvifProfile, element: str = "trt:Profiles") -> str:
    ptz = ptz_configuration_xml(profile.video_source) if profile.ptz else ""
    return (
        f'<{element} token={attr(profile.token)} fixed="true">'
        f"<tt:Name>{text(profile.name)}</tt:Name>"
        f"{_video_source_configuration(profile)}{_video_encoder_configuration(profile)}{ptz}"
        f"</{element}>"
    )


def _profile_from(ctx: OperationContext, request: SoapRequest) -> OnvifProfile:
    token = child_text(request.body, TRT, "ProfileToken")
    if not token:
        raise SoapFault("ProfileToken is required", detail_subcode="ter:NoProfile")
    try:
        return ctx.state.profile(token)
    except KeyError:
        raise SoapFault("no such profile", detail_subcode="ter:NoProfile") from None


async def get_profiles(ctx: OperationContext, _request: SoapRequest) -> str:
    profiles = "".join(profile_xml(profile) for profile in ctx.state.profiles)
    return f"<trt:GetProfilesResponse>{profiles}</trt:GetProfilesResponse>"


async def get_profile(ctx: OperationContext, request: SoapRequest) -> str:
    profile = _profile_from(ctx, request)
    return f"<trt:GetProfileResponse>{profile_xml(profile, 'trt:Profile')}</trt:GetProfileResponse>"


async def get_stream_uri(ctx: OperationContext, request: SoapRequest) -> str:
    profile = _profile_from(ctx, request)
    setup = child(request.body, TRT, "StreamSetup")
    if setup is not None:
        stream = child_text(setup, TT, "Stream")
        transport = child(setup, TT, "Transport")
        protocol = child_text(transport, TT, "Protocol") if transport is not None else None
        if stream not in (None, "RTP-Unicast") or protocol not in (None, "RTSP", "UDP", "TCP"):
            raise SoapFault(
                "only RTP-Unicast over RTSP is offered",
                detail_subcode="ter:InvalidStreamSetup",
            )
    return (
        "<trt:GetStreamUriResponse><trt:MediaUri>"
        f"<tt:Uri>{text(profile.stream_uri)}</tt:Uri>"
        "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>"
        "<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot>"
        "<tt:Timeout>PT0S</tt:Timeout>"
        "</trt:MediaUri></trt:GetStreamUriResponse>"
    )


async def get_snapshot_uri(_ctx: OperationContext, _request: SoapRequest) -> str:
    raise SoapFault(
        "snapshots are not offered",
        subcode="ter:ActionNotSupported",
        detail_subcode="ter:SnapshotNotSupported",
        sender=False,
    )


async def get_video_sources(ctx: OperationContext, _request: SoapRequest) -> str:
    sources = []
    for source in ctx.state.video_sources:
        best = max(
            (p for p in ctx.state.profiles if p.video_source == source),
            key=lambda p: p.width * p.height,
        )
        sources.append(
            f"<trt:VideoSources token={attr(source)}><tt:Framerate>{best.framerate}</tt:Framerate>"
            f"<tt:Resolution><tt:Width>{best.width}</tt:Width><tt:Height>{best.height}"
            "</tt:Height></tt:Resolution></trt:VideoSources>"
        )
    return f"<trt:GetVideoSourcesResponse>{''.join(sources)}</trt:GetVideoSourcesResponse>"


async def get_service_capabilities(_ctx: OperationContext, _request: SoapRequest) -> str:
    return (
        "<trt:GetServiceCapabilitiesResponse>"
        '<trt:Capabilities SnapshotUri="false" Rotation="false" VideoSourceMode="false" '
        'OSD="false">'
        '<trt:ProfileCapabilities MaximumNumberOfProfiles="8"/>'
        '<trt:StreamingCapabilities RTPMulticast="false" RTP_TCP="true" RTP_RTSP_TCP="true" '
        'NonAggregateControl="false" NoRTSPStreaming="false"/>'
        "</trt:Capabilities></trt:GetServiceCapabilitiesResponse>"
    )


OPERATIONS: dict[tuple[str, str], Handler] = {
    qname("trt", "GetProfiles"): get_profiles,
    qname("trt", "GetProfile"): get_profile,
    qname("trt", "GetStreamUri"): get_stream_uri,
    qname("trt", "GetSnapshotUri"): get_snapshot_uri,
    qname("trt", "GetVideoSources"): get_video_sources,
    qname("trt", "GetServiceCapabilities"): get_service_capabilities,
}
