"""Rewriting what the recorder says so the app learns nothing about the recorder.

`UrlMapper` maps the app's public URLs (`rtsp://<what it dialled>/live/1/main`)
to the recorder's stream URL and back; `rewrite_response` applies it to every
URL-bearing part of an answer (Content-Base, Content-Location, RTP-Info, SDP
`a=control`), keeps only whitelisted headers, hides addresses in SDP and
Transport, and drops bodies that are neither SDP nor keep-alive text.  Pure
functions of their inputs; no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from nvrshare.agent.sessions.rtsp_message import RtspResponse

__all__ = ["SUFFIX", "UrlMapper", "rewrite_response"]

# A track path below a stream URL: plain segments, no escapes, no queries.
SUFFIX = re.compile(r"[A-Za-z0-9_.=-]+(?:/[A-Za-z0-9_.=-]+)*/?")

_RESPONSE_HEADERS = frozenset(
    {
        "cseq", "session", "transport", "content-type", "content-base", "content-location",
        "public", "range", "rtp-info", "date", "scale", "speed", "cache-control", "expires",
        "last-modified", "unsupported",
    }
)  # fmt: skip


def _split(url: str) -> tuple[str, str, str, str] | None:
    """(scheme, "host:port", path, query) of an rtsp URL, without userinfo; None if bad."""
    try:
        parts = urlsplit(url)
        port = parts.port or 554
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    return parts.scheme.lower(), f"{host}:{port}", parts.path, parts.query


@dataclass(slots=True)
class UrlMapper:
    """Maps public URLs to the recorder's and back.

    Recorders name tracks in two ways: appended to the stream URL as a string
    (Hikvision: `.../tracks/101?starttime=...&endtime=.../trackID=1`), or
    below its path with the query repeated (`.../101/trackID=1?...`).  The
    first maps by string prefix; the second is learned from the URLs the
    recorder sends (SDP, Content-Base) so requests go back exactly as named.
    """

    upstream_url: str
    public_path: str
    authority: str = "127.0.0.1"
    _scheme: str = field(init=False)
    _netloc: str = field(init=False)
    _path: str = field(init=False)
    _rest: str = field(init=False)
    _learned: dict[str, str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        split = _split(self.upstream_url)
        if split is None:
            raise ValueError("unparseable recorder URL")
        self._scheme, self._netloc, path, query = split
        self._path = path.rstrip("/")
        self._rest = path + (f"?{query}" if query else "")

    @property
    def upstream_base(self) -> str:
        """The recorder's stream URL without credentials (what requests are sent to)."""
        return f"{self._scheme}://{self._netloc}{self._rest}"

    @property
    def public_base(self) -> str:
        return f"rtsp://{self.authority}{self.public_path}"

    def to_upstream(self, suffix: str) -> str:
        """`suffix` is "" or "/<track path>" below the public path."""
        learned = self._learned.get(suffix.rstrip("/"))
        return learned if learned is not None else self.upstream_base + suffix

    def to_public(self, url: str) -> str:
        """The public form of a URL the recorder sent; unknown URLs map to the base."""
        split = _split(url)
        if split is None or split[1] != self._netloc:
            return self.public_base
        _, _, path, query = split
        rest = path + (f"?{query}" if query else "")
        if rest.startswith(self._rest):
            suffix = rest[len(self._rest) :]
            if suffix in {"", "/"} or SUFFIX.fullmatch(suffix.lstrip("/")):
                return self.public_base + suffix
            return self.public_base
        if path.startswith(self._path + "/"):
            suffix = path[len(self._path) :]
            if SUFFIX.fullmatch(suffix.lstrip("/")) and ".." not in suffix.split("/"):
                self._learned[suffix.rstrip("/")] = f"{self._scheme}://{self._netloc}{rest}"
                return self.public_base + suffix
        return self.public_base


def _rewrite_rtp_info(value: str, mapper: UrlMapper) -> str:
    streams = []
    for stream in value.split(","):
        params = []
        for param in stream.split(";"):
            key, sep, val = param.strip().partition("=")
            if key.lower() == "url" and sep:
                val = mapper.to_public(val.strip().strip('"'))
            params.append(f"{key}={val}" if sep else key)
        streams.append(";".join(params))
    return ",".join(streams)


def _scrub_transport(value: str) -> str:
    params = [p.strip() for p in value.split(";")]
    kept = [p for p in params if p.split("=", 1)[0].lower() not in {"source", "destination"}]
    return ";".join(kept)


def _rewrite_sdp(body: bytes, mapper: UrlMapper) -> bytes:
    lines = []
    for original in body.decode("utf-8", "replace").splitlines():
        line = original
        if line.startswith("a=control:"):
            control = line[len("a=control:") :].strip()
            if "://" in control:
                line = "a=control:" + mapper.to_public(control)
        elif line.startswith("o="):
            fields = line[2:].split()
            if len(fields) == 6:
                line = f"o=- {fields[1]} {fields[2]} IN IP4 0.0.0.0"
        elif line.startswith("c="):
            line = "c=IN IP4 0.0.0.0"
        elif line.startswith(("u=", "e=", "p=")):
            continue
        lines.append(line)
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def rewrite_response(response: RtspResponse, mapper: UrlMapper) -> RtspResponse:
    """The recorder's response as the app may see it: whitelisted headers, public URLs."""
    headers: list[tuple[str, str]] = []
    for name, raw in response.headers:
        lowered, value = name.lower(), raw
        if lowered not in _RESPONSE_HEADERS:
            continue
        if lowered in {"content-base", "content-location"}:
            value = mapper.to_public(value)
        elif lowered == "rtp-info":
            value = _rewrite_rtp_info(value, mapper)
        elif lowered == "transport":
            value = _scrub_transport(value)
        headers.append((name, value))
    body = response.body
    content_type = (response.header("Content-Type") or "").lower()
    if body and content_type.startswith("application/sdp"):
        body = _rewrite_sdp(body, mapper)
    elif body and not content_type.startswith(("text/parameters", "text/plain")):
        body = b""
    return RtspResponse(
        status=response.status, reason=response.reason, headers=tuple(headers), body=body
    )
