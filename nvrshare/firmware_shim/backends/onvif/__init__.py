"""The `onvif` firmware_shim backend (onvif-zeep-async): see `backend.py`."""

from .backend import OnvifRecorder, create

__all__ = ["OnvifRecorder", "create"]
