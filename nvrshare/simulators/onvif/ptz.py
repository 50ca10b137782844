"""A simulated PTZ head: position integrates velocity over (injected) time.

Sans-IO: every method takes `now` (seconds on a monotonic clock). A continuous
move sets a velocity from `now` on; the position at any later time is the
origin plus velocity times elapsed time, clamped to the generic ONVIF ranges
(pan and tilt in [-1, 1], zoom in [0, 1]). Because the velocity is constant
between two commands, clamping the linear extrapolation is exact, so no ticking
loop is needed and the state is the same however often it is read.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

PAN_TILT_RANGE = (-1.0, 1.0)
ZOOM_RANGE = (0.0, 1.0)
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")


class PtzError(Exception):
    """A PTZ command the head refuses (unknown preset, bad value)."""


class PtzTooManyPresets(PtzError):
    """Every preset slot is taken."""


@dataclass(frozen=True, kw_only=True, slots=True)
class PtzPosition:
    """A point in the generic position spaces."""

    pan: float = 0.0
    tilt: float = 0.0
    zoom: float = 0.0

    def clamped(self) -> PtzPosition:
        return PtzPosition(
            pan=_clamp(self.pan, PAN_TILT_RANGE),
            tilt=_clamp(self.tilt, PAN_TILT_RANGE),
            zoom=_clamp(self.zoom, ZOOM_RANGE),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class PtzPreset:
    token: str
    name: str
    position: PtzPosition


def _clamp(value: float, bounds: tuple[float, float]) -> float:
    return min(max(value, bounds[0]), bounds[1])


def _finite(*values: float) -> None:
    if not all(math.isfinite(value) for value in values):
        raise PtzError("PTZ values must be finite")


class PtzHead:
    """One PTZ node. `rate` is the travel in position units per second at velocity 1."""

    def __init__(self, *, rate: float = 0.5, max_presets: int = 32) -> None:
        self._rate = rate
        self._max_presets = max_presets
        self._origin = PtzPosition()
        self._origin_time = 0.0
        self._velocity = (0.0, 0.0, 0.0)
        self._stop_at: float | None = None
        self._presets: dict[str, PtzPreset] = {}
        self._next_token = 1

    # --- reading ---------------------------------------------------------------

    def position(self, now: float) -> PtzPosition:
        """Where the head is at `now`."""
        until = now if self._stop_at is None else min(now, self._stop_at)
        elapsed = max(0.0, until - self._origin_time)
        vp, vt, vz = self._velocity
        return PtzPosition(
            pan=self._origin.pan + vp * self._rate * elapsed,
            tilt=self._origin.tilt + vt * self._rate * elapsed,
            zoom=self._origin.zoom + vz * self._rate * elapsed,
        ).clamped()

    def moving(self, now: float) -> tuple[bool, bool]:
        """(pan/tilt moving, zoom moving) at `now`: a velocity that still changes the position."""
        if self._stop_at is not None and now >= self._stop_at:
            return False, False
        here = self.position(now)
        vp, vt, vz = self._velocity
        pan_tilt = _heading_in(vp, here.pan, PAN_TILT_RANGE) or _heading_in(
            vt, here.tilt, PAN_TILT_RANGE
        )
        return pan_tilt, _heading_in(vz, here.zoom, ZOOM_RANGE)

    @property
    def presets(self) -> tuple[PtzPreset, ...]:
        return tuple(self._presets.values())

    # --- commands --------------------------------------------------------------

    def continuous_move(
        self,
        now: float,
        *,
        pan: float | None,
        tilt: float | None,
        zoom: float | None,
        timeout: float | None = None,
    ) -> None:
        """Move at the given velocities (each clamped to [-1, 1]); None keeps that axis still.

        A positive `timeout` stops the move after that many seconds, as cameras do.
        """
        values = [v for v in (pan, tilt, zoom, timeout) if v is not None]
        _finite(*values)
        self._rebase(now)
        self._velocity = (
            _clamp(pan or 0.0, (-1.0, 1.0)),
            _clamp(tilt or 0.0, (-1.0, 1.0)),
            _clamp(zoom or 0.0, (-1.0, 1.0)),
        )
        self._stop_at = now + timeout if timeout is not None and timeout > 0 else None

    def stop(self, now: float, *, pan_tilt: bool = True, zoom: bool = True) -> None:
        """Stop the selected axes where they are."""
        self._rebase(now)
        vp, vt, vz = self._velocity
        if pan_tilt:
            vp = vt = 0.0
        if zoom:
            vz = 0.0
        self._velocity = (vp, vt, vz)

    def absolute_move(self, now: float, target: PtzPosition) -> None:
        """Jump to `target` (clamped); the simulated head moves instantly."""
        _finite(target.pan, target.tilt, target.zoom)
        self._origin = target.clamped()
        self._origin_time = now
        self._velocity = (0.0, 0.0, 0.0)
        self._stop_at = None

    def relative_move(self, now: float, delta: PtzPosition) -> None:
        here = self.position(now)
        self.absolute_move(
            now,
            PtzPosition(
                pan=here.pan + delta.pan, tilt=here.tilt + delta.tilt, zoom=here.zoom + delta.zoom
            ),
        )

    def set_preset(self, now: float, *, name: str | None, token: str | None) -> str:
        """Store the current position under `token` (new or existing) or a fresh token.

        Like Hikvision firmware, a client may name a new slot by token ("7");
        tokens are short and plain. Returns the token used.
        """
        if token is not None and not _TOKEN.fullmatch(token):
            raise PtzError("preset token must be 1-64 letters, digits, '_' or '-'")
        if token not in self._presets:
            if len(self._presets) >= self._max_presets:
                raise PtzTooManyPresets("too many presets")
            while token is None or token in self._presets:
                token = str(self._next_token)
                self._next_token += 1
        label = name or (self._presets[token].name if token in self._presets else f"Preset {token}")
        self._presets[token] = PtzPreset(token=token, name=label, position=self.position(now))
        return token

    def goto_preset(self, now: float, token: str) -> None:
        preset = self._presets.get(token)
        if preset is None:
            raise PtzError("no preset with that token")
        self.absolute_move(now, preset.position)

    def remove_preset(self, token: str) -> None:
        if self._presets.pop(token, None) is None:
            raise PtzError("no preset with that token")

    def _rebase(self, now: float) -> None:
        self._origin = self.position(now)
        self._origin_time = now
        if self._stop_at is not None and now >= self._stop_at:
            self._velocity = (0.0, 0.0, 0.0)
            self._stop_at = None


def _heading_in(velocity: float, value: float, bounds: tuple[float, float]) -> bool:
    if velocity > 0:
        return value < bounds[1]
    if velocity < 0:
        return value > bounds[0]
    return False
