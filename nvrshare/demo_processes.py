"""Child processes for `nvrshare demo` (and scripts like it): started, watched, always reaped.

Each child runs `python -m nvrshare ...` in its own session (so its process
group holds whatever it starts, e.g. the relay's mosquitto) with stdout piped
for the machine-readable line it announces and stderr to a log file in the
demo's directory.  `Children` is an async context manager: leaving it, on
success, failure or Ctrl-C, sends SIGTERM to every group, waits a bounded
time, then SIGKILLs what is left, in reverse start order.

A child may start processes in sessions of their own (the relay runs its
embedded mosquitto that way, so a terminal's Ctrl-C reaches the relay first):
killing the child's group misses them, and if the child itself had to be
killed they outlive it.  So a `Child` notes its descendants (from /proc)
whenever it prints a line and again before `stop` signals it, and `stop`
kills whichever of them are still there after the child is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

__all__ = ["Child", "ChildFailed", "Children"]

# Seconds a child gets to stop cleanly after SIGTERM.  The relay alone may take 7 s
# (2 s HTTP shutdown grace, then up to 5 s for its mosquitto): leave room on a slow machine.
STOP_GRACE = 15.0
MAX_LINE = 64 * 1024


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a live process, from /proc; None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            fields = file.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), int(fields[19])  # fields 4 and 22 of proc(5), after "pid (comm)"


def _descendants(root: int) -> dict[int, int]:
    """pid → start time of every live descendant of `root` (Linux /proc; empty elsewhere)."""
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return {}
    children: dict[int, list[tuple[int, int]]] = {}
    for pid in pids:
        stat = _stat(pid)
        if stat is not None:
            children.setdefault(stat[0], []).append((pid, stat[1]))
    found: dict[int, int] = {}
    todo = [root]
    while todo:
        for pid, started in children.get(todo.pop(), ()):
            if pid not in found:
                found[pid] = started
                todo.append(pid)
    return found


def _kill_leftovers(processes: dict[int, int]) -> None:
    """SIGKILL each (pid, start time) still alive; the start time guards against pid reuse."""
    for pid, started in processes.items():
        stat = _stat(pid)
        if stat is not None and stat[1] == started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


class ChildFailed(Exception):
    """A child process exited early or did not say what it should have in time."""


class Child:
    """One running `python -m nvrshare ...` process."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, log: Path) -> None:
        self.name = name
        self.process = process
        self.log = log
        # Descendants seen so far (pid → start time): noted whenever the child speaks,
        # so that even a child that crashed on its own is not survived by them.
        self._seen: dict[int, int] = {}

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text("utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def read_line(self, *, within: float) -> str:
        """The next stdout line; `ChildFailed` if it exits or says nothing in time."""
        assert self.process.stdout is not None
        try:
            async with asyncio.timeout(within):
                line = await self.process.stdout.readline()
        except TimeoutError:
            raise ChildFailed(f"{self.name} said nothing within {within:g} s") from None
        except ValueError:  # a line over the stream limit
            raise ChildFailed(f"{self.name} printed an over-long line") from None
        if not line:
            raise ChildFailed(f"{self.name} exited early:\n{self.log_tail()}")
        self._seen.update(await asyncio.to_thread(_descendants, self.process.pid))
        return line.decode("utf-8", errors="replace").strip()

    async def read_json(self, *, within: float) -> dict[str, Any]:
        """The next stdout line that is a JSON object (other lines are skipped)."""
        deadline = time.monotonic() + within
        while True:
            line = await self.read_line(within=max(0.01, deadline - time.monotonic()))
            with contextlib.suppress(ValueError):
                value = json.loads(line)
                if isinstance(value, dict):
                    return value

    async def wait(self, *, within: float) -> int:
        """Its exit code once it exits by itself; `ChildFailed` (and stopped) if not in time."""
        try:
            async with asyncio.timeout(within):
                return await self.process.wait()
        except TimeoutError:
            await self.stop(grace=1.0)
            raise ChildFailed(f"{self.name} did not finish within {within:g} s") from None

    async def stop(self, grace: float = STOP_GRACE) -> int:
        """SIGTERM the child's process group, wait up to `grace`, then SIGKILL it.

        Whatever the child started, in its group or not, is gone when this returns.
        """
        running = self.process.returncode is None
        started = dict(self._seen)
        if running:
            started.update(await asyncio.to_thread(_descendants, self.process.pid))
        if self.process.returncode is None:
            self._signal_group(signal.SIGTERM)
            try:
                async with asyncio.timeout(grace):
                    await self.process.wait()
            except TimeoutError:
                self._signal_group(signal.SIGKILL)
                await self.process.wait()
        # Anything the child started and left behind goes with its group, or by pid.
        self._signal_group(signal.SIGKILL)
        await asyncio.to_thread(_kill_leftovers, started)
        return int(self.process.returncode or 0)

    def kill_now(self) -> None:
        """SIGKILL the group without waiting (the last resort of an interrupted stop)."""
        self._signal_group(signal.SIGKILL)

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)


class Children:
    """The processes of one run; `async with Children(workdir) as children:`."""

    def __init__(self, workdir: Path, env: Mapping[str, str] | None = None) -> None:
        self.workdir = workdir
        self._env = dict(env if env is not None else os.environ)
        self._children: list[Child] = []

    async def start(
        self, name: str, *argv: str, env: Mapping[str, str] | None = None
    ) -> Child:
        """Start `python -m nvrshare *argv`; `env` adds to (overrides) the environment."""
        log = self.workdir / f"{name}.log"
        with log.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "nvrshare", *argv,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=stderr, env={**self._env, **(env or {})}, start_new_session=True,
                limit=MAX_LINE,
            )  # fmt: skip
        child = Child(name, process, log)
        self._children.append(child)
        return child

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop_all()

    async def stop_all(self) -> dict[str, int]:
        """Stop every child, newest first (the agent before the relay it talks to)."""
        codes: dict[str, int] = {}
        try:
            while self._children:
                codes[self._children[-1].name] = await self._children[-1].stop()
                self._children.pop()
        finally:
            # Interrupted (a second Ctrl-C): no process group is left behind anyway.
            for child in self._children:
                child.kill_now()
        return codes
