"""Shares: the whole "Share Device" model; the rules are written out in `share_rules`."""

from __future__ import annotations

from nvrshare.relay.services.share_rules import (
    MAX_REMARK_LENGTH,
    RecipientKind,
    RecipientRef,
    check_matrix,
)
from nvrshare.relay.services.shares_owner import OwnerShareOps
from nvrshare.relay.services.shares_recipient import RecipientShareOps

__all__ = ["MAX_REMARK_LENGTH", "RecipientKind", "RecipientRef", "ShareService", "check_matrix"]


class ShareService(OwnerShareOps, RecipientShareOps):
    """Owner and recipient operations on shares, over one store and event bus."""
