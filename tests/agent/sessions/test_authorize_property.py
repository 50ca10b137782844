"""Property: whatever a (compromised) relay signs, the agent admits only what the synced set allows.

For random token matrices, synced grants and requests, an admitted request is
allowed by the token *and* by the device's synced grant; a refused one is not
allowed by at least one of them (or is a replay).
"""

from __future__ import annotations

import itertools
import secrets
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from nvrshare.agent.sessions.authorize import Authorizer, ReplayGuard
from nvrshare.agent.sessions.errors import SessionRefused
from nvrshare.firmware_shim.backends.sim import SimRecorder
from nvrshare.protocol.messages import SessionKind, SessionRequest
from nvrshare.protocol.permissions import Grant, Permission, check
from tests.agent.sessions.harness import ACCOUNT, SERIAL, Harness

KINDS = [SessionKind.LIVE_MAIN, SessionKind.LIVE_SUB, SessionKind.TALK, SessionKind.ALARM]
FLAGS = [Permission.LIVE_VIEW, Permission.TWO_WAY_AUDIO, Permission.ALARM, Permission.PTZ]
matrices = st.dictionaries(
    st.integers(min_value=1, max_value=4),
    st.sets(st.sampled_from(FLAGS), min_size=1).map(
        lambda flags: Permission(sum(int(f) for f in flags))
    ),
    max_size=4,
)


def test_admission_never_exceeds_token_or_synced_grant(tmp_path: Path) -> None:
    harness = Harness(tmp_path, SimRecorder())
    authorizer = Authorizer(harness.grants, SERIAL, ReplayGuard(max_uses_per_token=10**6))
    counter = itertools.count()

    @settings(max_examples=100)
    @given(
        token_matrix=matrices,
        synced_matrix=matrices,
        channel=st.integers(1, 4),
        kind=st.sampled_from(KINDS),
    )
    def check_one(
        token_matrix: dict[int, Permission],
        synced_matrix: dict[int, Permission],
        channel: int,
        kind: SessionKind,
    ) -> None:
        next(counter)
        harness.publish_grants({ACCOUNT: synced_matrix} if synced_matrix else {})
        request = SessionRequest(device_serial=SERIAL, channel=channel, kind=kind)
        token = harness.token(token_matrix or {1: Permission.PTZ})
        now = time.time()
        allowed = all(
            check(Grant(channels=m), channel, request.required_permission, now)
            for m in (token_matrix or {1: Permission.PTZ}, synced_matrix)
        ) and bool(synced_matrix)
        try:
            authorizer.admit(
                token=token, request=request, session_id=secrets.token_bytes(16), now=now
            )
        except SessionRefused:
            assert not allowed
        else:
            assert allowed

    check_one()
    assert next(counter) > 10
