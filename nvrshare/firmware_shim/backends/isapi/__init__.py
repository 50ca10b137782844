"""The `isapi` backend: Hikvision ISAPI over HTTP Digest (aiohttp)."""

from nvrshare.firmware_shim.backends.isapi.recorder import IsapiRecorder, create

__all__ = ["IsapiRecorder", "create"]
