"""Profile G edge storage: FindRecordings paging and RecordingInformation -> segments.

Real clients (ONVIF Device Manager, VMSs) search like this: FindRecordings with
an empty Scope (devices disagree on what a source token is, so filtering is
done here), a bounded MaxMatches and a KeepAliveTime; GetRecordingSearchResults
page by page until SearchState is Completed; then EndSearch. Each recording
becomes one segment spanning its video track's DataFrom..DataTo (or the
recording's Earliest..Latest when it lists no track): Axis-style devices keep
one recording per recorded block, Hikvision-style ones one per channel, which
then shows as one long segment.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from nvrshare.firmware_shim.errors import DeviceError, DeviceTimeout

__all__ = ["FoundRecording", "SearchBounds", "find_recordings", "recordings_from_results"]

_MAX_TOKEN = 64


@dataclass(frozen=True, kw_only=True, slots=True)
class FoundRecording:
    """One recording the device reported: its token, source and span."""

    token: str
    source_id: str
    start: dt.datetime
    end: dt.datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class SearchBounds:
    """How much one search may ask of the device.

    max_matches: MaxMatches sent, and the most results read back.
    page_size: MaxResults per GetRecordingSearchResults.
    max_pages: pages read at most (a device that never says Completed must not spin us).
    keep_alive: KeepAliveTime, seconds.
    deadline: seconds the whole search may take (each request has its own timeout too).
    """

    max_matches: int = 1000
    page_size: int = 100
    max_pages: int = 50
    keep_alive: float = 10.0
    deadline: float = 30.0


def _aware(value: Any) -> dt.datetime | None:
    if not isinstance(value, dt.datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _span(info: Any) -> tuple[dt.datetime, dt.datetime] | None:
    for track in getattr(info, "Track", None) or []:
        if str(getattr(track, "TrackType", "")) == "Video":
            start, end = _aware(track.DataFrom), _aware(track.DataTo)
            if start is not None and end is not None and end > start:
                return start, end
    start, end = _aware(info.EarliestRecording), _aware(info.LatestRecording)
    if start is not None and end is not None and end > start:
        return start, end
    return None  # nothing recorded yet (or a span that makes no sense): not playable


def recordings_from_results(infos: Iterable[Any]) -> list[FoundRecording]:
    """zeep RecordingInformation objects -> recordings with a usable span."""
    found: list[FoundRecording] = []
    for info in infos:
        token = str(info.RecordingToken or "").strip()
        span = _span(info)
        if not token or len(token) > _MAX_TOKEN or span is None:
            continue
        source = info.Source
        source_id = str(source.SourceId or "").strip() if source is not None else ""
        found.append(FoundRecording(token=token, source_id=source_id, start=span[0], end=span[1]))
    return found


Call = Callable[[str, str, Any], Awaitable[Any]]


async def find_recordings(call: Call, bounds: SearchBounds) -> list[FoundRecording]:
    """Every recording on the device (at most `bounds.max_matches`), via one search job.

    `call(service, operation, params)` performs one SOAP request (errors mapped).
    EndSearch is always attempted; its failure is not ours to report (the job
    also expires by itself after KeepAliveTime).
    """
    keep_alive = f"PT{max(1, round(bounds.keep_alive))}S"
    token = await call(
        "search",
        "FindRecordings",
        {"Scope": {}, "MaxMatches": bounds.max_matches, "KeepAliveTime": keep_alive},
    )
    token = str(token)
    infos: list[Any] = []
    try:
        async with asyncio.timeout(bounds.deadline):
            await _read_results(call, token, bounds, infos)
    except TimeoutError:
        raise DeviceTimeout(f"recordings search took over {bounds.deadline:g}s") from None
    finally:
        await _end_search(call, token)
    return recordings_from_results(infos[: bounds.max_matches])


async def _read_results(call: Call, token: str, bounds: SearchBounds, infos: list[Any]) -> None:
    for _page in range(bounds.max_pages):
        result = await call(
            "search",
            "GetRecordingSearchResults",
            {
                "SearchToken": token,
                "MinResults": 1,
                "MaxResults": bounds.page_size,
                "WaitTime": "PT1S",
            },
        )
        infos.extend(result.RecordingInformation or [])
        if str(result.SearchState) == "Completed" or len(infos) >= bounds.max_matches:
            break


async def _end_search(call: Call, token: str) -> None:
    # Already ended by the device, or forgotten: the job expires by itself anyway.
    with contextlib.suppress(DeviceError):
        await call("search", "EndSearch", {"SearchToken": token})
