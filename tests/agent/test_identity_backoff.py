from __future__ import annotations

import stat
from pathlib import Path

import pytest

from nvrshare.agent.backoff import Backoff, BackoffPolicy
from nvrshare.agent.errors import IdentityError
from nvrshare.agent.identity import KEY_FILE, load_or_create_identity


def test_identity_is_created_once_0600_and_reloaded(tmp_path: Path) -> None:
    state = tmp_path / "state"
    key = load_or_create_identity(state)
    path = state / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_or_create_identity(state)
    assert again.key_id == key.key_id


def test_identity_refuses_a_world_readable_or_corrupt_key(tmp_path: Path) -> None:
    load_or_create_identity(tmp_path)
    path = tmp_path / KEY_FILE
    path.chmod(0o644)
    with pytest.raises(IdentityError, match="chmod 600"):
        load_or_create_identity(tmp_path)
    path.chmod(0o600)
    path.write_bytes(b"garbage")
    with pytest.raises(IdentityError, match="not a PEM"):
        load_or_create_identity(tmp_path)


def test_backoff_is_capped_full_jitter() -> None:
    windows = []
    backoff = Backoff(
        BackoffPolicy(initial=0.5, maximum=4.0), uniform=lambda lo, hi: windows.append(hi) or hi
    )
    delays = [backoff.next_delay() for _ in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5
    real = Backoff(BackoffPolicy(initial=1.0, maximum=8.0))
    for _ in range(200):
        assert 0.0 <= real.next_delay() <= 8.0
    for _ in range(100):  # a long outage never overflows
        real.next_delay()
    assert real.window() == 8.0
    with pytest.raises(ValueError):
        BackoffPolicy(initial=2.0, maximum=1.0)
