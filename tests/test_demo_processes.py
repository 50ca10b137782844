"""`Children`: what a child started is gone when its stop returns, even outside its group."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import pytest

from nvrshare.demo_processes import Child

# A child that starts a grandchild in a session of its own (as the relay starts mosquitto),
# prints its pid, then ignores SIGTERM so that stop() has to kill it.
STUBBORN_PARENT = """
import signal, subprocess, sys, time
grandchild = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(60)"],
    stdout=subprocess.DEVNULL, start_new_session=True,
)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print(grandchild.pid, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:  # a zombie is dead for our purpose; a reaped process has no /proc entry
        with open(f"/proc/{pid}/stat", "rb") as file:
            return file.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
async def test_a_killed_child_takes_its_other_session_grandchild_with_it(
    tmp_path: Path,
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", STUBBORN_PARENT,
        stdout=asyncio.subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    child = Child("stubborn", process, tmp_path / "stubborn.log")
    grandchild = int(await child.read_line(within=10))
    assert _alive(grandchild)
    started = time.monotonic()
    code = await child.stop(grace=0.5)
    assert code == -signal.SIGKILL
    assert time.monotonic() - started < 5
    await asyncio.sleep(0.2)  # SIGKILL is delivered at once; its reaping by init may lag
    assert not _alive(grandchild)
