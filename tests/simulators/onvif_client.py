"""An unmodified onvif-zeep-async client connected to a simulated camera (test helper)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from onvif import ONVIFCamera


@asynccontextmanager
async def connected_camera(port: int, user: str, password: str) -> AsyncIterator[ONVIFCamera]:
    """What a real client does first: connect, read the service addresses, close after."""
    cam = ONVIFCamera("127.0.0.1", port, user, password, no_cache=True, adjust_time=True)
    try:
        await cam.update_xaddrs()
        yield cam
    finally:
        await cam.close()
