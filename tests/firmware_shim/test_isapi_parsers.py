"""ISAPI inventory and PTZ documents: device shapes in, validated values out."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from nvrshare.firmware_shim import AudioCodec, BadResponse, PtzVector
from nvrshare.firmware_shim.backends.isapi import inventory, ptz, xmlparse

NS = 'xmlns="http://www.hikvision.com/ver20/XMLSchema"'


def doc(text: str) -> ET.Element:
    return xmlparse.parse(text.encode())


def test_ptz_status_is_normalised_and_clamped() -> None:
    root = doc(
        f"<PTZStatus {NS}><AbsoluteHigh><elevation>450</elevation><azimuth>2700</azimuth>"
        "<absoluteZoom>205</absoluteZoom></AbsoluteHigh></PTZStatus>"
    )
    assert ptz.parse_position(root) == PtzVector(pan=0.5, tilt=0.5, zoom=0.0)
    wild = doc(
        "<PTZStatus><AbsoluteHigh><elevation>-99999</elevation><azimuth>99999</azimuth>"
        "</AbsoluteHigh></PTZStatus>"
    )
    assert ptz.parse_position(wild) == PtzVector(pan=1.0, tilt=-1.0, zoom=-1.0)


def test_presets_skip_disabled_and_bad_ids() -> None:
    root = doc(
        f"<PTZPresetList {NS}>"
        "<PTZPreset><enabled>true</enabled><id>3</id><presetName>Gate</presetName></PTZPreset>"
        "<PTZPreset><enabled>false</enabled><id>4</id></PTZPreset>"
        "<PTZPreset><id>999</id></PTZPreset>"
        "<PTZPreset><id>1</id><presetName>Door</presetName></PTZPreset>"
        "</PTZPresetList>"
    )
    assert [(p.number, p.name) for p in ptz.parse_presets(root)] == [(1, "Door"), (3, "Gate")]


def test_bodies_escape_and_scale() -> None:
    assert "<pan>-50</pan>" in ptz.continuous_body(PtzVector(pan=-0.5))
    assert "&lt;b&gt;" in ptz.preset_body(2, "<b>")


def test_nvr_channels_and_status() -> None:
    found = inventory.parse_proxy_channels(
        doc(
            f"<InputProxyChannelList {NS}><InputProxyChannel><id>2</id><name>Yard</name>"
            "</InputProxyChannel><InputProxyChannel><id>1</id></InputProxyChannel>"
            "</InputProxyChannelList>"
        )
    )
    inventory.apply_status(
        found,
        doc(
            "<InputProxyChannelStatusList><InputProxyChannelStatus><id>2</id>"
            "<online>false</online></InputProxyChannelStatus></InputProxyChannelStatusList>"
        ),
    )
    assert sorted(found.values()) == [(1, "Camera 1", True), (2, "Yard", False)]
    with pytest.raises(BadResponse):
        inventory.parse_proxy_channels(
            doc("<InputProxyChannelList><InputProxyChannel><id>0</id></InputProxyChannel>"
                "</InputProxyChannelList>")
        )


def test_camera_channels_from_stream_ids() -> None:
    root = doc(
        "<StreamingChannelList><StreamingChannel><id>101</id></StreamingChannel>"
        "<StreamingChannel><id>102</id></StreamingChannel>"
        "<StreamingChannel><id>99999</id></StreamingChannel></StreamingChannelList>"
    )
    assert inventory.parse_streaming_channels(root) == [(1, "Camera 1", True)]


def test_talk_channels_and_codecs() -> None:
    root = doc(
        "<TwoWayAudioChannelList><TwoWayAudioChannel><id>1</id>"
        "<audioCompressionType>G.711alaw</audioCompressionType></TwoWayAudioChannel>"
        "<TwoWayAudioChannel><id>2</id><audioCompressionType>G.711ulaw</audioCompressionType>"
        "</TwoWayAudioChannel></TwoWayAudioChannelList>"
    )
    assert inventory.parse_talk_channels(root) == {
        1: AudioCodec.G711_ALAW,
        2: AudioCodec.G711_ULAW,
    }
