"""The relay's HTTP API (aiohttp): thin handlers over the service layer."""

from nvrshare.relay.api.app import create_app
from nvrshare.relay.api.routes import ROUTES

__all__ = ["ROUTES", "create_app"]
