"""nvrshare: share an NVR camera by camera, permission by permission."""

__version__ = "0.1.0"
__all__ = ["__version__"]
