"""The broker package's exceptions: one root, split by whose fault it is."""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "BrokerPortTaken",
    "BrokerProcessError",
    "BrokerUnavailable",
    "ProvisioningError",
    "ProvisioningRefused",
]


class BrokerError(Exception):
    """Root of every error raised by `nvrshare.relay.broker`."""


class BrokerUnavailable(BrokerError):
    """The broker could not be reached or did not answer in time (retry later)."""


class ProvisioningRefused(BrokerError):
    """The caller asked for something invalid (bad serial, bad client id); nothing changed."""


class ProvisioningError(BrokerError):
    """The broker refused or failed a provisioning command; `detail` is its answer."""

    def __init__(self, command: str, detail: str) -> None:
        super().__init__(f"{command}: {detail}")
        self.command = command
        self.detail = detail


class BrokerProcessError(BrokerError):
    """The managed mosquitto process could not be started or kept running."""


class BrokerPortTaken(BrokerProcessError):
    """Another process listens on the broker's port, or took it before mosquitto bound it."""
