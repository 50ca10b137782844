"""Installer sites and the handover to a site owner: the tables.

They share `schema.metadata`, so foreign keys to `accounts` and `devices`
resolve, and are created by their own migration step (`migrations`).

- `installer_orgs` / `installer_members`: an installer organisation and its
  accounts, each with a role (`manage_all` or `manage_assigned`) and whether
  it may manage devices.  An account belongs to at most one organisation.
- `sites` / `site_assignments` / `site_devices`: a site of an organisation,
  the members assigned to it, and its devices (a device is in at most one
  site).  `holder_id` is the installer account that bound the device: it owns
  the device until the handover moves ownership to the site owner.
- `site_invitations`: invitations of a site owner by email or phone; one is
  current per site, a newer one invalidates it.  `site_invitation_sends`
  keeps one row per invitation sent (new or resent) for the daily limit.
- `installer_grants`: what the installer may still do after the handover,
  each with a validity period: site information (`device_serial` NULL) or, per
  device, configuration / live view / playback.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from nvrshare.relay.store.schema import ID, metadata

__all__ = [
    "SITE_TABLES",
    "installer_grants",
    "installer_members",
    "installer_orgs",
    "site_assignments",
    "site_devices",
    "site_invitation_sends",
    "site_invitations",
    "sites",
]

installer_orgs = Table(
    "installer_orgs",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
)

installer_members = Table(
    "installer_members",
    metadata,
    Column(
        "account_id", String(ID), ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    ),
    Column(
        "org_id",
        String(ID),
        ForeignKey("installer_orgs.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("role", String(20), nullable=False),
    Column("device_management", Boolean, nullable=False),
    Column("created_at", Float, nullable=False),
)

sites = Table(
    "sites",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column(
        "org_id",
        String(ID),
        ForeignKey("installer_orgs.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("name", String(64), nullable=False),
    Column("address", String(256), nullable=False),
    Column("created_by", String(ID), nullable=False),
    Column("created_at", Float, nullable=False),
    # Bumped by every change that must serialise per site (invitations, accepts).
    Column("revision", BigInteger, nullable=False, default=0),
    Column("current_invitation_id", String(ID)),
    Column("owner_id", String(ID), ForeignKey("accounts.id", ondelete="SET NULL"), index=True),
    # The installer account the owner's grants go to (the one who invited).
    Column("installer_id", String(ID)),
    Column("handed_over_at", Float),
    Column("allow_disable_service", Boolean, nullable=False, default=False),
)

site_assignments = Table(
    "site_assignments",
    metadata,
    Column("site_id", String(ID), ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "account_id",
        String(ID),
        ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
)

site_devices = Table(
    "site_devices",
    metadata,
    Column(
        "device_serial",
        String(64),
        ForeignKey("devices.serial", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "site_id",
        String(ID),
        ForeignKey("sites.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("holder_id", String(ID), nullable=False),
    Column("added_at", Float, nullable=False),
    Column("service_enabled", Boolean, nullable=False, default=True),
)

site_invitations = Table(
    "site_invitations",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("site_id", String(ID), ForeignKey("sites.id", ondelete="CASCADE"), nullable=False),
    Column("inviter_id", String(ID), nullable=False),
    Column("channel", String(8), nullable=False),
    Column("address", String(254), nullable=False),
    Column("remark", String(128)),
    Column("request", Text, nullable=False),
    Column("allow_disable_service", Boolean, nullable=False),
    Column("state", String(12), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_sent_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("answered_at", Float),
    Column("accepted_by", String(ID)),
    Index("ix_site_invitations_address", "channel", "address", "state"),
    Index("ix_site_invitations_site", "site_id"),
)

site_invitation_sends = Table(
    "site_invitation_sends",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("site_id", String(ID), ForeignKey("sites.id", ondelete="CASCADE"), nullable=False),
    Column("at", Float, nullable=False),
    Index("ix_site_invitation_sends", "site_id", "at"),
)

installer_grants = Table(
    "installer_grants",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("site_id", String(ID), ForeignKey("sites.id", ondelete="CASCADE"), nullable=False),
    Column("installer_id", String(ID), nullable=False, index=True),
    Column(
        "device_serial", String(64), ForeignKey("devices.serial", ondelete="CASCADE"), index=True
    ),
    Column("permissions", String(64), nullable=False),
    Column("valid_from", BigInteger, nullable=False),
    Column("valid_until", BigInteger, nullable=False),
    Column("granted_by", String(ID), nullable=False),
    Column("granted_at", Float, nullable=False),
    Index("ix_installer_grants_site", "site_id"),
)

SITE_TABLES = (
    installer_orgs,
    installer_members,
    sites,
    site_assignments,
    site_devices,
    site_invitations,
    site_invitation_sends,
    installer_grants,
)
