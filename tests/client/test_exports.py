"""The client package's public names (pinned)."""

from __future__ import annotations

import nvrshare.client


def test_client_exports() -> None:
    assert sorted(nvrshare.client.__all__) == [
        "AccountNotFound", "ClientError", "NetworkBusy", "NotFound", "RateLimited",
        "RelayClient", "RelayRefused", "RelayUnreachable", "Unauthorized",
    ]  # fmt: skip
    for name in nvrshare.client.__all__:
        assert hasattr(nvrshare.client, name)
