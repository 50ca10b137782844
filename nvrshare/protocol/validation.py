"""Validation of the identifiers that end up in topics, paths and logs.

A serial number or a domain name is a *name*, never a credential; but because
they are spliced into MQTT topics, they must not be able to carry the topic
metacharacters `+ # / $`, nor control characters, nor be unbounded.
"""

from __future__ import annotations

import re

__all__ = [
    "MAX_DOMAIN_LENGTH",
    "MAX_SERIAL_LENGTH",
    "is_valid_domain",
    "is_valid_serial",
]

MAX_SERIAL_LENGTH = 64
MAX_DOMAIN_LENGTH = 63

# Hikvision serials look like DS-7608NI-K2/8P0820190101CCRRC12345678WCVU: letters,
# digits and dashes; the model part can carry '/', which we refuse (it would
# split a topic level), so agents normalise it to '-' before registering.
_SERIAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# A domain name (Hik-Connect "domain") is a DNS label: lowercase letters, digits, dashes.
_DOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")


def is_valid_serial(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_SERIAL_LENGTH
        and _SERIAL.fullmatch(value) is not None
    )


def is_valid_domain(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_DOMAIN_LENGTH
        and _DOMAIN.fullmatch(value) is not None
    )
