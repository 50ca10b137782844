"""Installer sites: roles, statuses, invitations, the daily limit, invalidation, acceptance.

Every test runs on SQLite and PostgreSQL (the `relay_config` parametrization).
"""

from __future__ import annotations

import asyncio

import pytest

from nvrshare.relay.config import RelayConfig
from nvrshare.relay.errors import (
    AccountNotFound,
    Conflict,
    DeviceNotFound,
    Forbidden,
    InvalidRequest,
    NotFound,
    RelayError,
)
from nvrshare.relay.services import audit
from nvrshare.relay.services.sites_model import (
    DevicePermission,
    InstallerPermissionUnavailable,
    InstallerRole,
    InvitationExpired,
    InvitationInvalidated,
    InvitationLimitReached,
    SiteStatus,
)
from nvrshare.relay.store import schema
from tests.relay.conftest import World
from tests.relay.test_sites_support import DAY, Cast, device_request, make_cast

LIVE, PLAYBACK, CONFIG = (
    DevicePermission.LIVE_VIEW, DevicePermission.PLAYBACK, DevicePermission.CONFIGURATION
)  # fmt: skip


@pytest.fixture
async def cast(world: World) -> Cast:
    return await make_cast(world)


# --- roles ------------------------------------------------------------------------------


async def test_roles_manage_all_and_manage_assigned(cast: Cast) -> None:
    sites = cast.sites
    # manage_assigned sees and manages only assigned sites.
    assert (await sites.list_sites(cast.ivan)).items == ()
    with pytest.raises(Forbidden) as refused:
        await sites.get_site(cast.ivan, cast.site_id)
    assert refused.value.code == "site_not_assigned"
    with pytest.raises(Forbidden):
        await sites.invite(cast.ivan, cast.site_id, email="owner@example.com")
    # ...and cannot administer the organisation.
    with pytest.raises(Forbidden):
        await sites.assign(cast.ivan, cast.site_id, cast.ivan.id)
    with pytest.raises(Forbidden):
        await sites.add_member(cast.ivan, login="someone@example.com",
                               role=InstallerRole.MANAGE_ALL)  # fmt: skip
    # manage_all assigns; now ivan manages it (and may invite).
    await sites.assign(cast.admin, cast.site_id, cast.ivan.id)
    [listed] = (await sites.list_sites(cast.ivan)).items
    assert listed.id == cast.site_id
    invitation = await sites.invite(cast.ivan, cast.site_id, email="owner@example.com")
    assert invitation.org_name == "Acme Security"
    await sites.assign(cast.admin, cast.site_id, cast.ivan.id, assigned=False)
    with pytest.raises(Forbidden):
        await sites.resend(cast.ivan, cast.site_id)
    # A site of your organisation you created is yours to manage.
    own = await sites.create_site(cast.ivan, name="Kiosk")
    assert own.assignees == (cast.ivan.id,)
    assert [s.id for s in (await sites.list_sites(cast.ivan)).items] == [own.id]
    # manage_all sees every site of the organisation.
    assert {s.id for s in (await sites.list_sites(cast.admin)).items} == {cast.site_id, own.id}


async def test_no_device_management_cannot_add_devices(cast: Cast) -> None:
    await cast.sites.assign(cast.admin, cast.site_id, cast.ivan.id)
    await cast.world.device("OTHER-1", code="SITECODE")
    with pytest.raises(Forbidden) as refused:
        await cast.sites.add_device(cast.ivan, cast.site_id, serial="OTHER-1",
                                    verification_code="SITECODE", source="127.0.0.1")  # fmt: skip
    assert refused.value.code == "device_management_denied"


async def test_outsiders_see_nothing(cast: Cast) -> None:
    stranger = await cast.customer("stranger")
    with pytest.raises(Forbidden) as refused:
        await cast.sites.get_site(stranger, cast.site_id)
    assert refused.value.code == "not_an_installer"
    rival = await cast.customer("rival")
    await cast.sites.create_org(rival, "Rival Ltd")
    with pytest.raises(NotFound):
        await cast.sites.get_site(rival, cast.site_id)
    with pytest.raises(NotFound):
        await cast.sites.invite(rival, cast.site_id, email="x@example.com")
    with pytest.raises(Conflict):
        await cast.sites.create_org(rival, "Second")
    with pytest.raises(AccountNotFound):
        await cast.sites.add_member(cast.admin, login="ghost@example.com",
                                    role=InstallerRole.MANAGE_ALL)  # fmt: skip
    with pytest.raises(Conflict):  # already in an organisation
        await cast.sites.add_member(cast.admin, login=rival.email or "",
                                    role=InstallerRole.MANAGE_ALL)  # fmt: skip


