from __future__ import annotations

import pytest

from nvrshare.protocol.validation import is_valid_domain, is_valid_serial


@pytest.mark.parametrize(
    "serial", ["DS-7608NI-K2-8P0820190101CCRRC12345678WCVU", "a", "A_b.c-1", "x" * 64]
)
def test_valid_serials(serial: str) -> None:
    assert is_valid_serial(serial)


@pytest.mark.parametrize(
    "serial",
    ["", "x" * 65, "-a", ".a", "a/b", "a+", "a#", "$a", "a b", "a\x00", "a\n", "é", b"ab", None],
)
def test_invalid_serials(serial: object) -> None:
    assert not is_valid_serial(serial)


@pytest.mark.parametrize("domain", ["home", "a", "front-door-2", "x" * 63])
def test_valid_domains(domain: str) -> None:
    assert is_valid_domain(domain)


@pytest.mark.parametrize("domain", ["", "x" * 64, "-a", "a-", "Home", "a.b", "a_b", "a\n", 5])
def test_invalid_domains(domain: object) -> None:
    assert not is_valid_domain(domain)
