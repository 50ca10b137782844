"""Installer sites and the handover to a site owner (Hik-Connect's installer side).

One service in parts: `sites_org` (organisation, members), `sites_installer`
(sites, devices), `sites_handover` (invitations, acceptance), `sites_grants`
(checking and storing installer permissions) and `sites_owner` (installer
permissions after the handover, the cloud-service switch).  Who may manage
which site is in `sites_base`; the records, limits and refusals in
`sites_model`; what sites change about device access (grant sets, tokens)
in `sites_access`.
"""

from __future__ import annotations

from nvrshare.relay.services.models import Account
from nvrshare.relay.services.sites_installer import InstallerSiteOps
from nvrshare.relay.services.sites_model import Site
from nvrshare.relay.services.sites_owner import AfterHandoverOps

__all__ = ["SiteService"]


class SiteService(InstallerSiteOps, AfterHandoverOps):
    """Every site operation, over the relay's store, event bus and clock."""

    async def remove_device(self, installer: Account, site_id: str, serial: str) -> Site | None:
        """Take a device out of a site.

        Before the handover the device stays on the installer's account and the
        updated site is returned.  After it, with the owner's consent, the
        device is removed from the owner's account without the owner's approval
        (every share and installer grant of it ends); returns None.
        """
        site = await self.get_site(installer, site_id)
        if site.owner_id is None:
            return await self.detach_device(installer, site_id, serial)
        await self.remove_from_owner(installer, site_id, serial)
        return None
