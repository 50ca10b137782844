"""The control channel's MQTT socket: small packets leave at once (no Nagle)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from nvrshare.agent.config import config_from_mapping
from nvrshare.agent.control import ControlChannel
from nvrshare.agent.grants import GrantStore
from tests.support.mosquitto import MosquittoProcess, MosquittoSetup


async def _no_registration() -> bytes:
    return b""


async def test_control_socket_has_tcp_nodelay(tmp_path: Path) -> None:
    setup = MosquittoSetup(dynsec=False, allow_anonymous=True)
    async with MosquittoProcess(setup, tmp_path / "broker") as broker:
        config = config_from_mapping(
            {
                "serial": "NODELAY1",
                "domain": "nodelay",
                "verification_code": "ABCDEF",
                "state_dir": str(tmp_path / "state"),
                "relay": {
                    "broker_url": f"mqtt://{broker.host}:{broker.port}",
                    "username": "u",
                    "password": "p",
                },
                "recorder": {"backend": "sim"},
            }
        )
        (tmp_path / "state").mkdir()
        channel = ControlChannel(
            config,
            config.broker,
            grants=GrantStore(tmp_path / "state", "NODELAY1"),
            registration=_no_registration,
            address=("127.0.0.1", 80),
        )
        task = asyncio.create_task(channel.run())
        try:
            async with asyncio.timeout(10):
                await channel.status.connected.wait()
            client = channel._client
            assert client is not None
            sock = client._client.socket()
            assert isinstance(sock, socket.socket)
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
