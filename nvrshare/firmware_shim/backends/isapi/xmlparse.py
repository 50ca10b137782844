"""Defensive parsing of the XML an ISAPI device sends.

Device output is hostile input: bodies are size-capped, any DTD is refused
before parsing (no entity expansion, no external references), and every
failure becomes `BadResponse`.  Lookups ignore namespaces, because firmwares
disagree on them (ver10 / ver20 / none).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone

from nvrshare.firmware_shim.errors import BadResponse

__all__ = [
    "MAX_XML_BYTES",
    "children",
    "int_of",
    "local_name",
    "parse",
    "parse_device_time",
    "text_of",
]

MAX_XML_BYTES = 1024 * 1024
MAX_TEXT = 4096
# A recorder clock outside these years is broken, not a fact to act on.
MIN_YEAR, MAX_YEAR = 1970, 2200


def parse(body: bytes, *, limit: int = MAX_XML_BYTES) -> ET.Element:
    """Parse one XML document, or raise `BadResponse`."""
    if len(body) > limit:
        raise BadResponse(f"XML body over {limit} bytes")
    head = body[:4096].upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in body.upper():
        raise BadResponse("XML with a DTD is refused")
    try:
        return ET.fromstring(body)  # noqa: S314 - bounded and DTD-free (checked above)
    except ET.ParseError as exc:
        raise BadResponse(f"malformed XML: {exc}") from None


def local_name(element: ET.Element) -> str:
    return element.tag.rsplit("}", 1)[-1] if isinstance(element.tag, str) else ""


def children(root: ET.Element, name: str) -> list[ET.Element]:
    """Every descendant named `name` (any namespace), in document order."""
    return [el for el in root.iter() if local_name(el) == name]


def text_of(root: ET.Element, *path: str, default: str | None = None) -> str | None:
    """Text at a path of local names below `root` (first match at each step)."""
    node: ET.Element | None = root
    for name in path:
        assert node is not None
        node = next((child for child in node if local_name(child) == name), None)
        if node is None:
            return default
    text = (node.text or "").strip() if node is not None else ""
    if len(text) > MAX_TEXT:
        raise BadResponse(f"{'/'.join(path)} is too long")
    return text


def int_of(root: ET.Element, *path: str, default: int | None = None) -> int | None:
    text = text_of(root, *path)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise BadResponse(f"{'/'.join(path)} is not an integer: {text[:32]!r}") from None


def parse_device_time(text: str, offset: timedelta) -> datetime:
    """An ISAPI time, read as device-local `offset` unless it carries its own offset.

    Hikvision firmwares write a trailing Z on times that are really local, so a
    Z is read as "local" too when `offset` is non-zero.
    """
    raw = text.strip()
    if not raw or len(raw) > 40:
        raise BadResponse(f"bad time {raw[:40]!r}")
    zulu = raw.endswith(("Z", "z"))
    try:
        value = datetime.fromisoformat(raw[:-1] if zulu else raw)
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone(offset) if offset else UTC)
        value = value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadResponse(f"bad time {raw[:40]!r}") from None
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise BadResponse(f"implausible time {raw[:40]!r}")
    return value
