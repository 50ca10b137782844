"""A short H.264 clip, encoded once with PyAV/libx264, split into NAL units.

The RTSP simulator loops it.  Baseline profile, no B-frames, a closed GOP of
`fps` frames and SPS/PPS repeated before every IDR, so a client that joins (or
a proxy that reconnects) mid-stream can start decoding at the next keyframe.
Clips are cached per (width, height, fps, seconds, tint) for the life of the
process.  The tint is a flat colour cast: the recorder gives each channel its
own (channel % 8), so a decoded picture tells which channel it came from.
"""

from __future__ import annotations

import base64
import functools
import threading
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["TINTS", "H264Clip", "clip", "encode_clip", "split_annexb", "tint_of"]

NAL_SPS = 7
NAL_PPS = 8
NAL_IDR = 5
MAX_PIXELS = 1920 * 1080


@dataclass(frozen=True, kw_only=True, slots=True)
class H264Clip:
    """Access units (each a tuple of NAL units without start codes) plus parameter sets."""

    width: int
    height: int
    fps: int
    frames: tuple[tuple[bytes, ...], ...]
    sps: bytes
    pps: bytes

    @property
    def profile_level_id(self) -> str:
        """The three bytes after the SPS header, as SDP's profile-level-id wants them."""
        return self.sps[1:4].hex().upper()

    @property
    def sprop_parameter_sets(self) -> str:
        return ",".join(base64.b64encode(p).decode("ascii") for p in (self.sps, self.pps))


def split_annexb(data: bytes) -> list[bytes]:
    """Split an Annex B byte stream at 3- or 4-byte start codes; empty NALs dropped."""
    nals: list[bytes] = []
    i, n, start = 0, len(data), -1
    while i + 3 <= n:
        if data[i] == 0 and data[i + 1] == 0 and data[i + 2] == 1:
            if start >= 0:
                nals.append(data[start:i].rstrip(b"\x00"))
            i += 3
            start = i
        else:
            i += 1
    if start >= 0:
        nals.append(data[start:])
    return [nal for nal in nals if nal]


# Chroma (U, V) of each tint: a flat colour cast that survives encoding, so a test
# can tell which channel a decoded picture came from (see `tint_of`).
TINTS = ((128, 128), (64, 192), (192, 64), (64, 64), (192, 192), (96, 160), (160, 96), (32, 128))


def tint_of(u_mean: float, v_mean: float) -> int:
    """The tint whose chroma is nearest to a decoded frame's mean U and V."""
    return min(
        range(len(TINTS)),
        key=lambda i: (TINTS[i][0] - u_mean) ** 2 + (TINTS[i][1] - v_mean) ** 2,
    )


def _frame_planes(
    width: int, height: int, index: int, line_sizes: list[int], tint: int
) -> list[bytes]:
    """A moving diagonal gradient with a bright bar, cheap to build without numpy."""
    luma_rows = []
    bar = (index * 8) % width
    for y in range(0, height, 8):
        row = bytearray(((x + y + index * 6) & 0xFF) for x in range(line_sizes[0]))
        row[bar : bar + 16] = b"\xeb" * len(row[bar : bar + 16])
        luma_rows.append(bytes(row) * min(8, height - y))
    chroma_h = height // 2
    u, v = TINTS[tint]
    return [
        b"".join(luma_rows),
        bytes([u]) * (line_sizes[1] * chroma_h),
        bytes([v]) * (line_sizes[2] * chroma_h),
    ]


def encode_clip(
    width: int = 640, height: int = 360, fps: int = 25, seconds: int = 2, tint: int = 0
) -> H264Clip:
    """Encode `seconds` of synthetic video in colour `tint`; ValueError for silly sizes."""
    if width % 2 or height % 2 or width * height > MAX_PIXELS or width < 16 or height < 16:
        raise ValueError(f"unsupported resolution {width}x{height}")
    if not 0 <= tint < len(TINTS):
        raise ValueError(f"tint must be 0..{len(TINTS) - 1}")
    if not 1 <= fps <= 60 or not 1 <= seconds <= 10:
        raise ValueError("fps must be 1..60 and seconds 1..10")
    import av  # noqa: PLC0415 - heavy import, only where a clip is built

    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.time_base = Fraction(1, fps)
    codec.framerate = Fraction(fps, 1)
    codec.options = {
        "preset": "ultrafast",
        "profile": "baseline",
        "tune": "zerolatency",
        "x264-params": (
            f"keyint={fps}:min-keyint={fps}:scenecut=0:repeat-headers=1:bframes=0:threads=1"
        ),
    }
    packets = []
    for index in range(fps * seconds):
        frame = av.VideoFrame(width, height, "yuv420p")
        line_sizes = [p.line_size for p in frame.planes]
        planes = _frame_planes(width, height, index, line_sizes, tint)
        for plane, data in zip(frame.planes, planes, strict=True):
            plane.update(data)
        frame.pts = index
        packets.extend(codec.encode(frame))
    packets.extend(codec.encode(None))
    frames = []
    sps = pps = b""
    for packet in packets:
        nals = [n for n in split_annexb(bytes(packet)) if n[0] & 0x1F != 6]  # drop SEI
        for nal in nals:
            if nal[0] & 0x1F == NAL_SPS and not sps:
                sps = nal
            elif nal[0] & 0x1F == NAL_PPS and not pps:
                pps = nal
        frames.append(tuple(nals))
    if not sps or not pps or not frames:
        raise RuntimeError("encoder produced no parameter sets")
    return H264Clip(width=width, height=height, fps=fps, frames=tuple(frames), sps=sps, pps=pps)


_lock = threading.Lock()


@functools.cache
def _cached(width: int, height: int, fps: int, seconds: int, tint: int) -> H264Clip:
    return encode_clip(width, height, fps, seconds, tint)


def clip(
    width: int = 640, height: int = 360, fps: int = 25, seconds: int = 2, tint: int = 0
) -> H264Clip:
    """The cached clip for these parameters (encoded on first use, ~0.1 s)."""
    with _lock:
        return _cached(width, height, fps, seconds, tint)