async def test_device_binding_like_an_owner(cast: Cast) -> None:
    site = await cast.sites.get_site(cast.admin, cast.site_id)
    assert [d.serial for d in site.devices] == [cast.serial]
    # The installer holds it until the handover: nobody else can bind it.
    other = await cast.customer("other")
    with pytest.raises(RelayError):
        await cast.world.services.devices.bind(
            other, serial=cast.serial, verification_code="SITECODE", source="127.0.0.1"
        )
    # A wrong code is refused like for an owner.
    await cast.world.device("WRONG-1", code="RIGHT")
    with pytest.raises(Forbidden) as refused:
        await cast.sites.add_device(cast.admin, cast.site_id, serial="WRONG-1",
                                    verification_code="NOPE", source="127.0.0.1")  # fmt: skip
    assert refused.value.code == "verification_failed"
    # A device is in one site only.
    second = await cast.sites.create_site(cast.admin, name="Second")
    with pytest.raises(Conflict):
        await cast.sites.add_device(cast.admin, second.id, serial=cast.serial,
                                    verification_code="SITECODE", source="127.0.0.1")  # fmt: skip


# --- statuses -----------------------------------------------------------------------------


async def test_status_flow_not_registered_then_not_accepted_then_handed_over(cast: Cast) -> None:
    sites = cast.sites
    assert (await sites.get_site(cast.admin, cast.site_id)).status is SiteStatus.NOT_INVITED
    invitation = await sites.invite(cast.admin, cast.site_id, email="Newcomer@Example.com",
                                    remark="Your bakery's recorder")  # fmt: skip
    assert invitation.address == "newcomer@example.com"
    assert (await sites.get_site(cast.admin, cast.site_id)).status is SiteStatus.NOT_REGISTERED
    # The invitation waits for registration with that email.
    owner = await cast.customer("newcomer")
    site = await sites.get_site(cast.admin, cast.site_id)
    assert site.status is SiteStatus.NOT_ACCEPTED
    assert site.invitation is not None
    assert site.invitation.id == invitation.id
    [seen] = await sites.invitations_for(owner)
    assert (seen.remark, seen.site_name, seen.site_address) == (
        "Your bakery's recorder", "Bakery", "1 Main St"
    )
    accepted = await sites.accept(owner, invitation.id)
    assert accepted.status is SiteStatus.HANDED_OVER
    assert accepted.owner_id == owner.id
    device = await cast.world.services.devices.get_owned(owner, cast.serial)
    assert device.owner_id == owner.id
    with pytest.raises(DeviceNotFound):
        await cast.world.services.devices.get_owned(cast.admin, cast.serial)
    # Only while Not Invited or pending.
    with pytest.raises(Conflict):
        await sites.invite(cast.admin, cast.site_id, email="late@example.com")
    with pytest.raises(Conflict):
        await sites.resend(cast.admin, cast.site_id)
    assert [s.id for s in (await sites.owned_sites(owner)).items] == [cast.site_id]
    async with cast.world.services.context.store.transaction() as conn:
        entries = await audit.entries_for_device(conn, cast.serial)
    assert audit.AuditAction.SITE_DEVICE_ADDED in {e.action for e in entries}
    assert any(e.detail.get("site") == cast.site_id for e in entries
               if e.action is audit.AuditAction.DEVICE_BOUND)  # fmt: skip


async def test_invite_by_phone_and_decline(cast: Cast) -> None:
    owner = await cast.customer("phoney", phone="+4915112345678")
    invitation = await cast.sites.invite(cast.admin, cast.site_id, phone="0049 151 1234 5678")
    assert (invitation.channel, invitation.address) == ("phone", "+4915112345678")
    assert (await cast.sites.get_site(cast.admin, cast.site_id)).status is SiteStatus.NOT_ACCEPTED
    await cast.sites.decline(owner, invitation.id)
    assert (await cast.sites.get_site(cast.admin, cast.site_id)).status is SiteStatus.NOT_INVITED
    with pytest.raises(InvalidRequest):
        await cast.sites.invite(
            cast.admin, cast.site_id, email="a@example.com", phone="+4915112345678"
        )
    with pytest.raises(InvalidRequest):
        await cast.sites.invite(cast.admin, cast.site_id, email="installer@example.com")


async def test_only_the_invitee_can_accept(cast: Cast) -> None:
    owner = await cast.customer("owner")
    intruder = await cast.customer("intruder")
    invitation = await cast.sites.invite(cast.admin, cast.site_id, email=owner.email)
    with pytest.raises(NotFound):
        await cast.sites.accept(intruder, invitation.id)
    with pytest.raises(NotFound):
        await cast.sites.accept(intruder, "x" * 500)
    assert await cast.sites.invitations_for(intruder) == ()


# --- invitations: limit, invalidation, expiry, resend ---------------------------------------


