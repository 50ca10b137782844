"""The relay's web portal for share management: server-rendered, no build step.

Every page calls the same service layer as the JSON API (`nvrshare.relay.services`),
so the portal holds no business rule of its own.  See `app.create_portal`.
"""

from __future__ import annotations

from nvrshare.relay.portal.app import create_portal

__all__ = ["create_portal"]
