"""Any JSON at all either parses into a request or is refused with InvalidRequest."""

from __future__ import annotations

import contextlib
import json

from hypothesis import given
from hypothesis import strategies as st

from nvrshare.relay.api.bodies import decode_json, parse_body, parse_matrix, query_limit
from nvrshare.relay.api.routes import ROUTES
from nvrshare.relay.errors import InvalidRequest

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=5),
    max_leaves=25,
)  # fmt: skip
SPECS = [route.body for route in ROUTES if route.body is not None]


@given(st.binary(max_size=200))
def test_any_bytes_decode_or_are_refused(raw: bytes) -> None:
    with contextlib.suppress(InvalidRequest):
        decode_json(raw)


@given(st.sampled_from(SPECS), JSON)
def test_any_json_parses_or_is_refused(spec: dict, value: object) -> None:
    try:
        body = parse_body(spec, value)
    except InvalidRequest:
        return
    assert set(body) <= set(spec)


@given(JSON)
def test_any_matrix_parses_or_is_refused(value: object) -> None:
    try:
        matrix = parse_matrix(value)
    except InvalidRequest:
        return
    assert matrix
    assert all(1 <= channel <= 256 and bits for channel, bits in matrix.items())


@given(st.dictionaries(st.sampled_from([str(n) for n in range(0, 300, 7)]),
                       st.lists(st.sampled_from(["live_view", "ptz", "alarm", "x"]), max_size=6),
                       max_size=4))  # fmt: skip
def test_plausible_matrices(value: dict) -> None:
    with contextlib.suppress(InvalidRequest):
        parse_matrix(json.loads(json.dumps(value)))


def test_unicode_digits_are_refused_not_crashed() -> None:
    for call in (lambda: query_limit("²"), lambda: parse_matrix({"²": ["ptz"]})):
        try:
            call()
        except InvalidRequest:
            continue
        raise AssertionError("accepted a non-ASCII digit")


@given(st.text(max_size=10) | st.none())
def test_any_limit_parses_or_is_refused(value: str | None) -> None:
    with contextlib.suppress(InvalidRequest):
        assert 1 <= query_limit(value) <= 200
