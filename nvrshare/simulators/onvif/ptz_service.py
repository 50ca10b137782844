"""PTZ service (ver20): moves, status and presets, backed by `PtzHead`."""

from __future__ import annotations

from lxml import etree

from .context import Handler, OperationContext, qname
from .media_service import (
    PAN_TILT_POSITION,
    PAN_TILT_TRANSLATION,
    PAN_TILT_VELOCITY,
    ZOOM_POSITION,
    ZOOM_TRANSLATION,
    ZOOM_VELOCITY,
    ptz_configuration_xml,
    ptz_node_token,
)
from .ptz import PtzError, PtzHead, PtzPosition, PtzTooManyPresets
from .soap import (
    NAMESPACES,
    SoapFault,
    SoapRequest,
    attr,
    child,
    child_text,
    float_attr,
    parse_duration,
    text,
    xs_datetime,
)

TPTZ = NAMESPACES["tptz"]
TT = NAMESPACES["tt"]


def _head(ctx: OperationContext, request: SoapRequest) -> PtzHead:
    token = child_text(request.body, TPTZ, "ProfileToken")
    if not token:
        raise SoapFault("ProfileToken is required", detail_subcode="ter:NoProfile")
    try:
        return ctx.state.ptz_head(token)
    except KeyError:
        raise SoapFault("no PTZ on that profile", detail_subcode="ter:NoProfile") from None


def _vector(
    element: etree._Element | None, spaces: tuple[str, str]
) -> tuple[float | None, float | None, float | None]:
    """(x, y, zoom) from a PTZVector / PTZSpeed element; None for an absent axis.

    Only the generic spaces are offered; a vector in any other space is refused
    rather than misread (an omitted space means the configuration's default,
    which is the generic one here).
    """
    if element is None:
        return None, None, None
    pan_tilt = child(element, TT, "PanTilt")
    zoom = child(element, TT, "Zoom")
    for axis, allowed in ((pan_tilt, spaces[0]), (zoom, spaces[1])):
        space = axis.get("space") if axis is not None else None
        if space is not None and space.strip() != allowed:
            raise SoapFault(
                "only the generic PTZ spaces are supported", detail_subcode="ter:SpaceNotSupported"
            )
    return float_attr(pan_tilt, "x"), float_attr(pan_tilt, "y"), float_attr(zoom, "x")


def _position_xml(position: PtzPosition) -> str:
    return (
        f'<tt:PanTilt x="{position.pan:.6f}" y="{position.tilt:.6f}" space="{PAN_TILT_POSITION}"/>'
        f'<tt:Zoom x="{position.zoom:.6f}" space="{ZOOM_POSITION}"/>'
    )


def _ptz_error(exc: PtzError) -> SoapFault:
    return SoapFault(str(exc), detail_subcode="ter:NoToken")


async def continuous_move(ctx: OperationContext, request: SoapRequest) -> str:
    head = _head(ctx, request)
    pan, tilt, zoom = _vector(
        child(request.body, TPTZ, "Velocity"), (PAN_TILT_VELOCITY, ZOOM_VELOCITY)
    )
    raw_timeout = child_text(request.body, TPTZ, "Timeout")
    timeout = parse_duration(raw_timeout) if raw_timeout else None
    try:
        head.continuous_move(ctx.now, pan=pan, tilt=tilt, zoom=zoom, timeout=timeout)
    except PtzError as exc:
        raise SoapFault(str(exc)) from None
    return "<tptz:ContinuousMoveResponse/>"


def _flag(request: SoapRequest, name: str) -> bool:
    value = child_text(request.body, TPTZ, name)
    return value is None or value.lower() in ("true", "1")


async def stop(ctx: OperationContext, request: SoapRequest) -> str:
    head = _head(ctx, request)
    head.stop(ctx.now, pan_tilt=_flag(request, "PanTilt"), zoom=_flag(request, "Zoom"))
    return "<tptz:StopResponse/>"


async def absolute_move(ctx: OperationContext, request: SoapRequest) -> str:
    head = _head(ctx, request)
    here = head.position(ctx.now)
    pan, tilt, zoom = _vector(
        child(request.body, TPTZ, "Position"), (PAN_TILT_POSITION, ZOOM_POSITION)
    )
    target = PtzPosition(
        pan=here.pan if pan is None else pan,
        tilt=here.tilt if tilt is None else tilt,
        zoom=here.zoom if zoom is None else zoom,
    )
    try:
        head.absolute_move(ctx.now, target)
    except PtzError as exc:
        raise SoapFault(str(exc)) from None
    return "<tptz:AbsoluteMoveResponse/>"


async def relative_move(ctx: OperationContext, request: SoapRequest) -> str:
    head = _head(ctx, request)
    pan, tilt, zoom = _vector(
        child(request.body, TPTZ, "Translation"), (PAN_TILT_TRANSLATION, ZOOM_TRANSLATION)
    )
    try:
        head.relative_move(ctx.now, PtzPosition(pan=pan or 0.0, tilt=tilt or 0.0, zoom=zoom or 0.0))
    except PtzError as exc:
        raise SoapFault(str(exc)) from None
    return "<tptz:RelativeMoveResponse/>"


