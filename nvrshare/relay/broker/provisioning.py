"""The small interface the relay uses to manage broker accounts.

Mosquitto implements it with its dynamic-security plugin (`dynsec.py`); another
broker's auth API (EMQX's REST API, say) can implement the same four calls.
Every call is idempotent so a relay restarted half-way through can simply
repeat it.
"""

from __future__ import annotations

from typing import Protocol

from nvrshare.relay.broker.credentials import BrokerCredential, TopicAcl

__all__ = ["BrokerProvisioner"]


class BrokerProvisioner(Protocol):
    """Creates, updates and removes broker accounts at run time."""

    async def provision_device(self, credential: BrokerCredential, acl: TopicAcl) -> None:
        """Create or replace the account `credential.username` limited to `acl`.

        Replacing an existing account disconnects sessions using the old one.
        Raises `ProvisioningError` if the broker refuses, `BrokerUnavailable`
        if it cannot be reached.
        """
        ...

    async def provision_service(self, credential: BrokerCredential, acl: TopicAcl) -> None:
        """Create or replace a service account (the relay's own), with `acl`."""
        ...

    async def remove_account(self, username: str) -> None:
        """Delete the account and its role; no error if it does not exist."""
        ...

    async def set_password(self, username: str, password: str) -> None:
        """Change the password of an existing account."""
        ...