async def test_five_invitations_per_site_per_rolling_day(cast: Cast) -> None:
    clock, sites = cast.world.clock, cast.sites
    t0 = clock.now
    await sites.invite(cast.admin, cast.site_id, email="a@example.com")
    for _ in range(2):
        clock.advance(1)
        await sites.resend(cast.admin, cast.site_id)  # resends count too
    for name in ("b", "c"):
        clock.advance(1)
        await sites.invite(cast.admin, cast.site_id, email=f"{name}@example.com")
    clock.now = t0 + DAY - 0.5
    with pytest.raises(InvitationLimitReached) as refused:
        await sites.invite(cast.admin, cast.site_id, email="d@example.com")
    assert (refused.value.status, refused.value.retry_after) == (429, 1)
    with pytest.raises(InvitationLimitReached):
        await sites.resend(cast.admin, cast.site_id)
    # At exactly 24 h after the first send, it no longer counts: one more fits.
    clock.now = t0 + DAY
    await sites.invite(cast.admin, cast.site_id, email="d@example.com")
    with pytest.raises(InvitationLimitReached) as refused:
        await sites.invite(cast.admin, cast.site_id, email="e@example.com")
    assert refused.value.retry_after == 1  # the send at t0+1 leaves the window at t0+DAY+1
    # The limit is per site: another site is unaffected.
    other = await sites.create_site(cast.admin, name="Other")
    await sites.invite(cast.admin, other.id, email="e@example.com")


async def test_new_invitation_invalidates_previous(cast: Cast) -> None:
    bob, carol = await cast.customer("bob"), await cast.customer("carol")
    first = await cast.sites.invite(cast.admin, cast.site_id, email=bob.email)
    second = await cast.sites.invite(cast.admin, cast.site_id, email=carol.email)
    assert await cast.sites.invitations_for(bob) == ()
    with pytest.raises(InvitationInvalidated) as refused:
        await cast.sites.accept(bob, first.id)
    assert refused.value.code == "invitation_invalidated"
    assert "no longer valid" in refused.value.message
    site = await cast.sites.accept(carol, second.id)
    assert site.owner_id == carol.id


async def test_invitation_expires_and_resend_renews(cast: Cast) -> None:
    clock, sites = cast.world.clock, cast.sites
    owner = await cast.customer("owner")
    with pytest.raises(Conflict):  # Not Invited: nothing to resend
        await sites.resend(cast.admin, cast.site_id)
    invitation = await sites.invite(cast.admin, cast.site_id, email=owner.email)
    ttl = sites.config.invitation_ttl
    clock.advance(ttl - 10)
    resent = await sites.resend(cast.admin, cast.site_id)
    assert resent.expires_at == clock.now + ttl
    clock.advance(ttl)
    assert (await sites.get_site(cast.admin, cast.site_id)).status is SiteStatus.NOT_INVITED
    with pytest.raises(InvitationExpired):
        await sites.accept(owner, invitation.id)


# --- installer permissions requested in the invitation ---------------------------------------


async def test_configuration_and_live_view_need_devices_and_device_management(
    cast: Cast,
) -> None:
    sites, now = cast.sites, cast.world.clock.now
    empty = await sites.create_site(cast.admin, name="Empty")
    with pytest.raises(InstallerPermissionUnavailable) as refused:
        await sites.invite(cast.admin, empty.id, email="o@example.com",
                           permissions=device_request("NOPE-1", LIVE, start=now))  # fmt: skip
    assert refused.value.code == "installer_permission_unavailable"
    assert "no devices" in refused.value.message
    await sites.assign(cast.admin, cast.site_id, cast.ivan.id)
    for wanted in (CONFIG, LIVE):
        with pytest.raises(InstallerPermissionUnavailable) as refused:
            await sites.invite(
                cast.ivan, cast.site_id, email="o@example.com",
                permissions=device_request(cast.serial, wanted, start=now),
            )  # fmt: skip
        assert "may not manage devices" in refused.value.message
    # Playback alone is fine for an installer without device management.
    await sites.invite(cast.ivan, cast.site_id, email="o@example.com",
                       permissions=device_request(cast.serial, PLAYBACK, start=now))  # fmt: skip
    # A device outside the site, or a validity period that ended, is refused.
    with pytest.raises(InvalidRequest):
        await sites.invite(
            cast.admin, cast.site_id, email="o@example.com",
            permissions=device_request("ELSEWHERE", PLAYBACK, start=now),
        )  # fmt: skip
    with pytest.raises(InvalidRequest):
        await sites.invite(
            cast.admin, cast.site_id, email="o@example.com",
            permissions=device_request(cast.serial, LIVE, start=now - 7200),
        )  # fmt: skip


