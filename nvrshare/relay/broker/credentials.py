"""What a broker account is: a credential bound to one client id, and its topic ACL.

These are plain values shared by every `BrokerProvisioner` implementation, so
the rest of the relay never sees broker-specific shapes (dynsec JSON, EMQX's
REST bodies).  Client ids and usernames are validated here once: anything that
could carry MQTT topic metacharacters (`+ # / $`), control characters or be
unbounded is refused before it reaches a broker.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

from nvrshare.relay.broker.errors import ProvisioningRefused

__all__ = [
    "MAX_NAME_LENGTH",
    "BrokerCredential",
    "TopicAcl",
    "generate_password",
    "validate_name",
]

MAX_NAME_LENGTH = 64
PASSWORD_BYTES = 24
# Deliberately the serial alphabet plus ':' (service accounts use 'relay:<id>'):
# no '+', '#', '/', '$', whitespace or anything outside ASCII.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")


def validate_name(value: object, what: str = "name") -> str:
    """Return `value` if it is a safe username / client id / role name, else refuse it."""
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_NAME_LENGTH
        or _NAME.fullmatch(value) is None
    ):
        raise ProvisioningRefused(f"invalid broker {what} {value!r}")
    return value


def generate_password() -> str:
    """A random broker password (192 bits, URL-safe text)."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


def _validate_filter(value: str) -> str:
    # `$share/<group>/...` is how a shared subscription is authorised; any other
    # `$` topic ($SYS, $CONTROL) is the broker's and never granted from here.
    bad_dollar = value.startswith("$") and not value.startswith("$share/")
    if not value or len(value) > 512 or "\x00" in value or bad_dollar:
        raise ProvisioningRefused(f"invalid ACL topic filter {value!r}")
    return value


@dataclass(frozen=True, kw_only=True, slots=True)
class TopicAcl:
    """Topics an account may publish to and topic filters it may subscribe to.

    Everything else is denied; receiving is limited to what it may subscribe to.
    """

    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for topic in (*self.publish, *self.subscribe):
            _validate_filter(topic)


@dataclass(frozen=True, kw_only=True, slots=True)
class BrokerCredential:
    """A broker login: the username, its password, and the one client id it may use."""

    username: str
    password: str = field(repr=False)
    client_id: str

    def __post_init__(self) -> None:
        validate_name(self.username, "username")
        validate_name(self.client_id, "client id")
        if not self.password or len(self.password) > 256:
            raise ProvisioningRefused("a broker password must be 1..256 characters")
