"""The `nvrshare` command: one dispatcher, each package contributes its verbs.

Every package that offers verbs has a `cli` module with
`register(subparsers) -> None`; each verb it adds sets `func`, a callable taking
the parsed namespace and returning an exit code (or an awaitable of one).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import logging
import sys
from collections.abc import Sequence

# Which module registers each verb, in the order `--help` lists them.  A run
# imports only the module of its own verb: the agent on a recorder must not pay
# for the relay's SQLAlchemy stack (about 35 MiB of RSS), nor the relay for the
# simulators.  `--help` (no verb) imports them all.
VERB_MODULES = {
    "relay": "nvrshare.relay.cli",
    "agent": "nvrshare.agent.cli",
    "account": "nvrshare.client.cli",
    "device": "nvrshare.client.cli",
    "share": "nvrshare.client.cli",
    "shared-with-me": "nvrshare.client.cli",
    "view": "nvrshare.client.stream_cli",
    "playback": "nvrshare.client.stream_cli",
    "talk": "nvrshare.client.stream_cli",
    "ptz": "nvrshare.client.stream_cli",
    "alarms": "nvrshare.client.stream_cli",
    "site": "nvrshare.client.site_cli",
    "sim": "nvrshare.simulators.cli",
    "demo": "nvrshare.demo",
}


def _requested_verb(argv: Sequence[str]) -> str | None:
    for word in argv:
        if not word.startswith("-"):
            return word
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with `argv`, only the module registering its verb is imported."""
    parser = argparse.ArgumentParser(prog="nvrshare", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB")
    verb = _requested_verb(argv) if argv is not None else None
    if verb in VERB_MODULES:
        modules = [VERB_MODULES[verb]]
    else:
        modules = list(dict.fromkeys(VERB_MODULES.values()))
    for module_name in modules:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    levels = (logging.WARNING, logging.INFO, logging.DEBUG)
    logging.basicConfig(
        level=levels[min(args.verbose, 2)],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    result = func(args)
    if inspect.isawaitable(result):
        result = asyncio.run(result)  # type: ignore[arg-type]
    return int(result or 0)
