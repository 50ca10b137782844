"""ISAPI PTZ documents: what we send (PTZData, PTZPreset) and what we read.

Hikvision units: continuous speeds -100..100; azimuth 0..3600 and elevation
-900..900 in tenths of a degree; absoluteZoom 10..400 in tenths of
magnification.  The shim's [-1, 1] scale maps linearly onto them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

from nvrshare.firmware_shim.backends.isapi import xmlparse
from nvrshare.firmware_shim.models import MAX_PRESET, PtzPreset, PtzVector

__all__ = ["continuous_body", "parse_position", "parse_presets", "preset_body"]


def _clamp(value: float) -> float:
    return max(-1.0, min(1.0, value))


def continuous_body(velocity: PtzVector) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><PTZData>'
        f"<pan>{round(velocity.pan * 100)}</pan><tilt>{round(velocity.tilt * 100)}</tilt>"
        f"<zoom>{round(velocity.zoom * 100)}</zoom></PTZData>"
    )


def preset_body(preset: int, name: str) -> str:
    label = escape(name[:64] or f"Preset {preset}")
    return (
        '<?xml version="1.0" encoding="UTF-8"?><PTZPreset>'
        f"<id>{preset}</id><presetName>{label}</presetName></PTZPreset>"
    )


def parse_position(root: ET.Element) -> PtzVector:
    """The head's position from a PTZStatus document, normalised to [-1, 1]."""
    azimuth = xmlparse.int_of(root, "AbsoluteHigh", "azimuth", default=1800) or 0
    elevation = xmlparse.int_of(root, "AbsoluteHigh", "elevation", default=0) or 0
    zoom = xmlparse.int_of(root, "AbsoluteHigh", "absoluteZoom", default=10) or 10
    return PtzVector(
        pan=_clamp(azimuth / 1800 - 1),
        tilt=_clamp(elevation / 900),
        zoom=_clamp((zoom - 10) / 195 - 1),
    )


def parse_presets(root: ET.Element) -> list[PtzPreset]:
    presets = []
    for item in xmlparse.children(root, "PTZPreset")[:MAX_PRESET]:
        number = xmlparse.int_of(item, "id")
        enabled = (xmlparse.text_of(item, "enabled") or "true").lower() == "true"
        if number is not None and 1 <= number <= MAX_PRESET and enabled:
            name = (xmlparse.text_of(item, "presetName") or "")[:64]
            presets.append(PtzPreset(number=number, name=name))
    return sorted(presets, key=lambda p: p.number)
