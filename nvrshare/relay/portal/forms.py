"""HTML form fields → service arguments.  Every value is hostile: bounded, typed, checked.

Only `application/x-www-form-urlencoded` bodies are read (no multipart: the
portal never takes files), at most `MAX_FIELDS` fields.  Anything malformed
raises `InvalidRequest`, which the portal shows like any other refusal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aiohttp import web
from multidict import MultiDictProxy

from nvrshare.protocol.permissions import ALL_PERMISSIONS, MAX_CHANNEL, Permission
from nvrshare.relay.errors import InvalidRequest, PayloadTooLarge
from nvrshare.relay.services.identifiers import classify
from nvrshare.relay.services.models import Channel
from nvrshare.relay.services.shares import RecipientKind, RecipientRef

__all__ = [
    "MAX_FIELDS",
    "PERMISSION_COLUMNS",
    "Form",
    "matrix_from_form",
    "matrix_rows",
    "permission_labels",
    "read_form",
    "recipient_from_form",
]

MAX_FIELDS = MAX_CHANNEL * 5 + 32
MAX_FIELD_LENGTH = 512
FORM_TYPE = "application/x-www-form-urlencoded"

# The matrix's columns, in Hik-Connect's order: (form value, label, flag).
PERMISSION_COLUMNS: tuple[tuple[str, str, Permission], ...] = (
    ("live_view", "Live View", Permission.LIVE_VIEW),
    ("playback", "Playback", Permission.PLAYBACK),
    ("alarm", "Alarm", Permission.ALARM),
    ("two_way_audio", "Two-way Audio", Permission.TWO_WAY_AUDIO),
    ("ptz", "PTZ", Permission.PTZ),
)
_FLAG_BY_NAME = {name: flag for name, _label, flag in PERMISSION_COLUMNS}
_RECIPIENT_KINDS = {"email": RecipientKind.EMAIL, "phone": RecipientKind.PHONE,
                    "name": RecipientKind.NAME}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Form:
    """A parsed form; accessors return bounded strings or raise `InvalidRequest`."""

    fields: MultiDictProxy[str]

    def text(self, name: str, *, required: bool = True, limit: int = MAX_FIELD_LENGTH) -> str:
        values = self.fields.getall(name, [])
        if len(values) > 1:
            raise InvalidRequest(f"the field {name!r} was sent more than once")
        value = values[0] if values else ""
        if not isinstance(value, str) or len(value) > limit:
            raise InvalidRequest(f"the field {name!r} is too long (at most {limit} characters)")
        if required and not value.strip():
            raise InvalidRequest(f"fill in the field {name!r}")
        return value

    def optional(self, name: str, *, limit: int = MAX_FIELD_LENGTH) -> str | None:
        """The field's stripped text, or None when absent or blank."""
        value = self.text(name, required=False, limit=limit).strip()
        return value or None

    def checked(self, name: str) -> bool:
        return bool(self.fields.getall(name, []))

    def many(self, name: str, *, limit: int = 64) -> list[str]:
        values = self.fields.getall(name, [])
        if not all(isinstance(v, str) and 0 < len(v) <= limit for v in values):
            raise InvalidRequest(f"the field {name!r} has a malformed value")
        return list(dict.fromkeys(values))


async def read_form(request: web.Request) -> Form:
    """The request's form body (cached by aiohttp, so middleware and handler share it)."""
    if request.body_exists and request.content_type != FORM_TYPE:
        raise InvalidRequest("forms must be sent as application/x-www-form-urlencoded")
    try:
        fields = await request.post()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge("the form is too large") from None
    except ValueError:
        raise InvalidRequest("the form body is malformed") from None
    if len(fields) > MAX_FIELDS:
        raise InvalidRequest("the form has too many fields")
    return Form(fields)  # type: ignore[arg-type]


def matrix_from_form(form: Form, channels: Iterable[int]) -> dict[int, Permission]:
    """The channel-by-permission matrix the form's checkboxes describe.

    Checkboxes are named `perm` with values `<channel>:<permission>`; the
    `all_permissions` box grants everything on every channel of the device.
    Unknown channels are left for the service to refuse, so the rule lives there.
    """
    if form.checked("all_permissions"):
        return dict.fromkeys(channels, ALL_PERMISSIONS)
    matrix: dict[int, Permission] = {}
    for value in form.many("perm", limit=24):
        channel_text, _, name = value.partition(":")
        if not (channel_text.isdigit() and len(channel_text) <= 3) or name not in _FLAG_BY_NAME:
            raise InvalidRequest("the permission matrix has a malformed box")
        channel = int(channel_text)
        if not 1 <= channel <= MAX_CHANNEL:
            raise InvalidRequest(f"channel must be in 1..{MAX_CHANNEL}")
        matrix[channel] = matrix.get(channel, Permission.NONE) | _FLAG_BY_NAME[name]
    if not matrix:
        raise InvalidRequest("the permission matrix is empty: grant at least one permission")
    return matrix


def recipient_from_form(form: Form) -> RecipientRef:
    """The account to share with: an email, phone number or account name.

    `recipient_kind` may be `auto` (the default): the value's shape decides,
    the same way a login string is classified.
    """
    value = form.text("recipient", limit=254).strip()
    kind_text = form.optional("recipient_kind", limit=8) or "auto"
    if kind_text == "auto":
        return RecipientRef(kind=RecipientKind(classify(value).value), value=value)
    kind = _RECIPIENT_KINDS.get(kind_text)
    if kind is None:
        raise InvalidRequest("recipient kind must be email, phone or name")
    return RecipientRef(kind=kind, value=value)


def permission_labels(permission: Permission) -> list[str]:
    return [label for _name, label, flag in PERMISSION_COLUMNS if flag & permission]


def matrix_rows(
    channels: Iterable[Channel], matrix: Mapping[int, Permission]
) -> list[tuple[int, str, set[str]]]:
    """(number, name, permissions granted) per channel, for prefilled checkboxes."""
    return [
        (
            channel.number,
            channel.name,
            {name for name, _l, flag in PERMISSION_COLUMNS if flag & matrix.get(channel.number, 0)},
        )
        for channel in channels
    ]
