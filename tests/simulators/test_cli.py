"""`nvrshare sim`: argument checks, and a real process that announces and stops cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

import aiohttp
import pytest

from nvrshare.cli import build_parser
from nvrshare.simulators.cli import PASSWORD_ENV


def test_sim_verbs_are_registered_and_validate() -> None:
    parser = build_parser()
    args = parser.parse_args(["sim", "recorder", "--channels", "3", "--size", "320x240"])
    assert args.channels == 3
    assert args.size == (320, 240)
    with pytest.raises(SystemExit):
        parser.parse_args(["sim", "camera", "--size", "7x7"])
    with pytest.raises(SystemExit):
        parser.parse_args(["sim", "recorder", "--channels", "0"])
    # A password that starts with "-" must be given in the --password=VALUE form.
    args = parser.parse_args(["sim", "recorder", "--password=-x1"])
    assert args.password == "-x1"


async def test_recorder_process_announces_serves_and_stops() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nvrshare", "sim", "recorder", "--channels", "2",
        "--heartbeat", "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, PASSWORD_ENV: "-cli-pw"},  # a leading dash is fine here
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(20):
            announce = json.loads(await proc.stdout.readline())
        assert announce["kind"] == "recorder"
        assert announce["password"] == "-cli-pw"
        auth = aiohttp.DigestAuthMiddleware("admin", "-cli-pw")
        async with aiohttp.ClientSession(middlewares=(auth,)) as session:
            url = announce["isapi"] + "/ISAPI/System/deviceInfo"
            async with session.get(url) as response:
                assert response.status == 200
                assert announce["serial"] in await response.text()
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(10):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
