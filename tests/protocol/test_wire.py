from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nvrshare.protocol.errors import LocalProtocolError, RemoteProtocolError
from nvrshare.protocol.wire import WireLimits, pack, unpack, unpack_fixed_shape


def test_round_trip() -> None:
    value = {"a": [1, 2.5, b"x", None, True], 3: {"n": "s"}}
    assert unpack(pack(value)) == value


def test_pack_refuses_what_msgpack_cannot_encode() -> None:
    with pytest.raises(LocalProtocolError):
        pack(object())
    with pytest.raises(LocalProtocolError):
        pack(2**64)


@pytest.mark.parametrize(
    ("data", "limits"),
    [
        (pack("x" * 100), WireLimits(max_size=50)),
        (pack("x" * 100), WireLimits(max_string=50)),
        (pack(b"x" * 100), WireLimits(max_size=101)),
        (pack(list(range(10))), WireLimits(max_items=5)),
        (pack({str(i): i for i in range(10)}), WireLimits(max_items=5)),
        (pack([[[[1]]]]), WireLimits(max_depth=3)),
        (pack({"a": {"b": {"c": {}}}}), WireLimits(max_depth=3)),
        (pack(1) + pack(2), WireLimits()),
        (b"\xc1", WireLimits()),
        (b"\x92\x01", WireLimits()),
        (msgpack.packb(msgpack.ExtType(1, b"x")), WireLimits()),
        (b"\xd6\xff\x00\x00\x00\x00", WireLimits()),  # a msgpack timestamp
        (b"\x81\x91\x01\x02", WireLimits()),  # an array as a map key
        (b"\xa2\xff\xfe", WireLimits()),  # invalid UTF-8
        (b"\x91" * 5000 + b"\x01", WireLimits(max_size=10_000, max_depth=10_000)),
    ],
)
def test_unpack_refusals(data: bytes, limits: WireLimits) -> None:
    with pytest.raises(RemoteProtocolError):
        unpack(data, limits)
    # Everything but the depth walk is shared with the fixed-shape decoder.
    if limits.max_depth >= 8:
        with pytest.raises(RemoteProtocolError):
            unpack_fixed_shape(data, limits)


def test_the_fixed_shape_decoder_leaves_depth_to_its_caller() -> None:
    limits = WireLimits(max_depth=1)
    assert unpack_fixed_shape(pack([[[1]]]), limits) == [[[1]]]
    with pytest.raises(RemoteProtocolError):
        unpack_fixed_shape(pack([[[1]]]), WireLimits(max_size=3))
    # msgpack's own parse stack still bounds what it builds.
    with pytest.raises(RemoteProtocolError):
        unpack_fixed_shape(b"\x91" * 5000 + b"\x01", WireLimits(max_size=10_000))


def test_limits_compare_by_their_bounds_only() -> None:
    assert WireLimits(max_items=5) == WireLimits(max_items=5) != WireLimits(max_items=6)
    assert repr(WireLimits()) == (
        "WireLimits(max_size=262144, max_string=65536, max_items=4096, max_depth=8)"
    )


def test_depth_limit_is_exact() -> None:
    assert unpack(pack([[[1]]]), WireLimits(max_depth=3)) == [[[1]]]


@given(st.binary(max_size=256))
def test_any_bytes_unpack_or_raise_remote_error(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        unpack(data)


@given(st.binary(max_size=256), st.integers(0, 8), st.integers(0, 8))
def test_any_bytes_unpack_to_a_fixed_shape_or_raise_remote_error(
    data: bytes, max_string: int, max_items: int
) -> None:
    limits = WireLimits(max_size=128, max_string=max_string, max_items=max_items)
    try:
        value = unpack_fixed_shape(data, limits)
    except RemoteProtocolError:
        return
    # Whatever decodes is what the depth-checked decoder returns (compared
    # encoded, since NaN is not equal to itself).
    deep = WireLimits(max_size=128, max_string=max_string, max_items=max_items, max_depth=1000)
    assert pack(value) == pack(unpack(data, deep))
