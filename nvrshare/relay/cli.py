"""`nvrshare relay`: run the relay until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

from nvrshare.relay.assembly import RelayStack, StackSettings, load_settings
from nvrshare.relay.broker import BrokerError
from nvrshare.relay.config import RelayConfig
from nvrshare.relay.errors import RelayError
from nvrshare.relay.services.keystore import KeyStore

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("relay", help="run the relay (control plane + data plane)")
    parser.add_argument("--config", type=Path, help="relay TOML file")
    parser.add_argument("--data-dir", type=Path, help="data directory (overrides the config)")
    parser.add_argument("--host", help="HTTP listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="HTTP port (default 8480)")
    parser.add_argument(
        "--data-port", type=int, help="data port (default: the HTTP port + 1; 0 = any free port)"
    )
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument(
        "--rotate-key",
        action="store_true",
        help="add a new token-signing key to the data dir's key ring and exit "
        "(restart the relay to sign with it; older keys keep verifying)",
    )
    keys.add_argument(
        "--retire-key", metavar="KEY_ID", help="stop trusting an old signing key and exit"
    )
    parser.set_defaults(func=run)


def _settings(args: argparse.Namespace) -> StackSettings:
    overrides = {"data_dir": args.data_dir, "http_host": args.host, "http_port": args.port}
    return load_settings(args.config, relay=overrides, data={"port": args.data_port})


def _manage_keys(args: argparse.Namespace, config: RelayConfig) -> int:
    keys = KeyStore(config.data_dir)
    if args.rotate_key:
        key = keys.rotate()
        print(f"new signing key {key.key_id}; live keys: {', '.join(keys.key_ring)}")
    else:
        keys.retire(args.retire_key)
        print(f"retired {args.retire_key}; live keys: {', '.join(keys.key_ring)}")
    return 0


async def run(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args)
        if args.rotate_key or args.retire_key:
            return _manage_keys(args, settings.relay)
        async with RelayStack(settings) as stack:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stack.close)
            print(f"relay listening on {stack.relay.url}", flush=True)
            print(json.dumps({"relay": stack.status}), flush=True)
            await stack.wait_closed()
    except RelayError as exc:
        print(f"nvrshare relay: {exc.message}", file=sys.stderr)
        return 2
    except BrokerError as exc:  # the broker would not start or provision: nothing to serve
        print(f"nvrshare relay: broker: {exc}", file=sys.stderr)
        return 1
    return 0
