"""The firmware shim's exceptions: one root, split by whose fault it is.

Backends convert every foreign exception (HTTP client errors, XML parse errors,
SOAP faults, timeouts) into one of these at their boundary, so nothing above the
shim ever sees aiohttp, zeep or ElementTree.  `ShimUsageError` means the caller
asked for something invalid (a PTZ speed out of range, a naive datetime); every
other class means the device, or the network to it, misbehaved.
"""

from __future__ import annotations

__all__ = [
    "AuthFailed",
    "BadResponse",
    "ConfigError",
    "DeviceBusy",
    "DeviceError",
    "DeviceTimeout",
    "DeviceUnreachable",
    "NoSuchChannel",
    "NotFound",
    "NotSupported",
    "ShimError",
    "ShimUsageError",
    "UntrustedDevice",
]


class ShimError(Exception):
    """Root of every error raised by `nvrshare.firmware_shim`."""


class ShimUsageError(ShimError, ValueError):
    """The caller misused the API (bad argument); nothing was sent to the device."""


class ConfigError(ShimUsageError):
    """A `RecorderConfig` is invalid: unknown backend, missing host, bad port..."""


class DeviceError(ShimError):
    """The device, or the path to it, failed or misbehaved."""


class DeviceUnreachable(DeviceError):
    """The device could not be reached (connection refused, reset, DNS failure)."""


class DeviceTimeout(DeviceError):
    """The device did not answer within the configured timeout."""


class AuthFailed(DeviceError):
    """The device rejected our credentials."""


class UntrustedDevice(AuthFailed):
    """The device's TLS identity did not verify (CA chain, or the pinned fingerprint)."""


class NotSupported(DeviceError):
    """The device or backend does not offer this function (or not on this channel)."""


class DeviceBusy(DeviceError):
    """The device refused because the resource is in use (e.g. talk already open)."""


class NotFound(DeviceError):
    """The device has no such object (preset, recording, talk channel...)."""


class NoSuchChannel(NotFound):
    """The channel number does not exist on this device."""


class BadResponse(DeviceError):
    """The device answered something we cannot accept: malformed, oversized, unexpected."""
