"""Device management service: clock, capabilities / services (absolute XAddrs), identity."""

from __future__ import annotations

from .context import Handler, OperationContext, qname
from .soap import NAMESPACES, SoapRequest, text, xs_bool

# Operations a client may call before it can authenticate (its clock offset feeds the digest).
UNAUTHENTICATED = frozenset({qname("tds", "GetSystemDateAndTime")})

_SERVICES = (
    # (namespace, path, major, minor)
    (NAMESPACES["tds"], "device_service", 2, 60),
    (NAMESPACES["trt"], "media_service", 2, 60),
    (NAMESPACES["tptz"], "ptz_service", 2, 60),
    (NAMESPACES["tev"], "events_service", 2, 60),
)
# Profile G edge storage, offered only by cameras composed with a recording archive.
_STORAGE_SERVICES = (
    (NAMESPACES["trc"], "recording_service", 2, 60),
    (NAMESPACES["tse"], "search_service", 2, 60),
    (NAMESPACES["trp"], "replay_service", 2, 60),
)


async def get_system_date_and_time(ctx: OperationContext, _request: SoapRequest) -> str:
    now = ctx.wall_now
    return (
        "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
        "<tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>"
        "<tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone>"
        "<tt:UTCDateTime>"
        f"<tt:Time><tt:Hour>{now.hour}</tt:Hour><tt:Minute>{now.minute}</tt:Minute>"
        f"<tt:Second>{now.second}</tt:Second></tt:Time>"
        f"<tt:Date><tt:Year>{now.year}</tt:Year><tt:Month>{now.month}</tt:Month>"
        f"<tt:Day>{now.day}</tt:Day></tt:Date>"
        "</tt:UTCDateTime>"
        "</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
    )


async def get_capabilities(ctx: OperationContext, _request: SoapRequest) -> str:
    # Category is ignored: answering everything is what most cameras do for All.
    return (
        "<tds:GetCapabilitiesResponse><tds:Capabilities>"
        f"<tt:Device><tt:XAddr>{text(ctx.xaddr('device_service'))}</tt:XAddr>"
        "<tt:Network><tt:IPFilter>false</tt:IPFilter><tt:ZeroConfiguration>false"
        "</tt:ZeroConfiguration><tt:IPVersion6>false</tt:IPVersion6>"
        "<tt:DynDNS>false</tt:DynDNS></tt:Network>"
        "<tt:System><tt:DiscoveryResolve>false</tt:DiscoveryResolve>"
        "<tt:DiscoveryBye>false</tt:DiscoveryBye><tt:RemoteDiscovery>false</tt:RemoteDiscovery>"
        "<tt:SystemBackup>false</tt:SystemBackup><tt:SystemLogging>false</tt:SystemLogging>"
        "<tt:FirmwareUpgrade>false</tt:FirmwareUpgrade>"
        "<tt:SupportedVersions><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor>"
        "</tt:SupportedVersions></tt:System>"
        "</tt:Device>"
        f"<tt:Events><tt:XAddr>{text(ctx.xaddr('events_service'))}</tt:XAddr>"
        "<tt:WSSubscriptionPolicySupport>false</tt:WSSubscriptionPolicySupport>"
        "<tt:WSPullPointSupport>true</tt:WSPullPointSupport>"
        "<tt:WSPausableSubscriptionManagerInterfaceSupport>false"
        "</tt:WSPausableSubscriptionManagerInterfaceSupport></tt:Events>"
        f"<tt:Media><tt:XAddr>{text(ctx.xaddr('media_service'))}</tt:XAddr>"
        "<tt:StreamingCapabilities><tt:RTPMulticast>false</tt:RTPMulticast>"
        "<tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP>"
        "</tt:StreamingCapabilities></tt:Media>"
        f"<tt:PTZ><tt:XAddr>{text(ctx.xaddr('ptz_service'))}</tt:XAddr></tt:PTZ>"
        f"{_storage_capabilities(ctx)}"
        "</tds:Capabilities></tds:GetCapabilitiesResponse>"
    )


def _storage_capabilities(ctx: OperationContext) -> str:
    """The Extension block older clients read the Profile G XAddrs from."""
    if ctx.state.recordings is None:
        return ""
    return (
        "<tt:Extension>"
        f"<tt:Recording><tt:XAddr>{text(ctx.xaddr('recording_service'))}</tt:XAddr>"
        "<tt:ReceiverSource>false</tt:ReceiverSource>"
        "<tt:MediaProfileSource>true</tt:MediaProfileSource>"
        "<tt:DynamicRecordings>false</tt:DynamicRecordings>"
        "<tt:DynamicTracks>false</tt:DynamicTracks>"
        "<tt:MaxStringLength>64</tt:MaxStringLength></tt:Recording>"
        f"<tt:Search><tt:XAddr>{text(ctx.xaddr('search_service'))}</tt:XAddr>"
        "<tt:MetadataSearch>false</tt:MetadataSearch></tt:Search>"
        f"<tt:Replay><tt:XAddr>{text(ctx.xaddr('replay_service'))}</tt:XAddr></tt:Replay>"
        "</tt:Extension>"
    )


