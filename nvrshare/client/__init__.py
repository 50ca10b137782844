"""client package: an async SDK for the relay's API, and the user-facing CLI verbs."""

from nvrshare.client.errors import (
    AccountNotFound,
    ClientError,
    NetworkBusy,
    NotFound,
    RateLimited,
    RelayRefused,
    RelayUnreachable,
    Unauthorized,
)
from nvrshare.client.sdk import RelayClient

__all__ = [
    "AccountNotFound",
    "ClientError",
    "NetworkBusy",
    "NotFound",
    "RateLimited",
    "RelayClient",
    "RelayRefused",
    "RelayUnreachable",
    "Unauthorized",
]
