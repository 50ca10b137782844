"""The public names of the relay's service layer and API (pinned, so changes are deliberate)."""

from __future__ import annotations

import nvrshare.relay.api
import nvrshare.relay.errors
import nvrshare.relay.services
import nvrshare.relay.store


def test_services_exports() -> None:
    assert sorted(nvrshare.relay.services.__all__) == [
        "AccountService", "DeviceBound", "DeviceRegistered", "DeviceRemoved", "DeviceService",
        "EventBus", "EventsLost", "GrantSetData", "KeyStore", "RecipientKind", "RecipientRef",
        "RegistrationOutcome", "RegistrationRefusal", "Services", "ShareChangeKind",
        "ShareChanged", "ShareService", "SiteService", "TokenService",
    ]  # fmt: skip
    for name in nvrshare.relay.services.__all__:
        assert hasattr(nvrshare.relay.services, name)


def test_store_api_and_errors_exports() -> None:
    assert sorted(nvrshare.relay.store.__all__) == ["MIGRATIONS", "SchemaTooNew", "Store"]
    assert sorted(nvrshare.relay.api.__all__) == ["ROUTES", "create_app"]
    errors = nvrshare.relay.errors
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.RelayError)
