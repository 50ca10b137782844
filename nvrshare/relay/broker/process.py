"""A private `mosquitto` process: start, wait until it listens, supervise, stop.

Used by the embedded relay broker (with supervision: a crashed broker is
restarted with capped backoff) and by the test suite (tests/support/mosquitto.py),
so both run exactly the same start-up path.  The process's stderr goes to a
log file next to its config, never to a pipe nobody reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
from pathlib import Path
from types import TracebackType
from typing import Self

from nvrshare.relay.broker.errors import BrokerPortTaken, BrokerProcessError

__all__ = ["MosquittoProcess", "find_mosquitto"]

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
LOG_TAIL_BYTES = 2000
PROBE_TIMEOUT = 1.0
# What mosquitto 2.0 prints when its listener cannot bind.
BIND_REFUSED = "Address already in use"
_TCP_LISTEN = "0A"  # the state column of /proc/net/tcp{,6}


def _holds_listener(pid: int, port: int) -> bool | None:
    """Whether process `pid` itself listens on TCP `port`; None without Linux's /proc."""
    sockets: set[str] = set()
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not any(table.exists() for table in tables):
        return None
    for table in tables:
        with contextlib.suppress(OSError):
            for line in table.read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == _TCP_LISTEN and int(local.rpartition(":")[2], 16) == port:
                    sockets.add(f"socket:[{inode}]")
    if sockets:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in sockets:
                        return True
    return False


def find_mosquitto() -> str | None:
    """Path of the mosquitto executable (also looked for in /usr/sbin), or None."""
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


async def _port_accepts(host: str, port: int) -> bool:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            _reader, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class MosquittoProcess:
    """One mosquitto process running `config_text` from `workdir`.

    `async with MosquittoProcess(...) as broker:` starts it and waits until
    `host:port` accepts connections; leaving the block stops it.  With
    `supervise=True` an unexpected exit is logged and the broker restarted
    (delays 0.2 s doubling to 10 s).
    """

    def __init__(
        self,
        config_text: str,
        workdir: Path,
        *,
        host: str,
        port: int,
        supervise: bool = False,
        executable: str | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.workdir = workdir
        self.config_path = workdir / "mosquitto.conf"
        self.log_path = workdir / "mosquitto.log"
        self._config_text = config_text
        self._supervise = supervise
        self._executable = executable
        self._log = logger or logging.getLogger("nvrshare.relay.broker.process")
        self._process: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start the process and wait until it listens; `BrokerProcessError` if it cannot."""
        self._stopping = False
        await self._spawn()
        if self._supervise and (self._supervisor is None or self._supervisor.done()):
            self._supervisor = asyncio.create_task(self._watch(), name=f"mosquitto:{self.port}")

    async def stop(self) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after 5 s) and stop supervising."""
        self._stopping = True
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        await self._terminate(signal.SIGTERM)

    async def kill(self) -> None:
        """SIGKILL the process (a crash, as far as clients can tell); no restart."""
        self._stopping = True
        await self._terminate(signal.SIGKILL)

    async def restart(self) -> None:
        """Stop then start again on the same port (clients see a broker restart)."""
        supervise = self._supervisor is not None
        await self.stop()
        await self.start()
        if supervise and self._supervisor is None:
            self._supervisor = asyncio.create_task(self._watch(), name=f"mosquitto:{self.port}")

    def log_tail(self) -> str:
        return self._log_since(0)

    async def _spawn(self) -> None:
        executable = self._executable or find_mosquitto()
        if executable is None:
            raise BrokerProcessError("the mosquitto executable was not found")
        # A port another process listens on is refused at once (mosquitto could
        # not bind it, and where /proc is missing the probe would answer for it).
        if await _port_accepts(self.host, self.port):
            raise BrokerPortTaken(f"something else already listens on {self.host}:{self.port}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self._config_text)
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                executable,
                "-c",
                str(self.config_path),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        try:
            await self._wait_listening(log_start)
        except BaseException:
            # Failed or cancelled (a relay stopping mid-start): never leave an
            # orphan holding the port, it would block every later start.
            await asyncio.shield(self._terminate(signal.SIGKILL))
            raise

    async def _wait_listening(self, log_start: int) -> None:
        process = self._process
        assert process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while not await self._listening(process):
            if process.returncode is not None or loop.time() > deadline:
                output = self._log_since(log_start)
                error = BrokerPortTaken if BIND_REFUSED in output else BrokerProcessError
                raise error(f"mosquitto did not start on {self.host}:{self.port}:\n{output}")
            await asyncio.sleep(0.02)

    async def _listening(self, process: asyncio.subprocess.Process) -> bool:
        # A connect alone could reach another process that took the port before
        # mosquitto bound it; where /proc tells, the listener must be mosquitto's.
        if process.returncode is not None:
            return False
        owned = _holds_listener(process.pid, self.port)
        if owned is not None:
            return owned
        return await _port_accepts(self.host, self.port)

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                data = log.read()
        except OSError:
            return ""
        return data[-LOG_TAIL_BYTES:].decode("utf-8", "replace")

    async def _terminate(self, sig: signal.Signals) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    async def _watch(self) -> None:
        delay = 0.2
        while True:
            process = self._process
            if process is not None:
                await process.wait()
            if self._stopping:
                return
            self._log.error(
                "mosquitto exited with %s; restarting in %.1fs",
                process.returncode if process else None,
                delay,
            )
            await asyncio.sleep(delay)
            try:
                await self._spawn()
            except BrokerProcessError as exc:
                self._log.error("mosquitto restart failed: %s", exc)
                delay = min(delay * 2, 10.0)
                continue
            self.restarts += 1
            delay = 0.2
