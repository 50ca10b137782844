"""H.264 RTP packetisation: single NAL, FU-A round trip, markers, sequence wrap."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nvrshare.simulators.h264clip import TINTS, clip, encode_clip, split_annexb, tint_of
from nvrshare.simulators.rtp import H264Packetizer, interleave, rtcp_bye


def depacketize(packets: list[bytes]) -> list[bytes]:
    nals: list[bytes] = []
    partial = bytearray()
    for packet in packets:
        payload = packet[12:]
        kind = payload[0] & 0x1F
        if kind == 28:
            if payload[1] & 0x80:
                partial = bytearray([(payload[0] & 0xE0) | (payload[1] & 0x1F)])
            partial += payload[2:]
            if payload[1] & 0x40:
                nals.append(bytes(partial))
        else:
            nals.append(payload)
    return nals


nal_units = st.tuples(st.integers(1, 23), st.binary(max_size=5000)).map(
    lambda t: bytes([0x60 | t[0]]) + t[1]  # a real NAL header: types 1..23
)


@given(st.lists(nal_units, min_size=1, max_size=4))
def test_round_trip_and_marker(nals: list[bytes]) -> None:
    packetizer = H264Packetizer(ssrc=7, sequence=0xFFFE, max_payload=1000)
    packets = packetizer.packetize(nals, 1234)
    assert depacketize(packets) == nals
    assert all(len(p) <= 1012 for p in packets)
    markers = [bool(p[1] & 0x80) for p in packets]
    assert markers == [False] * (len(packets) - 1) + [True]
    sequences = [struct.unpack("!H", p[2:4])[0] for p in packets]
    assert sequences == [(0xFFFE + i) & 0xFFFF for i in range(len(packets))]
    assert {struct.unpack("!I", p[4:8])[0] for p in packets} == {1234}


def test_clip_starts_with_parameter_sets_and_idr() -> None:
    video = clip(320, 180)
    assert [n[0] & 0x1F for n in video.frames[0]] == [7, 8, 5]
    assert len(video.frames) == 50
    assert video.sps == video.frames[0][0]


def test_split_annexb() -> None:
    assert split_annexb(b"\x00\x00\x00\x01ab\x00\x00\x01cd") == [b"ab", b"cd"]
    assert split_annexb(b"junk") == []


def test_interleave_and_bye() -> None:
    assert interleave(1, b"xy") == b"$\x01\x00\x02xy"
    bye = rtcp_bye(H264Packetizer(ssrc=5), ntp_seconds=0.0, rtp_timestamp=0)
    assert bye[1] == 200  # starts with a sender report
    assert bye[29] == 203


def test_tints_are_distinct_and_checked() -> None:
    assert len(set(TINTS)) == len(TINTS)
    assert all(tint_of(u, v) == i for i, (u, v) in enumerate(TINTS))
    with pytest.raises(ValueError):
        encode_clip(64, 64, tint=len(TINTS))
    with pytest.raises(ValueError):
        encode_clip(63, 64)
