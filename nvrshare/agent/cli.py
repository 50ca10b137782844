"""`nvrshare agent --config agent.toml`: run the device agent until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from nvrshare.agent.app import Agent
from nvrshare.agent.config import load_config
from nvrshare.agent.errors import AgentError
from nvrshare.firmware_shim import ShimError

__all__ = ["register"]

EXIT_CONFIG = 2
EXIT_FAILED = 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("agent", help="run the device agent on a recorder")
    parser.add_argument("--config", "-c", type=Path, required=True, help="agent TOML file")
    parser.set_defaults(func=_run)


async def _run(args: argparse.Namespace) -> int:
    log = logging.getLogger("nvrshare.agent")
    try:
        config = load_config(args.config)
    except AgentError as exc:
        print(f"nvrshare agent: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        async with Agent(config) as agent:
            log.info("agent for %s running", config.serial)
            waiter = asyncio.create_task(agent.wait_closed())
            stopper = asyncio.create_task(stop.wait())
            done, pending = await asyncio.wait(
                {waiter, stopper}, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
            if waiter in done:
                waiter.result()
    except (AgentError, ShimError) as exc:
        print(f"nvrshare agent: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return 0
