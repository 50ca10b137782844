"""Model invariants and the public surface of firmware_shim."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

import nvrshare.firmware_shim as shim
from nvrshare.firmware_shim import (
    AlarmEvent,
    AlarmKind,
    Channel,
    ConfigError,
    PtzVector,
    RecorderConfig,
    RecordingSegment,
    ShimUsageError,
    StreamSource,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_public_names_are_pinned() -> None:
    assert sorted(shim.__all__) == sorted(
        [
            "BACKENDS", "AlarmEvent", "AlarmKind", "AudioCodec", "AuthFailed", "BadResponse",
            "Capability", "Channel", "ConfigError", "DeviceBusy", "DeviceError", "DeviceInfo",
            "DeviceTimeout", "DeviceUnreachable", "NoSuchChannel", "NotFound", "NotSupported",
            "PtzPreset", "PtzStatus", "PtzVector", "Recorder", "RecorderConfig",
            "RecordingSegment", "ShimError", "ShimUsageError", "StreamKind", "StreamSource",
            "TalkChannel", "UntrustedDevice", "open_recorder",
        ]
    )


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_ptz_vector_accepts_only_unit_range(value: float) -> None:
    if -1.0 <= value <= 1.0:
        assert PtzVector(pan=value).pan == value
    else:
        with pytest.raises(ShimUsageError):
            PtzVector(tilt=value)


def test_ptz_vector_rejects_bool_and_knows_zero() -> None:
    with pytest.raises(ShimUsageError):
        PtzVector(pan=True)
    assert PtzVector().is_zero
    assert not PtzVector(zoom=-0.5).is_zero


@pytest.mark.parametrize("number", [0, -1, 257, True])
def test_channel_numbers_are_bounded(number: int) -> None:
    with pytest.raises(ShimUsageError):
        Channel(number=number, name="x", online=True)


def test_segments_need_aware_ordered_times() -> None:
    with pytest.raises(ShimUsageError):
        RecordingSegment(channel=1, start=NOW.replace(tzinfo=None), end=NOW)
    with pytest.raises(ShimUsageError):
        RecordingSegment(channel=1, start=NOW, end=NOW)
    seg = RecordingSegment(channel=1, start=NOW, end=NOW + timedelta(minutes=1))
    assert seg.end - seg.start == timedelta(minutes=1)


def test_alarm_event_validates() -> None:
    with pytest.raises(ShimUsageError):
        AlarmEvent(kind=AlarmKind.MOTION, active=True, at=NOW.replace(tzinfo=None))
    event = AlarmEvent(kind=AlarmKind.IO, active=True, at=NOW, input_port=2)
    assert event.channel is None


def test_stream_source_hides_password() -> None:
    source = StreamSource(url="rtsp://h/1", username="u", password="s3cret")
    assert "s3cret" not in repr(source)
    with pytest.raises(ShimUsageError):
        StreamSource(url="http://h/1")


def test_recorder_config_validates() -> None:
    with pytest.raises(ConfigError):
        RecorderConfig(backend="nope")
    with pytest.raises(ConfigError):
        RecorderConfig(backend="isapi")
    with pytest.raises(ConfigError):
        RecorderConfig(backend="isapi", host="h", port=70000)
    assert "pw" not in repr(RecorderConfig(backend="isapi", host="h", password="pw"))
