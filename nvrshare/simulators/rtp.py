"""RTP packetisation of H.264 (RFC 3550 + RFC 6184) and RTSP interleaving.

Sans-IO: `H264Packetizer` turns access units into RTP packets and keeps the
sequence number running across calls; `interleave` wraps a packet in the
RFC 2326 §10.12 `$ channel length` frame.  Small NAL units travel as Single NAL
Unit packets, larger ones as FU-A fragments; the marker bit is set on the last
packet of each access unit.
"""

from __future__ import annotations

import struct

__all__ = [
    "CLOCK_RATE",
    "PAYLOAD_TYPE",
    "H264Packetizer",
    "interleave",
    "rtcp_bye",
    "rtcp_sender_report",
]

CLOCK_RATE = 90_000
PAYLOAD_TYPE = 96
FU_A = 28
# Fits an Ethernet MTU even when a proxy re-sends the packet over UDP.
DEFAULT_MAX_PAYLOAD = 1400


class H264Packetizer:
    """Stateful RTP packetiser for one H.264 stream (one SSRC)."""

    def __init__(self, *, ssrc: int, sequence: int = 0, max_payload: int = DEFAULT_MAX_PAYLOAD):
        if not 0 <= ssrc < 2**32 or not 0 <= sequence < 2**16:
            raise ValueError("ssrc/sequence out of range")
        if max_payload < 16:
            raise ValueError("max_payload too small")
        self.ssrc = ssrc
        self.sequence = sequence
        self.max_payload = max_payload
        self.packets_sent = 0
        self.octets_sent = 0

    def _header(self, timestamp: int, marker: bool) -> bytes:
        header = struct.pack(
            "!BBHII",
            0x80,  # version 2, no padding, no extension, no CSRC
            (0x80 if marker else 0) | PAYLOAD_TYPE,
            self.sequence,
            timestamp & 0xFFFFFFFF,
            self.ssrc,
        )
        self.sequence = (self.sequence + 1) & 0xFFFF
        return header

    def packetize(self, nals: tuple[bytes, ...] | list[bytes], timestamp: int) -> list[bytes]:
        """RTP packets carrying one access unit, all with `timestamp` (90 kHz)."""
        packets: list[bytes] = []
        payloads: list[bytes] = []
        for nal in nals:
            if not nal:
                continue
            if len(nal) <= self.max_payload:
                payloads.append(nal)
                continue
            header = nal[0]
            indicator = (header & 0xE0) | FU_A
            body = nal[1:]
            chunk = self.max_payload - 2
            pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)]
            for index, piece in enumerate(pieces):
                start = 0x80 if index == 0 else 0
                end = 0x40 if index == len(pieces) - 1 else 0
                payloads.append(bytes((indicator, start | end | (header & 0x1F))) + piece)
        for index, payload in enumerate(payloads):
            packets.append(self._header(timestamp, index == len(payloads) - 1) + payload)
            self.packets_sent += 1
            self.octets_sent += len(payload)
        return packets


def interleave(channel: int, packet: bytes) -> bytes:
    """Frame `packet` for RTSP-over-TCP on interleaved `channel`."""
    if not 0 <= channel <= 255 or len(packet) > 0xFFFF:
        raise ValueError("bad interleaved channel or packet too large")
    return struct.pack("!BBH", 0x24, channel, len(packet)) + packet


def rtcp_sender_report(
    packetizer: H264Packetizer, *, ntp_seconds: float, rtp_timestamp: int
) -> bytes:
    """An RTCP SR (RFC 3550 §6.4.1) so clients can map RTP time to wall time."""
    ntp = int(ntp_seconds + 2_208_988_800)  # NTP epoch is 1900
    fraction = int((ntp_seconds % 1) * 2**32) & 0xFFFFFFFF
    return struct.pack(
        "!BBHIIIIII",
        0x80,
        200,
        6,
        packetizer.ssrc,
        ntp & 0xFFFFFFFF,
        fraction,
        rtp_timestamp & 0xFFFFFFFF,
        packetizer.packets_sent & 0xFFFFFFFF,
        packetizer.octets_sent & 0xFFFFFFFF,
    )


def rtcp_bye(packetizer: H264Packetizer, *, ntp_seconds: float, rtp_timestamp: int) -> bytes:
    """A compound SR + BYE: tells the client this source has ended (end of a playback).

    RFC 3550 §6.1 wants compound packets to start with a report, and ffmpeg
    ignores RTCP datagrams shorter than an RTP header, so a bare BYE is not enough.
    """
    report = rtcp_sender_report(packetizer, ntp_seconds=ntp_seconds, rtp_timestamp=rtp_timestamp)
    return report + struct.pack("!BBHI", 0x81, 203, 1, packetizer.ssrc)
