"""Loopback helpers shared by the tests: free ports, held ports, waiting for a listener."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (bind to 0, read it back, release it).

    Released, so another process may take it before the caller binds it: prefer
    binding port 0 and reading the port back, or `held_port`.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def held_port(host: str = "127.0.0.1") -> Iterator[int]:
    """A port kept bound (not listening) until the block exits.

    Meanwhile `free_port()` cannot hand it out and connecting to it is refused:
    a reliably closed port, or one reserved for a process started after the block.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        yield int(sock.getsockname()[1])


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
    """Block until something accepts on host:port, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s") from None
            time.sleep(0.05)
