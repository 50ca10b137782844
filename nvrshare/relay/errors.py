"""The relay's exceptions: one root, each subclass carries its wire code and HTTP status.

Services raise these; the HTTP layer renders any `RelayError` as
`{"error": {"code": ..., "message": ...}}` with `status`, so the rule "which
refusal means what" lives with the rule that refuses, not in the handlers.
Foreign exceptions (SQLAlchemy, asyncpg, OS errors) are converted once, at the
store boundary, into `StoreUnavailable`.
"""

from __future__ import annotations

__all__ = [
    "AccountExists",
    "AccountNotFound",
    "Conflict",
    "CrossRegionShare",
    "DeviceAlreadyBound",
    "DeviceNotFound",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "RelayConfigError",
    "RelayError",
    "SelfShare",
    "ShareExists",
    "StoreUnavailable",
    "Unauthorized",
]


class RelayError(Exception):
    """Root of every error raised by `nvrshare.relay`.

    `code` is a stable machine-readable string, `status` the HTTP status the API
    answers with, `retry_after` (seconds) is set when trying again later may work.
    """

    code = "internal_error"
    status = 500

    def __init__(
        self, message: str, *, code: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.retry_after = retry_after


class RelayConfigError(RelayError):
    """The relay's configuration is invalid (raised at start-up, never over HTTP)."""

    code = "config_error"


class InvalidRequest(RelayError):
    code = "invalid_request"
    status = 400


class PayloadTooLarge(InvalidRequest):
    code = "payload_too_large"
    status = 413


class Unauthorized(RelayError):
    code = "unauthorized"
    status = 401


class Forbidden(RelayError):
    code = "forbidden"
    status = 403


class CrossRegionShare(Forbidden):
    code = "cross_region_share"

    def __init__(self) -> None:
        super().__init__("cross-regional share is not allowed")


class SelfShare(InvalidRequest):
    code = "self_share"
    status = 422

    def __init__(self) -> None:
        super().__init__("you cannot share a device with yourself")


class NotFound(RelayError):
    code = "not_found"
    status = 404


class AccountNotFound(NotFound):
    code = "account_not_found"

    def __init__(self) -> None:
        super().__init__("the account doesn't exist")


class DeviceNotFound(NotFound):
    code = "device_not_found"


class Conflict(RelayError):
    code = "conflict"
    status = 409


class AccountExists(Conflict):
    code = "account_exists"


class DeviceAlreadyBound(Conflict):
    code = "device_already_bound"


class ShareExists(Conflict):
    code = "share_exists"


class RateLimited(RelayError):
    code = "rate_limited"
    status = 429


class StoreUnavailable(RelayError):
    """The store (or another dependency) cannot be reached: "network busy", try again."""

    code = "network_busy"
    status = 503

    def __init__(self, message: str = "network busy, try again later", *, retry_after: int = 5):
        super().__init__(message, retry_after=retry_after)
