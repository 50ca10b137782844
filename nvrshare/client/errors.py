"""The client's exceptions: one root; relay refusals keep the relay's code."""

from __future__ import annotations

__all__ = [
    "AccountNotFound",
    "ClientError",
    "NetworkBusy",
    "NotFound",
    "RateLimited",
    "RelayRefused",
    "RelayUnreachable",
    "Unauthorized",
]


class ClientError(Exception):
    """Root of every error raised by `nvrshare.client`."""


class RelayUnreachable(ClientError):
    """The relay could not be reached, or answered with something that is not the API."""


class RelayRefused(ClientError):
    """The relay answered with a typed error body; `code` is its machine-readable reason."""

    def __init__(
        self, status: int, code: str, message: str, *, retry_after: int | None = None
    ) -> None:
        super().__init__(f"{message} ({code})")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


class Unauthorized(RelayRefused):
    """No valid session: log in (again)."""


class NotFound(RelayRefused):
    pass


class AccountNotFound(NotFound):
    """Sharing failed: the account doesn't exist."""


class RateLimited(RelayRefused):
    pass


class NetworkBusy(RelayRefused):
    """The relay's store is unavailable: try again after `retry_after` seconds."""


def refusal(status: int, code: str, message: str, retry_after: int | None) -> RelayRefused:
    cls: type[RelayRefused] = RelayRefused
    if code == "network_busy":
        cls = NetworkBusy
    elif code == "account_not_found":
        cls = AccountNotFound
    elif status == 401:
        cls = Unauthorized
    elif status == 404:
        cls = NotFound
    elif status == 429:
        cls = RateLimited
    return cls(status, code, message, retry_after=retry_after)
