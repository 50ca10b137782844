"""The session layer's exceptions: one root, split by whose fault it is.

`SessionRefused` carries the refusal reason that goes back on the wire (to the
relay, which tells the app); `RtspProtocolError` means an RTSP peer (the app
side through the tunnel, or the recorder) sent something the gate will not
pass; `UpstreamError` means the recorder could not be reached or refused us.
"""

from __future__ import annotations

__all__ = [
    "RtspProtocolError",
    "SessionError",
    "SessionRefused",
    "UpstreamError",
]


class SessionError(Exception):
    """Root of every error raised by `nvrshare.agent.sessions`."""


class SessionRefused(SessionError):
    """An offer or command was refused; `reason` is the stable wire string."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason
        self.message = message


class RtspProtocolError(SessionError):
    """An RTSP peer sent something malformed, oversized or not allowed."""


class UpstreamError(SessionError):
    """The recorder's RTSP server could not be reached, or failed the exchange."""