async def get_services(ctx: OperationContext, _request: SoapRequest) -> str:
    # IncludeCapability is ignored: each service answers its own GetServiceCapabilities.
    services = "".join(
        f"<tds:Service><tds:Namespace>{text(namespace)}</tds:Namespace>"
        f"<tds:XAddr>{text(ctx.xaddr(path))}</tds:XAddr>"
        f"<tds:Version><tt:Major>{major}</tt:Major><tt:Minor>{minor}</tt:Minor></tds:Version>"
        "</tds:Service>"
        for namespace, path, major, minor in (
            _SERVICES + (_STORAGE_SERVICES if ctx.state.recordings is not None else ())
        )
    )
    return f"<tds:GetServicesResponse>{services}</tds:GetServicesResponse>"


async def get_service_capabilities(_ctx: OperationContext, _request: SoapRequest) -> str:
    return (
        "<tds:GetServiceCapabilitiesResponse><tds:Capabilities>"
        '<tds:Network IPFilter="false" ZeroConfiguration="false" IPVersion6="false" '
        'DynDNS="false" NTP="1" HostnameFromDHCP="false"/>'
        '<tds:Security TLS1.0="false" TLS1.1="false" TLS1.2="false" OnboardKeyGeneration="false" '
        'AccessPolicyConfig="false" DefaultAccessPolicy="false" Dot1X="false" '
        'RemoteUserHandling="false" X.509Token="false" SAMLToken="false" KerberosToken="false" '
        'UsernameToken="true" HttpDigest="false" RELToken="false"/>'
        '<tds:System DiscoveryResolve="false" DiscoveryBye="false" RemoteDiscovery="false" '
        'SystemBackup="false" SystemLogging="false" FirmwareUpgrade="false" '
        'HttpFirmwareUpgrade="false" HttpSystemBackup="false" HttpSystemLogging="false" '
        'HttpSupportInformation="false"/>'
        "</tds:Capabilities></tds:GetServiceCapabilitiesResponse>"
    )


async def get_device_information(ctx: OperationContext, _request: SoapRequest) -> str:
    device = ctx.state.device
    return (
        "<tds:GetDeviceInformationResponse>"
        f"<tds:Manufacturer>{text(device.manufacturer)}</tds:Manufacturer>"
        f"<tds:Model>{text(device.model)}</tds:Model>"
        f"<tds:FirmwareVersion>{text(device.firmware_version)}</tds:FirmwareVersion>"
        f"<tds:SerialNumber>{text(device.serial_number)}</tds:SerialNumber>"
        f"<tds:HardwareId>{text(device.hardware_id)}</tds:HardwareId>"
        "</tds:GetDeviceInformationResponse>"
    )


async def get_hostname(ctx: OperationContext, _request: SoapRequest) -> str:
    return (
        "<tds:GetHostnameResponse><tds:HostnameInformation>"
        f"<tt:FromDHCP>false</tt:FromDHCP><tt:Name>{text(ctx.state.device.hostname)}</tt:Name>"
        "</tds:HostnameInformation></tds:GetHostnameResponse>"
    )


async def get_network_interfaces(ctx: OperationContext, _request: SoapRequest) -> str:
    return (
        '<tds:GetNetworkInterfacesResponse><tds:NetworkInterfaces token="eth0">'
        "<tt:Enabled>true</tt:Enabled>"
        f"<tt:Info><tt:Name>eth0</tt:Name><tt:HwAddress>{text(ctx.state.device.mac)}"
        "</tt:HwAddress><tt:MTU>1500</tt:MTU></tt:Info>"
        "<tt:IPv4><tt:Enabled>true</tt:Enabled><tt:Config>"
        "<tt:Manual><tt:Address>127.0.0.1</tt:Address><tt:PrefixLength>8</tt:PrefixLength>"
        f"</tt:Manual><tt:DHCP>{xs_bool(False)}</tt:DHCP></tt:Config></tt:IPv4>"
        "</tds:NetworkInterfaces></tds:GetNetworkInterfacesResponse>"
    )


async def get_scopes(ctx: OperationContext, _request: SoapRequest) -> str:
    scopes = (
        "onvif://www.onvif.org/type/video_encoder",
        "onvif://www.onvif.org/type/ptz",
        "onvif://www.onvif.org/Profile/Streaming",
        f"onvif://www.onvif.org/hardware/{ctx.state.device.model.replace(' ', '_')}",
        f"onvif://www.onvif.org/name/{ctx.state.device.hostname}",
    ) + (("onvif://www.onvif.org/Profile/G",) if ctx.state.recordings is not None else ())
    items = "".join(
        f"<tds:Scopes><tt:ScopeDef>Fixed</tt:ScopeDef><tt:ScopeItem>{text(scope)}</tt:ScopeItem>"
        "</tds:Scopes>"
        for scope in scopes
    )
    return f"<tds:GetScopesResponse>{items}</tds:GetScopesResponse>"


OPERATIONS: dict[tuple[str, str], Handler] = {
    qname("tds", "GetSystemDateAndTime"): get_system_date_and_time,
    qname("tds", "GetCapabilities"): get_capabilities,
    qname("tds", "GetServices"): get_services,
    qname("tds", "GetServiceCapabilities"): get_service_capabilities,
    qname("tds", "GetDeviceInformation"): get_device_information,
    qname("tds", "GetHostname"): get_hostname,
    qname("tds", "GetNetworkInterfaces"): get_network_interfaces,
    qname("tds", "GetScopes"): get_scopes,
}
