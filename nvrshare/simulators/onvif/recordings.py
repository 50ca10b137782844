"""Edge storage behind the simulated Search / Replay / Recording services (Profile G).

The composer hands the camera a `RecordingArchive`: which segments each video
source has recorded (the same deterministic index the ISAPI recorder serves,
see `SimDevice.search_recordings`) and the RTSP URL that replays a span. Each
segment is one ONVIF recording, as Axis edge storage does (a new recording per
recording block); its token names the source and the start, so it survives
restarts. Search jobs live in `SearchJobs`: bounded in number and expired after
their KeepAliveTime, like a camera's.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["RecordedSegment", "RecordingArchive", "SearchJob", "SearchJobs"]

_TOKEN = re.compile(r"^REC_(?P<source>[A-Za-z0-9_.-]{1,64})_(?P<start>\d{1,12})$")


@dataclass(frozen=True, kw_only=True, slots=True)
class RecordedSegment:
    """One recording: a stretch of one video source's video."""

    video_source: str
    start: dt.datetime
    end: dt.datetime

    @property
    def token(self) -> str:
        return f"REC_{self.video_source}_{int(self.start.timestamp())}"


@dataclass(frozen=True, kw_only=True, slots=True)
class RecordingArchive:
    """What a composer provides: segments per video source, and replay URLs.

    segments(video_source): every retained segment, oldest first.
    replay_uri(video_source, start, end): the RTSP URL replaying that span.
    """

    segments: Callable[[str], Sequence[tuple[dt.datetime, dt.datetime]]]
    replay_uri: Callable[[str, dt.datetime, dt.datetime], str]

    def recordings(self, video_sources: Sequence[str]) -> list[RecordedSegment]:
        return [
            RecordedSegment(video_source=source, start=start, end=end)
            for source in video_sources
            for start, end in self.segments(source)
        ]

    def find(self, token: str, video_sources: Sequence[str]) -> RecordedSegment | None:
        """The recording named by `token`, or None (unknown, malformed or expired)."""
        match = _TOKEN.match(token)
        if match is None or match["source"] not in video_sources:
            return None
        start = int(match["start"])
        return next(
            (
                RecordedSegment(video_source=match["source"], start=s, end=e)
                for s, e in self.segments(match["source"])
                if int(s.timestamp()) == start
            ),
            None,
        )


@dataclass(kw_only=True, slots=True)
class SearchJob:
    """One FindRecordings search: its results and how far the client has read them."""

    token: str
    results: list[RecordedSegment]
    keep_alive: float
    expires: float
    position: int = 0


@dataclass(kw_only=True, slots=True)
class SearchJobs:
    """Open searches, at most `limit`; expired ones are dropped when looked at."""

    limit: int = 16
    _jobs: dict[str, SearchJob] = field(default_factory=dict)

    def _expire(self, now: float) -> None:
        for token in [t for t, job in self._jobs.items() if job.expires <= now]:
            del self._jobs[token]

    def start(self, results: list[RecordedSegment], keep_alive: float, now: float) -> SearchJob:
        """A new job; None-free: when full, the job expiring first makes room."""
        self._expire(now)
        if len(self._jobs) >= self.limit:
            oldest = min(self._jobs.values(), key=lambda job: job.expires)
            del self._jobs[oldest.token]
        token = f"search-{secrets.token_hex(8)}"
        job = SearchJob(
            token=token, results=results, keep_alive=keep_alive, expires=now + keep_alive
        )
        self._jobs[token] = job
        return job

    def get(self, token: str, now: float) -> SearchJob | None:
        """The live job named `token` (its keep-alive restarts), or None."""
        self._expire(now)
        job = self._jobs.get(token)
        if job is not None:
            job.expires = now + job.keep_alive
        return job

    def end(self, token: str) -> bool:
        return self._jobs.pop(token, None) is not None

    def __len__(self) -> int:
        return len(self._jobs)
