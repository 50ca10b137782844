"""Bounded msgpack: the only way bytes from a peer become Python objects.

msgpack's own limits bound the length of each string, binary and collection;
this module adds a total size limit and a nesting-depth limit, and turns every
decoding failure into `RemoteProtocolError`, so callers see one exception type
whatever the bytes were.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgpack

from nvrshare.protocol.errors import LocalProtocolError, RemoteProtocolError

__all__ = ["WireLimits", "pack", "unpack", "unpack_fixed_shape"]


@dataclass(frozen=True, kw_only=True, slots=True)
class WireLimits:
    """Upper bounds applied while decoding; all sizes in bytes or items."""

    max_size: int = 256 * 1024
    max_string: int = 64 * 1024
    max_items: int = 4096
    max_depth: int = 8
    # msgpack's keyword arguments, built once: decoding is on every hot path.
    _options: dict[str, object] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        options = {
            "raw": False,
            "use_list": True,
            "strict_map_key": False,
            "max_str_len": self.max_string,
            "max_bin_len": self.max_size,
            "max_array_len": self.max_items,
            "max_map_len": self.max_items,
            "max_ext_len": 0,
        }
        object.__setattr__(self, "_options", options)


DEFAULT_LIMITS = WireLimits()


def pack(value: object) -> bytes:
    """Encode `value` as msgpack; `LocalProtocolError` if it is not encodable."""
    try:
        return msgpack.packb(value, use_bin_type=True, strict_types=False)  # type: ignore[no-any-return]
    except (TypeError, ValueError, OverflowError) as exc:
        raise LocalProtocolError(f"cannot encode {type(value).__name__}: {exc}") from exc


def _check_depth(value: object, max_depth: int) -> None:
    # Level by level over containers only, iterative so a hostile nesting cannot
    # exhaust the Python stack.  Map keys are never containers: msgpack refuses
    # unhashable keys (use_list=True), so only map values can nest.
    level = [value] if type(value) is list or type(value) is dict else []
    depth = 1
    while level:
        if depth > max_depth:
            raise RemoteProtocolError(f"nesting deeper than {max_depth}")
        level = [
            child
            for item in level
            for child in (item if type(item) is list else item.values())  # type: ignore[union-attr]
            if type(child) is list or type(child) is dict
        ]
        depth += 1


def unpack_fixed_shape(data: bytes, limits: WireLimits) -> object:
    """`unpack` without the nesting walk, for decoders that check an exact shape.

    Sizes and counts are bounded as in `unpack`, and msgpack's own parse stack
    bounds nesting while decoding; `limits.max_depth` is not applied.  Only a
    caller that refuses every container it does not expect (so that what it
    accepts has a fixed depth) may use this.  Raises `RemoteProtocolError`.
    """
    if len(data) > limits.max_size:
        raise RemoteProtocolError(f"message of {len(data)} bytes exceeds {limits.max_size}")
    try:
        return msgpack.unpackb(data, **limits._options)
    # msgpack raises a zoo (ExtraData, FormatError, StackError, ValueError,
    # UnicodeDecodeError, TypeError for unhashable keys); this is the boundary.
    except Exception as exc:
        raise RemoteProtocolError(f"malformed msgpack: {type(exc).__name__}") from exc


def unpack(data: bytes, limits: WireLimits = DEFAULT_LIMITS) -> object:
    """Decode one msgpack value from `data`, bounded by `limits`.

    Raises `RemoteProtocolError` for oversized input, malformed msgpack,
    trailing bytes, extension types, non-finite shapes or excess nesting.
    """
    value = unpack_fixed_shape(data, limits)
    _check_depth(value, limits.max_depth)
    return value
