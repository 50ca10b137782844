"""A real data plane in its own process, for benchmarks that measure its CPU and memory.

`python -m bench.relay_proc --public-key HEX [--engine auto|splice|protocol]`
listens on a loopback port and prints ``READY <port>`` on stdout; every
session offer it would publish to a device is printed as one JSON line
(``{"session_id": hex, "secret": hex}``) instead, so the benchmark driver can
play the agent.  The control plane is a stand-in: every device is online at
share epoch 1 and nothing is revoked.  It exits when stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from nvrshare.protocol.messages import SessionOffer
from nvrshare.protocol.signing import KeyRing
from nvrshare.relay.dataplane.admission import SessionLimits
from nvrshare.relay.dataplane.relaying import RelayConfig
from nvrshare.relay.dataplane.server import DataPlane, DataPlaneConfig


class OpenControlPlane:
    async def share_epoch(self, device_serial: str) -> int | None:
        del device_serial
        return 1

    async def is_token_revoked(self, token_id: bytes) -> bool:
        del token_id
        return False

    async def is_online(self, device_serial: str) -> bool:
        del device_serial
        return True


async def publish(offer: SessionOffer) -> None:
    line = json.dumps({"session_id": offer.session_id.hex(), "secret": offer.session_secret.hex()})
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main(args: argparse.Namespace) -> None:
    control = OpenControlPlane()
    big = 1_000_000
    config = DataPlaneConfig(
        engine=args.engine,
        hello_timeout=30,
        agent_timeout=30,
        max_handshakes=4096,
        backlog=4096,
        relay=RelayConfig(idle_timeout=600),
        limits=SessionLimits(per_account=big, per_device=big, per_channel=big),
    )
    plane = DataPlane(
        config,
        key_ring=KeyRing.from_raw([bytes.fromhex(args.public_key)]),
        grant_state=control,
        presence=control,
        publish_offer=publish,
    )
    loop = asyncio.get_running_loop()
    stdin_closed = loop.create_future()

    def on_stdin() -> None:
        if not os.read(sys.stdin.fileno(), 4096) and not stdin_closed.done():
            stdin_closed.set_result(None)

    async with plane:
        sys.stdout.write(f"READY {plane.port}\n")
        sys.stdout.flush()
        loop.add_reader(sys.stdin.fileno(), on_stdin)
        await stdin_closed
        loop.remove_reader(sys.stdin.fileno())


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--public-key", required=True)
    parser.add_argument("--engine", default="auto", choices=["auto", "splice", "protocol"])
    asyncio.run(main(parser.parse_args()))