async def get_status(ctx: OperationContext, request: SoapRequest) -> str:
    head = _head(ctx, request)
    pan_tilt_moving, zoom_moving = head.moving(ctx.now)
    return (
        "<tptz:GetStatusResponse><tptz:PTZStatus>"
        f"<tt:Position>{_position_xml(head.position(ctx.now))}</tt:Position>"
        "<tt:MoveStatus>"
        f"<tt:PanTilt>{'MOVING' if pan_tilt_moving else 'IDLE'}</tt:PanTilt>"
        f"<tt:Zoom>{'MOVING' if zoom_moving else 'IDLE'}</tt:Zoom>"
        "</tt:MoveStatus>"
        f"<tt:UtcTime>{xs_datetime(ctx.wall_now)}</tt:UtcTime>"
        "</tptz:PTZStatus></tptz:GetStatusResponse>"
    )


async def get_presets(ctx: OperationContext, request: SoapRequest) -> str:
    head = _head(ctx, request)
    presets = "".join(
        f"<tptz:Preset token={attr(preset.token)}><tt:Name>{text(preset.name)}</tt:Name>"
        f"<tt:PTZPosition>{_position_xml(preset.position)}</tt:PTZPosition></tptz:Preset>"
        for preset in head.presets
    )
    return f"<tptz:GetPresetsResponse>{presets}</tptz:GetPresetsResponse>"


async def set_preset(ctx: OperationContext, request: SoapRequest) -> str:
    head = _head(ctx, request)
    name = child_text(request.body, TPTZ, "PresetName") or None
    token = child_text(request.body, TPTZ, "PresetToken") or None
    if name is not None and len(name) > 64:
        raise SoapFault("preset name too long", detail_subcode="ter:PresetName")
    try:
        token = head.set_preset(ctx.now, name=name, token=token)
    except PtzTooManyPresets as exc:
        raise SoapFault(
            str(exc), subcode="ter:Action", detail_subcode="ter:TooManyPresets", sender=False
        ) from None
    except PtzError as exc:
        raise _ptz_error(exc) from None
    return (
        f"<tptz:SetPresetResponse><tptz:PresetToken>{text(token)}</tptz:PresetToken>"
        "</tptz:SetPresetResponse>"
    )


async def goto_preset(ctx: OperationContext, request: SoapRequest) -> str:
    head = _head(ctx, request)
    try:
        head.goto_preset(ctx.now, child_text(request.body, TPTZ, "PresetToken") or "")
    except PtzError as exc:
        raise _ptz_error(exc) from None
    return "<tptz:GotoPresetResponse/>"


async def remove_preset(ctx: OperationContext, request: SoapRequest) -> str:
    head = _head(ctx, request)
    try:
        head.remove_preset(child_text(request.body, TPTZ, "PresetToken") or "")
    except PtzError as exc:
        raise _ptz_error(exc) from None
    return "<tptz:RemovePresetResponse/>"


async def get_configurations(ctx: OperationContext, _request: SoapRequest) -> str:
    sources = dict.fromkeys(p.video_source for p in ctx.state.profiles if p.ptz)
    configurations = "".join(
        ptz_configuration_xml(source, "tptz:PTZConfiguration") for source in sources
    )
    return f"<tptz:GetConfigurationsResponse>{configurations}</tptz:GetConfigurationsResponse>"


async def get_nodes(ctx: OperationContext, _request: SoapRequest) -> str:
    sources = dict.fromkeys(p.video_source for p in ctx.state.profiles if p.ptz)
    nodes = "".join(
        f'<tptz:PTZNode token={attr(ptz_node_token(source))} FixedHomePosition="false">'
        f"<tt:Name>{text(ptz_node_token(source))}</tt:Name>"
        "<tt:SupportedPTZSpaces/><tt:MaximumNumberOfPresets>32</tt:MaximumNumberOfPresets>"
        "<tt:HomeSupported>false</tt:HomeSupported></tptz:PTZNode>"
        for source in sources
    )
    return f"<tptz:GetNodesResponse>{nodes}</tptz:GetNodesResponse>"


async def get_service_capabilities(_ctx: OperationContext, _request: SoapRequest) -> str:
    return (
        "<tptz:GetServiceCapabilitiesResponse>"
        '<tptz:Capabilities EFlip="false" Reverse="false" GetCompatibleConfigurations="false" '
        'MoveStatus="true" StatusPosition="true"/>'
        "</tptz:GetServiceCapabilitiesResponse>"
    )


OPERATIONS: dict[tuple[str, str], Handler] = {
    qname("tptz", "ContinuousMove"): continuous_move,
    qname("tptz", "Stop"): stop,
    qname("tptz", "AbsoluteMove"): absolute_move,
    qname("tptz", "RelativeMove"): relative_move,
    qname("tptz", "GetStatus"): get_status,
    qname("tptz", "GetPresets"): get_presets,
    qname("tptz", "SetPreset"): set_preset,
    qname("tptz", "GotoPreset"): goto_preset,
    qname("tptz", "RemovePreset"): remove_preset,
    qname("tptz", "GetConfigurations"): get_configurations,
    qname("tptz", "GetNodes"): get_nodes,
    qname("tptz", "GetServiceCapabilities"): get_service_capabilities,
}
