"""Exponential backoff with full jitter, capped (AWS architecture blog's "Full Jitter").

Full jitter spreads reconnects of many devices after a relay outage evenly
over the window instead of synchronising them into waves.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Backoff", "BackoffPolicy"]


@dataclass(frozen=True, kw_only=True, slots=True)
class BackoffPolicy:
    """initial: the first window (s); maximum: the cap on any window (s)."""

    initial: float = 0.5
    maximum: float = 30.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError("backoff needs 0 < initial <= maximum")
        if self.multiplier < 1:
            raise ValueError("backoff multiplier must be >= 1")


class Backoff:
    """Successive delays: uniform in [0, min(maximum, initial * multiplier**attempt)]."""

    def __init__(
        self, policy: BackoffPolicy, *, uniform: Callable[[float, float], float] | None = None
    ) -> None:
        self._policy = policy
        # Jitter needs no cryptographic quality; injectable so tests are exact.
        self._uniform = uniform or random.uniform
        self._attempt = 0

    @property
    def attempt(self) -> int:
        return self._attempt

    def window(self) -> float:
        """The upper bound of the next delay."""
        policy = self._policy
        # Cap the exponent so a long outage cannot overflow the float.
        exponent = min(self._attempt, 64)
        return min(policy.maximum, policy.initial * policy.multiplier**exponent)

    def next_delay(self) -> float:
        delay = self._uniform(0.0, self.window())
        self._attempt += 1
        return delay

    def reset(self) -> None:
        self._attempt = 0
