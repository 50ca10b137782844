"""Installer-permission forms: checkboxes and one validity period → a service request.

A form names site information (`site_info`) and per-device permissions
(`device_perm` = `<serial>:<permission>`) under one validity period given as
two dates, `valid_from` and `valid_until`, both inclusive and in UTC: the
period runs from the first day's midnight to the midnight after the last day.
The service checks the period (in the future, not too long) and which
permissions the site can offer; this module only parses.
"""

from __future__ import annotations

import datetime

from nvrshare.relay.errors import InvalidRequest
from nvrshare.relay.portal.forms import Form
from nvrshare.relay.services.sites_model import (
    DevicePermission,
    DevicePermissionRequest,
    InstallerPermissionRequest,
    Validity,
)

__all__ = ["SITE_PERMISSION_COLUMNS", "day_of", "installer_request_from_form"]

SITE_PERMISSION_COLUMNS: tuple[tuple[str, str], ...] = (
    (DevicePermission.CONFIGURATION.value, "Configuration"),
    (DevicePermission.LIVE_VIEW.value, "Live View"),
    (DevicePermission.PLAYBACK.value, "Playback"),
)
_DAY = 24 * 3600
_MAX_SERIAL = 64


def _date(form: Form, name: str, label: str) -> datetime.date:
    text = form.text(name, limit=10).strip()
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"{label} must be a date like 2027-01-31") from None


def _midnight(day: datetime.date) -> int:
    return int(datetime.datetime.combine(day, datetime.time(), datetime.UTC).timestamp())


def day_of(timestamp: float) -> str:
    """The UTC date of `timestamp` as YYYY-MM-DD (to prefill date fields)."""
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC).date().isoformat()


def installer_request_from_form(form: Form) -> InstallerPermissionRequest:
    """The installer permissions the form asks for (possibly none at all)."""
    by_serial: dict[str, set[DevicePermission]] = {}
    for value in form.many("device_perm", limit=_MAX_SERIAL + 16):
        serial, _, name = value.rpartition(":")
        try:
            permission = DevicePermission(name)
        except ValueError:
            raise InvalidRequest("the installer permissions have a malformed box") from None
        if not 0 < len(serial) <= _MAX_SERIAL:
            raise InvalidRequest("the installer permissions name a malformed serial")
        by_serial.setdefault(serial, set()).add(permission)
    site_info = form.checked("site_info")
    if not site_info and not by_serial:
        return InstallerPermissionRequest()
    first = _date(form, "valid_from", "the first day")
    last = _date(form, "valid_until", "the last day")
    validity = Validity(
        valid_from=_midnight(first), valid_until=_midnight(last) + _DAY
    )
    return InstallerPermissionRequest(
        site_info=validity if site_info else None,
        devices=tuple(
            DevicePermissionRequest(serial=serial, permissions=frozenset(wanted),
                                    validity=validity)
            for serial, wanted in sorted(by_serial.items())
        ),
    )  # fmt: skip
