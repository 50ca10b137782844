"""Search service (ver10, Profile G): FindRecordings, paged results, EndSearch, summary.

FindRecordings starts a job and returns its token; GetRecordingSearchResults
hands out pages (at most MaxResults, capped at MAX_PAGE) until the job is
Completed; EndSearch ends it (early or not). Jobs expire KeepAliveTime
after their last use. The Scope's IncludedSources / IncludedRecordings narrow
the results; RecordingInformationFilter (XPath) is not evaluated.
"""

from __future__ import annotations

from lxml import etree

from .context import Handler, OperationContext, qname
from .recordings import RecordedSegment, RecordingArchive
from .soap import NAMESPACES, SoapFault, SoapRequest, child, child_text, parse_duration, text
from .soap import xs_datetime as when

TSE = NAMESPACES["tse"]
TT = NAMESPACES["tt"]

MAX_KEEP_ALIVE = 600.0
MAX_PAGE = 100
_MAX_SCOPE_ITEMS = 64
_MAX_TOKEN = 128


def archive(ctx: OperationContext) -> RecordingArchive:
    """The camera's edge storage; a camera without one does not offer these services."""
    if ctx.state.recordings is None:
        raise SoapFault("no edge storage", subcode="ter:ActionNotSupported", sender=False)
    return ctx.state.recordings


def recording_information(segment: RecordedSegment) -> str:
    source, start, end = segment.video_source, when(segment.start), when(segment.end)
    return (
        "<tt:RecordingInformation>"
        f"<tt:RecordingToken>{text(segment.token)}</tt:RecordingToken>"
        f"<tt:Source><tt:SourceId>{text(source)}</tt:SourceId><tt:Name>{text(source)}</tt:Name>"
        "<tt:Location></tt:Location><tt:Description>continuous</tt:Description>"
        f"<tt:Address>{text(source)}</tt:Address></tt:Source>"
        f"<tt:EarliestRecording>{start}</tt:EarliestRecording>"
        f"<tt:LatestRecording>{end}</tt:LatestRecording>"
        "<tt:Content>continuous</tt:Content>"
        "<tt:Track><tt:TrackToken>VIDEO001</tt:TrackToken><tt:TrackType>Video</tt:TrackType>"
        f"<tt:Description>video</tt:Description><tt:DataFrom>{start}</tt:DataFrom>"
        f"<tt:DataTo>{end}</tt:DataTo></tt:Track>"
        "<tt:RecordingStatus>Stopped</tt:RecordingStatus>"
        "</tt:RecordingInformation>"
    )


def _int(request: SoapRequest, name: str, default: int) -> int:
    raw = child_text(request.body, TSE, name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SoapFault(f"{name} is not an integer") from None
    if value < 0:
        raise SoapFault(f"{name} must not be negative")
    return value


def _scope_tokens(scope: etree._Element, name: str) -> set[str]:
    """Tokens of IncludedSources (their Token child) or IncludedRecordings (their text)."""
    tokens: set[str] = set()
    for element in scope.findall(f"{{{TT}}}{name}")[:_MAX_SCOPE_ITEMS]:
        token = child_text(element, TT, "Token") if name == "IncludedSources" else element.text
        if token and len(token) <= _MAX_TOKEN:
            tokens.add(token.strip())
    return tokens


async def find_recordings(ctx: OperationContext, request: SoapRequest) -> str:
    store = archive(ctx)
    scope = child(request.body, TSE, "Scope")
    if scope is None:
        raise SoapFault("Scope is required")
    keep_alive_text = child_text(request.body, TSE, "KeepAliveTime")
    if not keep_alive_text:
        raise SoapFault("KeepAliveTime is required")
    keep_alive = min(parse_duration(keep_alive_text), MAX_KEEP_ALIVE)
    max_matches = _int(request, "MaxMatches", 0)  # absent or 0: no limit asked
    sources = _scope_tokens(scope, "IncludedSources")
    tokens = _scope_tokens(scope, "IncludedRecordings")
    results = [
        segment
        for segment in store.recordings(ctx.state.video_sources)
        if (not sources or segment.video_source in sources)
        and (not tokens or segment.token in tokens)
    ]
    if max_matches:
        results = results[:max_matches]
    job = ctx.state.searches.start(results, max(keep_alive, 1.0), ctx.now)
    return (
        "<tse:FindRecordingsResponse>"
        f"<tse:SearchToken>{text(job.token)}</tse:SearchToken>"
        "</tse:FindRecordingsResponse>"
    )


def _job_token(request: SoapRequest) -> str:
    token = child_text(request.body, TSE, "SearchToken")
    if not token:
        raise SoapFault("SearchToken is required")
    return token


async def get_recording_search_results(ctx: OperationContext, request: SoapRequest) -> str:
    archive(ctx)
    token = _job_token(request)
    page_size = min(_int(request, "MaxResults", MAX_PAGE) or MAX_PAGE, MAX_PAGE)
    wait = child_text(request.body, TSE, "WaitTime")
    if wait:
        parse_duration(wait)  # validated; results are always ready, so nobody waits
    job = ctx.state.searches.get(token, ctx.now)
    if job is None:
        raise SoapFault("no such search", detail_subcode="ter:InvalidToken")
    page = job.results[job.position : job.position + page_size]
    job.position += len(page)
    done = job.position >= len(job.results)
    items = "".join(recording_information(segment) for segment in page)
    return (
        "<tse:GetRecordingSearchResultsResponse><tse:ResultList>"
        f"<tt:SearchState>{'Completed' if done else 'Searching'}</tt:SearchState>{items}"
        "</tse:ResultList></tse:GetRecordingSearchResultsResponse>"
    )


async def end_search(ctx: OperationContext, request: SoapRequest) -> str:
    archive(ctx)
    if not ctx.state.searches.end(_job_token(request)):
        raise SoapFault("no such search", detail_subcode="ter:InvalidToken")
    return (
        f"<tse:EndSearchResponse><tse:Endpoint>{when(ctx.wall_now)}</tse:Endpoint>"
        "</tse:EndSearchResponse>"
    )


async def get_recording_summary(ctx: OperationContext, _request: SoapRequest) -> str:
    recordings = archive(ctx).recordings(ctx.state.video_sources)
    first = min((s.start for s in recordings), default=ctx.wall_now)
    last = max((s.end for s in recordings), default=ctx.wall_now)
    return (
        "<tse:GetRecordingSummaryResponse><tse:Summary>"
        f"<tt:DataFrom>{when(first)}</tt:DataFrom><tt:DataUntil>{when(last)}</tt:DataUntil>"
        f"<tt:NumberRecordings>{len(recordings)}</tt:NumberRecordings>"
        "</tse:Summary></tse:GetRecordingSummaryResponse>"
    )


async def get_service_capabilities(ctx: OperationContext, _request: SoapRequest) -> str:
    archive(ctx)
    return (
        "<tse:GetServiceCapabilitiesResponse>"
        '<tse:Capabilities MetadataSearch="false" GeneralStartEvents="false"/>'
        "</tse:GetServiceCapabilitiesResponse>"
    )


OPERATIONS: dict[tuple[str, str], Handler] = {
    qname("tse", "FindRecordings"): find_recordings,
    qname("tse", "GetRecordingSearchResults"): get_recording_search_results,
    qname("tse", "EndSearch"): end_search,
    qname("tse", "GetRecordingSummary"): get_recording_summary,
    qname("tse", "GetServiceCapabilities"): get_service_capabilities,
}