async def test_one_owner_under_concurrent_accepts(cast: Cast) -> None:
    owner = await cast.customer("owner")
    invitation = await cast.sites.invite(cast.admin, cast.site_id, email=owner.email)
    results = await asyncio.gather(
        *(cast.sites.accept(owner, invitation.id) for _ in range(4)), return_exceptions=True
    )
    wins = [r for r in results if not isinstance(r, BaseException)]
    assert len(wins) == 1, results
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException))
    device = await cast.world.services.devices.get_owned(owner, cast.serial)
    assert device.owner_id == owner.id


async def test_one_owner_when_reinvite_races_accept(cast: Cast) -> None:
    bob, carol = await cast.customer("bob"), await cast.customer("carol")
    first = await cast.sites.invite(cast.admin, cast.site_id, email=bob.email)

    async def reinvite_and_accept() -> object:
        second = await cast.sites.invite(cast.admin, cast.site_id, email=carol.email)
        return await cast.sites.accept(carol, second.id)

    results = await asyncio.gather(
        cast.sites.accept(bob, first.id), reinvite_and_accept(), return_exceptions=True
    )
    owners = set()
    async with cast.world.services.context.store.transaction() as conn:
        row = (
            await conn.execute(
                schema.devices.select().where(schema.devices.c.serial == cast.serial)
            )
        ).one()
        owners.add(row.owner_id)
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1, results
    assert owners == {winners[0].owner_id}  # type: ignore[union-attr]
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException)), results


async def test_a_version_1_database_gains_the_site_tables(relay_config: RelayConfig) -> None:
    from sqlalchemy import inspect as sa_inspect  # noqa: PLC0415

    from nvrshare.relay.store import MIGRATIONS, Store  # noqa: PLC0415
    from nvrshare.relay.store.migrations import apply_migrations, current_version  # noqa: PLC0415
    from nvrshare.relay.store.schema_sites import SITE_TABLES  # noqa: PLC0415

    store = Store(relay_config)
    try:  # an existing relay's database, migrated by a relay without sites
        async with store.transaction() as conn:
            await conn.run_sync(lambda sync: apply_migrations(sync, MIGRATIONS[:1]))
    finally:
        await store.engine.dispose()
    async with Store(relay_config) as upgraded, upgraded.transaction() as conn:
        assert await conn.run_sync(current_version) == len(MIGRATIONS)
        names = await conn.run_sync(lambda sync: set(sa_inspect(sync).get_table_names()))
    assert {t.name for t in SITE_TABLES} <= names


async def test_hostile_service_arguments_are_invalid_requests(cast: Cast) -> None:
    """Other callers (the portal) pass user input straight in: typed refusals, never a crash."""
    sites = cast.sites
    attempts = [
        sites.add_member(cast.admin, login="x@example.com", role="root"),  # type: ignore[arg-type]
        sites.add_member(cast.admin, login=5, role=InstallerRole.MANAGE_ALL),  # type: ignore[arg-type]
        sites.create_site(cast.admin, name=""),
        sites.create_site(cast.admin, name="x" * 65),
        sites.create_site(cast.admin, name="ok", address="\x00"),
        sites.update_site(cast.admin, cast.site_id, name=7),  # type: ignore[arg-type]
        sites.invite(cast.admin, cast.site_id),
        sites.invite(cast.admin, cast.site_id, email="a@example.com", remark=3),  # type: ignore[arg-type]
        sites.invite(cast.admin, cast.site_id, email="a@example.com",
                     allow_disable_service="yes"),  # type: ignore[arg-type]
        sites.invite(cast.admin, cast.site_id, email="a@example.com",
                     permissions="all"),  # type: ignore[arg-type]
        sites.set_service(cast.admin, cast.site_id, enabled="off"),  # type: ignore[arg-type]
    ]
    for attempt in attempts:
        with pytest.raises(InvalidRequest):
            await attempt
    for bad_id in ("", "x" * 33, "../../etc"):
        with pytest.raises(NotFound):
            await sites.get_site(cast.admin, bad_id)


async def test_the_daily_limit_holds_under_concurrent_invitations(cast: Cast) -> None:
    results = await asyncio.gather(
        *(cast.sites.invite(cast.admin, cast.site_id, email=f"c{n}@example.com")
          for n in range(8)),
        return_exceptions=True,
    )  # fmt: skip
    sent = [r for r in results if not isinstance(r, BaseException)]
    assert len(sent) == 5, results
    assert all(isinstance(r, InvitationLimitReached) for r in results if r not in sent)
    # Exactly one of them is current; the others were invalidated.
    site = await cast.sites.get_site(cast.admin, cast.site_id)
    assert site.invitation is not None
    assert site.invitation.id in {s.id for s in sent}  # type: ignore[union-attr]
