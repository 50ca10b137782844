"""Account identifiers: email, phone number and account name, validated and normalised.

Each is stored in one canonical form (email and name lowercased, phone in
E.164 `+<digits>`), so "Alice@Example.com" and "alice@example.com" are one
account.  A login string is classified by shape: it contains `@` → email;
it starts with `+`, `00` or a digit → phone; otherwise → account name (names
must start with a letter, so the three never overlap).
"""

from __future__ import annotations

import enum
import re

from nvrshare.relay.errors import InvalidRequest

__all__ = [
    "IdentifierKind",
    "classify",
    "normalize",
    "normalize_email",
    "normalize_name",
    "normalize_phone",
]

_EMAIL = re.compile(r"[^@\s]{1,64}@[A-Za-z0-9.-]{1,189}\.[A-Za-z]{2,63}")
_PHONE = re.compile(r"\+[1-9][0-9]{6,14}")
_NAME = re.compile(r"[a-z][a-z0-9_.-]{2,31}")
_PHONE_FILLER = re.compile(r"[\s().-]")


class IdentifierKind(enum.StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    NAME = "name"


def normalize_email(value: str) -> str:
    email = value.strip().lower() if isinstance(value, str) else ""
    if len(email) > 254 or not _EMAIL.fullmatch(email) or any(ord(c) < 33 for c in email):
        raise InvalidRequest("email is not a valid address")
    return email


def normalize_phone(value: str) -> str:
    phone = _PHONE_FILLER.sub("", value) if isinstance(value, str) and len(value) <= 32 else ""
    if phone.startswith("00"):
        phone = "+" + phone[2:]
    if not _PHONE.fullmatch(phone):
        raise InvalidRequest("phone must be an international number like +4915112345678")
    return phone


def normalize_name(value: str) -> str:
    name = value.strip().lower() if isinstance(value, str) else ""
    if not _NAME.fullmatch(name):
        raise InvalidRequest(
            "account name must be 3..32 characters: a letter, then letters, digits, _ . -"
        )
    return name


def classify(login: str) -> IdentifierKind:
    text = login.strip() if isinstance(login, str) else ""
    if "@" in text:
        return IdentifierKind.EMAIL
    if text[:1] == "+" or text[:1].isdigit():
        return IdentifierKind.PHONE
    return IdentifierKind.NAME


_NORMALIZERS = {
    IdentifierKind.EMAIL: normalize_email,
    IdentifierKind.PHONE: normalize_phone,
    IdentifierKind.NAME: normalize_name,
}


def normalize(kind: IdentifierKind, value: str) -> str:
    """The canonical form of `value` as a `kind`; `InvalidRequest` if it is not one."""
    return _NORMALIZERS[kind](value)
