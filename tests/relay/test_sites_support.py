"""Helpers for the site tests (no tests here): an installer organisation, a customer, a recorder."""

from __future__ import annotations

from dataclasses import dataclass

from nvrshare.relay.services.models import Account
from nvrshare.relay.services.sites_model import (
    DevicePermission,
    DevicePermissionRequest,
    InstallerPermissionRequest,
    InstallerRole,
    Validity,
)
from tests.relay.conftest import PASSWORD, World

HOUR = 3600
DAY = 24 * HOUR


@dataclass
class Cast:
    world: World
    admin: Account  # manage_all, may manage devices
    ivan: Account  # manage_assigned, may not manage devices
    site_id: str
    serial: str

    @property
    def sites(self):  # type: ignore[no-untyped-def]
        return self.world.services.sites

    async def customer(self, name: str, *, phone: str | None = None) -> Account:
        return await self.world.services.accounts.register(
            name=name, email=f"{name}@example.com", phone=phone, password=PASSWORD
        )

    async def handover(
        self, owner: Account, request: InstallerPermissionRequest | None = None,
        *, allow_disable_service: bool = False,
    ) -> str:  # fmt: skip
        invitation = await self.sites.invite(
            self.admin, self.site_id, email=owner.email, permissions=request,
            allow_disable_service=allow_disable_service,
        )  # fmt: skip
        await self.sites.accept(owner, invitation.id)
        return invitation.id


def device_request(
    serial: str, *names: DevicePermission, start: float, hours: int = 1
) -> InstallerPermissionRequest:
    return InstallerPermissionRequest(
        devices=(
            DevicePermissionRequest(
                serial=serial,
                permissions=frozenset(names),
                validity=Validity(valid_from=int(start), valid_until=int(start) + hours * HOUR),
            ),
        )
    )


async def make_cast(world: World, *, serial: str = "SITE-NVR-1") -> Cast:
    services = world.services
    admin = await world.account("installer")
    ivan = await world.account("ivan")
    await services.sites.create_org(admin, "Acme Security")
    await services.sites.add_member(
        admin, login=ivan.email or "", role=InstallerRole.MANAGE_ASSIGNED, device_management=False
    )
    site = await services.sites.create_site(admin, name="Bakery", address="1 Main St")
    await world.device(serial, code="SITECODE", channels=2)
    await services.sites.add_device(
        admin, site.id, serial=serial, verification_code="SITECODE", source="127.0.0.1"
    )
    return Cast(world=world, admin=admin, ivan=ivan, site_id=site.id, serial=serial)
