"""What a handover changes about device access: installer grants, validity, the service switch.

On SQLite and PostgreSQL.  The agent side uses the real `GrantStore` and
`Authorizer` fed with a grant set signed by the registry's own builder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nvrshare.protocol.codec import encode_signed
from nvrshare.protocol.messages import SessionKind, SessionRequest
from nvrshare.protocol.permissions import Permission
from nvrshare.protocol.reasons import RefusalReason
from nvrshare.protocol.signing import CONTEXT_GRANT_SET
from nvrshare.protocol.tokens import token_from_text
from nvrshare.relay.errors import DeviceNotFound, Forbidden, InvalidRequest
from nvrshare.relay.services.models import Account
from nvrshare.relay.services.sites_model import (
    DevicePermission,
    InstallerPermissionRequest,
    ServiceDisabled,
    SiteStatus,
    Validity,
)
from tests.relay.conftest import World
from tests.relay.test_sites_support import HOUR, Cast, device_request, make_cast

LIVE, PLAYBACK, CONFIG = (
    DevicePermission.LIVE_VIEW, DevicePermission.PLAYBACK, DevicePermission.CONFIGURATION
)  # fmt: skip


@pytest.fixture
async def cast(world: World) -> Cast:
    return await make_cast(world)


async def test_requested_permissions_become_timed_grants_that_expire(cast: Cast) -> None:
    services, clock = cast.world.services, cast.world.clock
    owner = await cast.customer("owner")
    start = int(clock.now) + 60
    request = device_request(cast.serial, LIVE, PLAYBACK, CONFIG, start=start, hours=2)
    await cast.handover(owner, request)
    [grant] = (await cast.sites.owned_site(owner, cast.site_id)).grants
    assert grant.installer_id == cast.admin.id
    assert grant.permissions == {LIVE, PLAYBACK, CONFIG}
    assert grant.validity == Validity(valid_from=start, valid_until=start + 2 * HOUR)
    assert not grant.active  # starts in a minute
    # The grant set carries the installer's live view + playback with the period.
    data = await services.devices.grant_set_for(cast.serial)
    assert data is not None
    assert data.owner_id == owner.id
    flags = Permission.LIVE_VIEW | Permission.PLAYBACK
    assert data.accounts[cast.admin.id] == {1: flags, 2: flags}
    assert data.validity[cast.admin.id] == (start, start + 2 * HOUR)
    assert cast.admin.id not in {a for a, _ in data.revoked}
    # Tokens: not before the start, capped at the end, none after it.
    with pytest.raises(Forbidden) as refused:
        await services.tokens.issue(cast.admin, cast.serial)
    assert refused.value.code == "grant_not_yet_valid"
    clock.now = start + 2 * HOUR - 100
    token = await services.tokens.issue(cast.admin, cast.serial)
    assert token.expires_at == start + 2 * HOUR  # not now + token_ttl
    assert token.permissions == {1: flags, 2: flags}
    clock.now = start + 2 * HOUR  # nobody acts: the grant just ends
    with pytest.raises(Forbidden) as refused:
        await services.tokens.issue(cast.admin, cast.serial)
    assert refused.value.code == "grant_expired"
    data = await services.devices.grant_set_for(cast.serial)
    assert data is not None
    assert cast.admin.id not in data.accounts
    [grant] = (await cast.sites.owned_site(owner, cast.site_id)).grants
    assert not grant.active


async def test_configuration_only_grant_is_not_a_device_grant(cast: Cast) -> None:
    owner = await cast.customer("owner")
    await cast.handover(owner, device_request(cast.serial, CONFIG, start=cast.world.clock.now))
    data = await cast.world.services.devices.grant_set_for(cast.serial)
    assert data is not None
    assert cast.admin.id not in data.accounts
    with pytest.raises(DeviceNotFound):
        await cast.world.services.tokens.issue(cast.admin, cast.serial)


async def test_installer_loses_owner_access_at_handover(cast: Cast) -> None:
    services = cast.world.services
    await services.tokens.issue(cast.admin, cast.serial)  # the holder is the owner until then
    before = await services.devices.grant_set_for(cast.serial)
    owner = await cast.customer("owner")
    await cast.handover(owner)
    with pytest.raises(DeviceNotFound):
        await services.tokens.issue(cast.admin, cast.serial)
    data = await services.devices.grant_set_for(cast.serial)
    assert data is not None
    assert before is not None
    assert data.share_epoch > before.share_epoch
    assert set(data.accounts) == {owner.id}
    assert cast.admin.id in {a for a, _ in data.revoked}


async def test_owner_authorises_and_revokes_installer_permissions(cast: Cast) -> None:
    services, now = cast.world.services, cast.world.clock.now
    owner = await cast.customer("owner")
    await cast.handover(owner)
    with pytest.raises(DeviceNotFound):
        await services.tokens.issue(cast.admin, cast.serial)
    site = await cast.sites.grant_installer(
        owner, cast.site_id, device_request(cast.serial, PLAYBACK, start=now, hours=24)
    )
    assert [g.permissions for g in site.grants] == [{PLAYBACK}]
    token = await services.tokens.issue(cast.admin, cast.serial)
    assert token.permissions == {1: Permission.PLAYBACK, 2: Permission.PLAYBACK}
    before = await services.devices.grant_set_for(cast.serial)
    assert await cast.sites.revoke_installer(owner, cast.site_id) == 1
    with pytest.raises(DeviceNotFound):
        await services.tokens.issue(cast.admin, cast.serial)
    data = await services.devices.grant_set_for(cast.serial)
    assert data is not None
    assert before is not None
    assert data.share_epoch > before.share_epoch  # the installer's tokens die at the agent
    assert cast.admin.id in {a for a, _ in data.revoked}
    # Only the owner of the site may do this.
    stranger = await cast.customer("stranger")
    with pytest.raises(Exception, match="no such site"):
        await cast.sites.grant_installer(
            stranger, cast.site_id, device_request(cast.serial, PLAYBACK, start=now)
        )


async def test_site_information_permission_with_validity(cast: Cast) -> None:
    clock = cast.world.clock
    owner = await cast.customer("owner")
    await cast.handover(owner)
    with pytest.raises(Forbidden) as refused:
        await cast.sites.update_site(cast.admin, cast.site_id, name="Renamed")
    assert refused.value.code == "installer_permission_missing"
    start = int(clock.now)
    await cast.sites.grant_installer(
        owner, cast.site_id,
        InstallerPermissionRequest(site_info=Validity(valid_from=start, valid_until=start + HOUR)),
    )  # fmt: skip
    site = await cast.sites.update_site(cast.admin, cast.site_id, name="Renamed", address="2 Rd")
    assert (site.name, site.address) == ("Renamed", "2 Rd")
    clock.now = start + HOUR
    with pytest.raises(Forbidden):
        await cast.sites.update_site(cast.admin, cast.site_id, name="Again")
    await cast.sites.grant_installer(
        owner, cast.site_id,
        InstallerPermissionRequest(
            site_info=Validity(valid_from=start, valid_until=start + 9 * HOUR)
        ),
    )  # fmt: skip
    await cast.sites.update_site(cast.admin, cast.site_id, name="Again")
    assert await cast.sites.revoke_installer(owner, cast.site_id, site_info=True) == 1
    with pytest.raises(Forbidden):
        await cast.sites.update_site(cast.admin, cast.site_id, name="Denied")


# --- the service switch ------------------------------------------------------------------------


async def test_service_switch_needs_the_owners_consent(cast: Cast) -> None:
    owner = await cast.customer("owner")
    with pytest.raises(Forbidden):  # before the handover: nothing to switch
        await cast.sites.set_service(cast.admin, cast.site_id, enabled=False)
    await cast.handover(owner, allow_disable_service=False)
    with pytest.raises(Forbidden) as refused:
        await cast.sites.set_service(cast.admin, cast.site_id, enabled=False)
    assert refused.value.code == "service_switch_not_allowed"
    with pytest.raises(Forbidden):
        await cast.sites.remove_device(cast.admin, cast.site_id, cast.serial)
    await cast.world.services.tokens.issue(owner, cast.serial)


async def test_service_switch_reaches_the_agent_and_refuses_sessions(
    cast: Cast, tmp_path: Path
) -> None:
    grant_publisher = pytest.importorskip("nvrshare.relay.registry.grant_publisher")
    grants_mod = pytest.importorskip("nvrshare.agent.grants")
    authorize = pytest.importorskip("nvrshare.agent.sessions.authorize")
    errors = pytest.importorskip("nvrshare.agent.sessions.errors")
    services, clock = cast.world.services, cast.world.clock
    owner = await cast.customer("owner")
    await cast.handover(owner, allow_disable_service=True)
    store = grants_mod.GrantStore(tmp_path / "agent", cast.serial)
    authorizer = authorize.Authorizer(store, cast.serial, authorize.ReplayGuard())
    request = SessionRequest(device_serial=cast.serial, channel=1, kind=SessionKind.LIVE_MAIN)

    async def sync() -> None:
        data = await services.devices.grant_set_for(cast.serial)
        grant_set = grant_publisher.build_grant_set(data, services.keys, clock())
        signed = encode_signed(grant_set, services.keys.signing_key, CONTEXT_GRANT_SET)
        await store.apply_async(signed)

    async def admit() -> None:
        issued = await services.tokens.issue(owner, cast.serial)
        authorizer.admit(token=token_from_text(issued.token), request=request,
                         session_id=clock().hex().encode(), now=clock())  # fmt: skip

    await sync()
    assert store.service_enabled
    old = await services.tokens.issue(owner, cast.serial)
    await admit()
    clock.advance(1)
    # The installer switches the whole site off.
    site = await cast.sites.set_service(cast.admin, cast.site_id, enabled=False)
    assert [d.service_enabled for d in site.devices] == [False]
    data = await services.devices.grant_set_for(cast.serial)
    assert data is not None
    assert data.service_enabled is False
    with pytest.raises(ServiceDisabled) as refused:
        await services.tokens.issue(owner, cast.serial)
    assert (refused.value.code, refused.value.status) == ("service_disabled", 403)
    await sync()
    assert store.current.service_enabled is False
    assert store.grant_for(owner.id, clock()) is None
    with pytest.raises(errors.SessionRefused) as session_refused:
        authorizer.admit(token=token_from_text(old.token), request=request,
                         session_id=b"after-switch", now=clock())  # fmt: skip
    assert session_refused.value.reason == RefusalReason.SERVICE_DISABLED
    # On again, for one device: sessions work with a fresh token.
    clock.advance(1)
    await cast.sites.set_service(cast.admin, cast.site_id, enabled=True, serial=cast.serial)
    await sync()
    assert store.service_enabled
    await admit()


async def test_installer_removes_device_from_owner_without_approval(cast: Cast) -> None:
    services = cast.world.services
    owner = await cast.customer("owner")
    friend = await cast.customer("friend")
    await cast.handover(
        owner, device_request(cast.serial, PLAYBACK, start=cast.world.clock.now),
        allow_disable_service=True,
    )  # fmt: skip
    from nvrshare.relay.services.shares import RecipientKind, RecipientRef  # noqa: PLC0415

    share = await services.shares.create(
        owner, serial=cast.serial, recipient=RecipientRef(kind=RecipientKind.EMAIL,
                                                          value=friend.email or ""),
        permissions={1: Permission.LIVE_VIEW},
    )  # fmt: skip
    await services.shares.accept(friend, share.id)
    assert await cast.sites.remove_device(cast.admin, cast.site_id, cast.serial) is None
    with pytest.raises(DeviceNotFound):
        await services.devices.get_owned(owner, cast.serial)
    for account in (owner, friend, cast.admin):
        with pytest.raises(DeviceNotFound):
            await services.tokens.issue(account, cast.serial)
    data = await services.devices.grant_set_for(cast.serial)
    assert data is not None
    assert data.owner_id is None
    assert data.accounts == {}
    assert {owner.id, friend.id, cast.admin.id} <= {a for a, _ in data.revoked}
    site = await cast.sites.owned_site(owner, cast.site_id)
    assert (site.status, site.devices, site.grants) == (SiteStatus.HANDED_OVER, (), ())


async def test_grant_set_validity_reaches_the_agent(cast: Cast) -> None:
    """The registry's builder carries an installer grant's period to the device."""
    grant_publisher = pytest.importorskip("nvrshare.relay.registry.grant_publisher")
    services, now = cast.world.services, int(cast.world.clock.now)
    owner: Account = await cast.customer("owner")
    await cast.handover(owner, device_request(cast.serial, LIVE, start=now, hours=1))
    data = await services.devices.grant_set_for(cast.serial)
    grant_set = grant_publisher.build_grant_set(data, services.keys, now)
    [installer] = [g for g in grant_set.grants if g.account_id == cast.admin.id]
    assert (installer.valid_from, installer.valid_until) == (now, now + HOUR)


async def test_switch_and_grants_do_not_follow_a_device_out_of_the_site(cast: Cast) -> None:
    """The owner removes the device; whoever binds it next is not bound by the site."""
    services, now = cast.world.services, cast.world.clock.now
    owner = await cast.customer("owner")
    await cast.handover(owner, device_request(cast.serial, LIVE, start=now, hours=5),
                        allow_disable_service=True)  # fmt: skip
    await cast.sites.set_service(cast.admin, cast.site_id, enabled=False)
    with pytest.raises(ServiceDisabled):
        await services.tokens.issue(owner, cast.serial)
    await services.devices.remove(owner, cast.serial)
    cast.world.clock.advance(1)
    for account in (owner, await cast.customer("buyer")):
        await services.devices.bind(
            account, serial=cast.serial, verification_code="SITECODE", source="127.0.0.1"
        )
        await services.tokens.issue(account, cast.serial)  # the service is on for them
        with pytest.raises(DeviceNotFound):  # and the installer's grant is gone
            await services.tokens.issue(cast.admin, cast.serial)
        data = await services.devices.grant_set_for(cast.serial)
        assert data is not None
        assert data.service_enabled
        assert set(data.accounts) == {account.id}
        site = await cast.sites.owned_site(owner, cast.site_id)
        assert site.devices == ()
        await services.devices.remove(account, cast.serial)
        cast.world.clock.advance(1)


async def test_relay_data_plane_refuses_tokens_minted_before_the_switch(cast: Cast) -> None:
    from nvrshare.protocol.handshake import NONCE_LENGTH, ClientHello  # noqa: PLC0415
    from nvrshare.relay.dataplane.admission import (  # noqa: PLC0415
        Refused,
        SessionLimits,
        SessionSlots,
        admit,
    )
    from nvrshare.relay.services.dataplane_view import DataPlaneView  # noqa: PLC0415

    services, clock = cast.world.services, cast.world.clock
    owner = await cast.customer("owner")
    await cast.handover(owner, allow_disable_service=True)
    issued = await services.tokens.issue(owner, cast.serial)
    hello = ClientHello(
        token=token_from_text(issued.token),
        request=SessionRequest(device_serial=cast.serial, channel=1, kind=SessionKind.LIVE_MAIN),
        client_nonce=bytes(NONCE_LENGTH),
    )
    # The data plane's GrantState/DevicePresence as the relay wires them.
    state, slots = DataPlaneView(services.context), SessionSlots(SessionLimits())

    async def try_admit() -> None:
        await admit(hello, now=clock(), verifier=services.tokens.verifier(), grant_state=state,
                    presence=state, slots=slots)  # fmt: skip

    await try_admit()
    await cast.sites.set_service(cast.admin, cast.site_id, enabled=False)
    with pytest.raises(Refused) as refused:
        await try_admit()
    assert refused.value.reason == RefusalReason.REVOKED


async def test_an_installer_who_leaves_the_organisation_loses_their_grants(cast: Cast) -> None:
    services, now = cast.world.services, cast.world.clock.now
    owner = await cast.customer("owner")
    # Ivan (assigned, playback only) invites; his account gets the grant.
    await cast.sites.assign(cast.admin, cast.site_id, cast.ivan.id)
    invitation = await cast.sites.invite(
        cast.ivan, cast.site_id, email=owner.email,
        permissions=device_request(cast.serial, PLAYBACK, start=now, hours=24),
    )  # fmt: skip
    await cast.sites.accept(owner, invitation.id)
    await services.tokens.issue(cast.ivan, cast.serial)
    with pytest.raises(DeviceNotFound):  # the grant is Ivan's, not the organisation's
        await services.tokens.issue(cast.admin, cast.serial)
    await cast.sites.remove_member(cast.admin, cast.ivan.id)
    with pytest.raises(DeviceNotFound):
        await services.tokens.issue(cast.ivan, cast.serial)
    data = await services.devices.grant_set_for(cast.serial)
    assert data is not None
    assert cast.ivan.id in {a for a, _ in data.revoked}
    site = await cast.sites.owned_site(owner, cast.site_id)
    assert (site.installer_id, site.grants) == (None, ())


async def test_validity_periods_are_bounded(cast: Cast) -> None:
    now, config = int(cast.world.clock.now), cast.sites.config
    bad = [
        (now + 2**62, now + 2**62 + HOUR),  # would overflow a BIGINT
        (now, now + config.max_validity + 1),  # too long
        (now + 10, now + 10),  # empty
        (-5, now + HOUR),  # negative
    ]
    for start, end in bad:
        request = InstallerPermissionRequest(site_info=Validity(valid_from=start, valid_until=end))
        with pytest.raises(InvalidRequest):
            await cast.sites.invite(cast.admin, cast.site_id, email="o@example.com",
                                    permissions=request)  # fmt: skip


async def test_agent_refuses_an_installer_grant_after_its_end(cast: Cast, tmp_path: Path) -> None:
    """The period travels in the grant set (registry builder), and the agent's own checks
    end the installer's access at `valid_until`: open sessions are cut, new ones refused."""
    grant_publisher = pytest.importorskip("nvrshare.relay.registry.grant_publisher")
    grants_mod = pytest.importorskip("nvrshare.agent.grants")
    authorize = pytest.importorskip("nvrshare.agent.sessions.authorize")
    errors = pytest.importorskip("nvrshare.agent.sessions.errors")
    services, clock = cast.world.services, cast.world.clock
    start = int(clock.now)
    owner = await cast.customer("owner")
    await cast.handover(owner, device_request(cast.serial, LIVE, start=start, hours=1))
    data = await services.devices.grant_set_for(cast.serial)
    assert data is not None
    grant_set = grant_publisher.build_grant_set(data, services.keys, start)
    store = grants_mod.GrantStore(tmp_path / "agent", cast.serial)
    await store.apply_async(encode_signed(grant_set, services.keys.signing_key, CONTEXT_GRANT_SET))
    authorizer = authorize.Authorizer(store, cast.serial, authorize.ReplayGuard())
    request = SessionRequest(device_serial=cast.serial, channel=2, kind=SessionKind.LIVE_SUB)
    issued = await services.tokens.issue(cast.admin, cast.serial)
    admission = authorizer.admit(token=token_from_text(issued.token), request=request,
                                 session_id=b"installer-live-1", now=clock())  # fmt: skip
    assert authorizer.still_allowed(admission, request, start + HOUR - 1) is None
    # At the end of the period the open session is cut and a new one refused.
    assert authorizer.still_allowed(admission, request, start + HOUR) == RefusalReason.REVOKED
    with pytest.raises(errors.SessionRefused) as refused:
        authorizer.admit(token=token_from_text(issued.token), request=request,
                         session_id=b"installer-live-2", now=start + HOUR)  # fmt: skip
    assert refused.value.reason in {RefusalReason.SHARE_EXPIRED, RefusalReason.TOKEN_EXPIRED}
