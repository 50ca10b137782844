"""tokens: share-token verification rate against the raw Ed25519 verify rate.

Three loops:
* full: `TokenVerifier` with no cache: msgpack parse, signature, every claim
  check, then the permission decision for a live-view request;
* cached: the same token again through the default (LRU) verifier, which
  skips only the signature and re-checks time, audience and device;
* raw: `Ed25519PublicKey.verify` over a message of the same size (baseline).

Each round interleaves the three in short batches (about a millisecond each)
and times every batch; a loop's rate in the round is its median batch's.  On
a shared box a change in load then falls on full and raw alike instead of on
whichever ran during it, and the median ignores the batches that lost the
CPU to another process: the figures say what the code costs, not how busy
the box was.  The ratio is the median over rounds of full / raw.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bench.common import BenchResult, median
from nvrshare.protocol.messages import SessionKind, SessionRequest
from nvrshare.protocol.permissions import Permission
from nvrshare.protocol.signing import CONTEXT_SHARE_TOKEN, KeyRing, SigningKey
from nvrshare.protocol.tokens import Audience, TokenIssuer, TokenVerifier

SERIAL = "DS-7608NI-K2-0820190101CCRRC12345678WCVU"


# Calls per batch: about a millisecond each.
_BATCHES = {"raw_verify_per_s": 8, "full_per_s": 8, "cached_per_s": 500}


def _interleaved_rates(loops: dict[str, Callable[[], None]], seconds: float) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in loops}
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for name, loop in loops.items():
            batch = _BATCHES[name]
            start = time.perf_counter()
            for _ in range(batch):
                loop()
            times[name].append(time.perf_counter() - start)
    return {name: _BATCHES[name] / median(times[name]) for name in loops}


def run(quick: bool) -> BenchResult:
    key = SigningKey.generate()
    ring = KeyRing([key.public_key])
    now = int(time.time())
    token = TokenIssuer(key, "bench").issue(
        account_id="viewer@example.com",
        device_serial=SERIAL,
        channels={1: Permission.LIVE_VIEW | Permission.PLAYBACK, 2: Permission.LIVE_VIEW},
        not_before=now - 60,
        expires_at=now + 3600,
        share_epoch=1,
    )
    request = SessionRequest(device_serial=SERIAL, channel=1, kind=SessionKind.LIVE_MAIN)
    uncached = TokenVerifier(ring, Audience.RELAY, cache_size=0)
    cached = TokenVerifier(ring, Audience.RELAY)
    # The raw baseline signs what a token signs: context + claims of the same size.
    message = CONTEXT_SHARE_TOKEN + b"\x00" + token[: len(token) - 70]
    signature = key.private_key.sign(message)
    public_key = key.public_key

    def full() -> None:
        claims = uncached.verify(token, now=now, device_serial=SERIAL)
        assert request.decide(claims.grant(), now)

    def recheck() -> None:
        claims = cached.verify(token, now=now, device_serial=SERIAL)
        assert request.decide(claims.grant(), now)

    def raw() -> None:
        public_key.verify(signature, message)

    loops = {"raw_verify_per_s": raw, "full_per_s": full, "cached_per_s": recheck}
    seconds = 0.9 if quick else 3.0
    runs: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(3 if quick else 5):
        for name, rate in _interleaved_rates(loops, seconds).items():
            runs[name].append(rate)
    result = BenchResult(name="tokens", runs=runs)
    # What a full verification costs beyond the signature itself, per round.
    overhead_us = [
        1e6 / f - 1e6 / r for f, r in zip(runs["full_per_s"], runs["raw_verify_per_s"], strict=True)
    ]
    result.figures = {
        "full_per_s": median(runs["full_per_s"]),
        "cached_per_s": median(runs["cached_per_s"]),
        "full_overhead_us": median(overhead_us),
    }
    result.baselines = {"raw_verify_per_s": median(runs["raw_verify_per_s"])}
    # Median of per-round ratios: raw and full run back to back in each round.
    result.ratios = {
        "full_vs_raw": median(
            [f / r for f, r in zip(runs["full_per_s"], runs["raw_verify_per_s"], strict=True)]
        )
    }
    result.goals = {"full_vs_raw": ">= 0.9", "cached_per_s": ">= 200000"}
    result.verdicts = {
        "full_vs_raw": result.ratios["full_vs_raw"] >= 0.9,
        "cached_per_s": result.figures["cached_per_s"] >= 200_000,
    }
    result.notes.append(
        f"token size {len(token)} bytes, 2 channels; full includes permission check"
    )
    return result
