"""`nvrshare demo`: the whole product on one machine, as real processes, in under a minute.

Starts, in a temporary directory: the relay (`nvrshare relay`: SQLite, its
managed mosquitto, registry, data plane, portal), a simulated 4-channel
recorder (`nvrshare sim recorder`) and the device agent on it (`nvrshare
agent`, ISAPI backend).  Then, through the client SDK over HTTP: an owner and
a recipient register, the owner adds the recorder (serial + verification
code) and shares channel 1 (live view + PTZ) and channel 2 (playback); the
recipient accepts and pulls live video of channel 1 and a playback window of
channel 2 through the relay (ffprobe counts decoded frames on the client's
local RTSP endpoint), moves the PTZ head (the recorder's own status shows
it), and is refused channel 3 and two-way audio with typed reasons.

Prints one line per step (✓/✗ with figures) and exits 0 only if every step
passed.  Every process it started is stopped on the way out (also on Ctrl-C
or a failure); `--keep` leaves the directory (logs, configs) for a look.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from nvrshare.agent.grants import GRANTS_FILE
from nvrshare.client.errors import ClientError
from nvrshare.client.sdk import API, RelayClient
from nvrshare.client.stream_cli import TokenCache
from nvrshare.client.streams import LocalRtspEndpoint, RelayEndpoint, StreamRefused, open_session
from nvrshare.demo_media import MediaCheckFailed, count_frames, recorder_config, recorder_ptz
from nvrshare.demo_processes import Child, ChildFailed, Children
from nvrshare.protocol.messages import SessionKind, SessionRequest
from nvrshare.protocol.permissions import TimeWindow
from nvrshare.protocol.tokens import token_from_text

__all__ = [
    "DemoRun",
    "StepFailed",
    "Story",
    "register",
    "run_demo",
    "start_agent",
    "start_recorder",
    "start_relay",
]

SLOT = 30 * 60  # the simulated recorder records 20 minutes of every 30 (aligned to the epoch)
STEP_LIMIT = 30.0  # no single step may take longer than this
EXIT_INTERRUPTED = 130


class StepFailed(Exception):
    """A demo step did not get the expected result; the message says what happened."""


@dataclass(slots=True)
class Line:
    ok: bool
    text: str


class DemoRun:
    """One demo: its directory, its processes, and the report it prints."""

    def __init__(self, workdir: Path, *, out: Any = None) -> None:
        self.workdir = workdir
        self.out = out or sys.stdout
        self.lines: list[Line] = []
        self.started = time.monotonic()
        self.status: dict[str, Any] = {}
        self.recorder: dict[str, Any] = {}
        self.serial = ""
        self.agent: Child | None = None

    def say(self, ok: bool, text: str) -> None:
        self.lines.append(Line(ok, text))
        mark = "✓" if ok else "✗"
        print(f"  {mark} {text}", file=self.out, flush=True)

    async def step(self, label: str, action: Callable[[], Awaitable[str]]) -> bool:
        began = time.monotonic()
        try:
            async with asyncio.timeout(STEP_LIMIT):
                detail = await action()
        except (StepFailed, ChildFailed, MediaCheckFailed, ClientError) as exc:
            self.say(False, f"{label}: {exc}")
            return False
        except TimeoutError:
            self.say(False, f"{label}: no result within {STEP_LIMIT:g} s")
            return False
        self.say(True, f"{label}: {detail} ({time.monotonic() - began:.1f} s)")
        return True

    @property
    def ok(self) -> bool:
        return bool(self.lines) and all(line.ok for line in self.lines)


# -- processes ------------------------------------------------------------------------


async def start_relay(run: DemoRun, children: Children, code: str) -> str:
    """Start `nvrshare relay` (manifest lists the recorder with `code`); fill `run.status`."""
    # The operator's manufacturing manifest lists the recorder: its first claim is
    # checked against the verification code (no trust-on-first-claim, even here).
    manifest = run.workdir / "manifest.csv"
    manifest.write_text(f"# serial,verification code\n{run.serial},{code}\n", encoding="utf-8")
    config = run.workdir / "relay.toml"
    config.write_text(
        f'data_dir = "{run.workdir / "relay"}"\nhttp_port = 0\n\n'
        f'[dataplane]\nport = 0\n\n[devices]\nmanifest = "{manifest}"\n',
        encoding="utf-8",
    )
    relay = await children.start("relay", "relay", "--config", str(config))
    announce = await relay.read_json(within=20)
    status = announce.get("relay")
    if not isinstance(status, dict):
        raise StepFailed(f"unexpected announcement {announce!r:.200}")
    run.status = status
    return f"API {status['api']}, data port {status['data_port']}, broker {status['broker_url']}"


async def start_recorder(run: DemoRun, children: Children) -> str:
    """Start `nvrshare sim recorder --channels 4`; fill `run.recorder` and `run.serial`."""
    password = secrets.token_urlsafe(12)
    recorder = await children.start(
        # `--password=…` in one word: a token_urlsafe value may start with '-'.
        "recorder",
        "sim",
        "recorder",
        "--channels",
        "4",
        f"--password={password}",
    )
    run.recorder = await recorder.read_json(within=20)
    run.serial = str(run.recorder["serial"])
    return f"serial {run.serial}, ISAPI {run.recorder['isapi']}, RTSP {run.recorder['rtsp']}"


def _agent_toml(run: DemoRun, code: str) -> str:
    config = recorder_config(run.recorder)
    status = run.status
    return f"""\
serial = "{run.serial}"
domain = "demo-nvr"
verification_code = "{code}"
state_dir = "{run.workdir / "agent-state"}"
keepalive = 10
heartbeat_interval = 5

[relay]
broker_url = "{status["broker_url"]}"
provisioning_url = "{status["provisioning"]}"
data_endpoint = "{status["data_endpoint"]}"

[recorder]
backend = "isapi"
host = "{config.host}"
port = {config.port}
rtsp_port = {config.rtsp_port}
username = "{config.username}"
password = "{config.password}"

# Retry the relay quickly: the owner's bind waits 20 s for the first registration.
[backoff]
maximum = 2
"""


async def start_agent(run: DemoRun, children: Children, code: str) -> Child:
    """Write agent.toml (ISAPI backend on the simulator) and start `nvrshare agent`."""
    path = run.workdir / "agent.toml"
    path.write_text(_agent_toml(run, code), encoding="utf-8")
    path.chmod(0o600)
    run.agent = await children.start("agent", "agent", "--config", str(path))
    return run.agent


# -- the story ----------------------------------------------------------------------------


async def _until(what: str, probe: Callable[[], Awaitable[Any]], within: float) -> Any:
    """Call `probe` until it returns something truthy; `StepFailed` after `within` s."""
    deadline = time.monotonic() + within
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = await probe()
        except ClientError as exc:
            last = exc
        else:
            if value:
                return value
        await asyncio.sleep(0.2)
    raise StepFailed(f"{what} did not happen within {within:g} s (last: {last})")


class Story:
    """The owner's and recipient's part, through the client SDK over HTTP."""

    def __init__(self, run: DemoRun, owner: RelayClient, friend: RelayClient, code: str) -> None:
        self.run = run
        self.owner = owner
        self.friend = friend
        self.code = code
        self.password = secrets.token_urlsafe(16)  # per run: the demo's accounts are throwaway
        self.tokens = TokenCache(friend, run.serial)
        host, _, port = str(run.status["data_endpoint"]).rpartition(":")
        self.data = RelayEndpoint(host=host, port=int(port))

    async def accounts(self) -> str:
        for client, name in ((self.owner, "demo-owner"), (self.friend, "demo-friend")):
            await client.register(password=self.password, name=name)
            await client.login(name, self.password)
        return "demo-owner and demo-friend registered and logged in"

    async def bind(self) -> str:
        # A bind attempt on a serial the relay has not seen counts as a failed
        # attempt (rate-limited), so wait for the agent's first grant set, which
        # the relay publishes once it accepted the registration.
        grants = self.run.workdir / "agent-state" / GRANTS_FILE

        async def registered() -> bool:
            agent = self.run.agent
            if agent is not None and agent.process.returncode is not None:
                raise StepFailed(f"the agent exited:\n{agent.log_tail()}")
            return await asyncio.to_thread(grants.exists)

        await _until("the device's registration", registered, 20)
        await self.owner.add_device(self.run.serial, self.code)
        device = await _until("the device online", self._online, 15)
        return f"{self.run.serial} bound to demo-owner, online, {len(device['channels'])} channels"

    async def _online(self) -> dict[str, Any] | None:
        device = await self.owner.get_device(self.run.serial)
        return device if device.get("status") == "online" and device.get("channels") else None

    async def share(self) -> str:
        result = await self.owner.share(
            self.run.serial,
            name="demo-friend",
            permissions={1: ["live_view", "ptz"], 2: ["playback"]},
        )
        pending = await self.friend.shared_with_me(state="pending")
        items = pending.get("items", [])
        if not items:
            raise StepFailed(f"the share did not reach the recipient ({result})")
        await self.friend.accept(str(items[0]["id"]))
        return "channel 1 (live view + PTZ), channel 2 (playback) shared; demo-friend accepted"

    async def wait_for_grant(self) -> None:
        """Until a session on channel 1 is admitted end to end (relay and device agree)."""

        # The agent enforces its own synced grant set: wait until it has the new one.
        async def allowed() -> bool:
            try:
                request = SessionRequest(
                    device_serial=self.run.serial, channel=1, kind=SessionKind.LIVE_SUB
                )
                # A fresh token each time: a share change makes older ones stale.
                issued = await self.friend.issue_token(self.run.serial)
                token = token_from_text(str(issued["token"]))
                async with await open_session(self.data, token, request):
                    return True
            except StreamRefused:
                return False

        await _until("the device's grant set", allowed, 15)

    async def live(self) -> str:
        await self.wait_for_grant()
        request = SessionRequest(
            device_serial=self.run.serial, channel=1, kind=SessionKind.LIVE_MAIN
        )
        async with LocalRtspEndpoint(self.data, self.tokens, request, port=0) as endpoint:
            count = await count_frames(endpoint.url, seconds=2.0)
        if count.codec != "h264" or count.frames < 25:
            raise StepFailed(f"only {count.frames} {count.codec} frames decoded")
        return (
            f"{count.frames} H.264 frames {count.width}x{count.height} decoded by ffprobe "
            f"from {endpoint.url}"
        )

    async def ptz(self) -> str:
        # ISAPI reports where the head points, not whether it moves: compare positions.
        config = recorder_config(self.run.recorder)
        before = (await recorder_ptz(config, 1)).position
        path = f"{API}/devices/{self.run.serial}/ptz"
        await self.friend._request(
            "POST", path, body={"channel": 1, "action": "continuous_move", "pan": 0.5}
        )
        await asyncio.sleep(0.8)
        await self.friend._request("POST", path, body={"channel": 1, "action": "stop"})
        after = (await recorder_ptz(config, 1)).position
        if after.pan == before.pan:
            raise StepFailed(f"the recorder's head did not turn (pan {after.pan:+.3f})")
        return (
            f"move pan=0.5 then stop, through the relay; the recorder's pan position "
            f"went {before.pan:+.3f} → {after.pan:+.3f}"
        )

    async def playback(self) -> str:
        slot = int(time.time()) // SLOT * SLOT - SLOT  # the last finished recording slot
        window = TimeWindow(start=slot + 60, end=slot + 120)
        request = SessionRequest(
            device_serial=self.run.serial,
            channel=2,
            kind=SessionKind.PLAYBACK,
            playback_window=window,
        )
        async with LocalRtspEndpoint(self.data, self.tokens, request, port=0) as endpoint:
            count = await count_frames(endpoint.url, seconds=2.0)
        if count.codec != "h264" or count.frames < 25:
            raise StepFailed(f"only {count.frames} {count.codec} frames decoded")
        when = time.strftime("%H:%M", time.localtime(window.start))
        return f"{count.frames} H.264 frames of the {when} recording on channel 2 decoded"

    async def refused(self, channel: int, kind: SessionKind) -> str:
        request = SessionRequest(device_serial=self.run.serial, channel=channel, kind=kind)
        try:
            async with await open_session(self.data, await self.tokens(), request):
                pass
        except StreamRefused as exc:
            return f"refused: {exc.reason.value}" + (f" ({exc.message})" if exc.message else "")
        raise StepFailed("the relay let the session through")

    async def metrics(self) -> str:
        timeout = aiohttp.ClientTimeout(total=10)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(str(self.run.status["metrics"])) as response,
            ):
                text = (await response.content.read(1 << 20)).decode("utf-8", errors="replace")
        except (aiohttp.ClientError, OSError) as exc:
            raise StepFailed(f"GET /metrics failed: {exc}") from None
        wanted = {}
        for line in text.splitlines():
            if line.startswith(("nvrshare_relay_bytes_relayed_total", "nvrshare_relay_refusals")):
                name, _, value = line.rpartition(" ")
                wanted[name] = value
        down = wanted.get('nvrshare_relay_bytes_relayed_total{direction="down"}', "0")
        refusals = sum(float(v) for k, v in wanted.items() if k.startswith("nvrshare_relay_ref"))
        if float(down) <= 0:
            raise StepFailed("no bytes relayed according to /metrics")
        return f"/metrics: {float(down) / 1e6:.1f} MB relayed down, {refusals:g} refusals"


async def run_demo(run: DemoRun) -> bool:
    """Run every step; True if all passed.  Processes are stopped before it returns."""
    code = secrets.token_hex(4).upper()
    out = run.out
    print(f"nvrshare demo in {run.workdir}", file=out, flush=True)
    async with Children(run.workdir) as children:
        if not await run.step("recorder simulator started", lambda: start_recorder(run, children)):
            return False
        if not await run.step("relay started", lambda: start_relay(run, children, code)):
            return False

        async def agent() -> str:
            child = await start_agent(run, children, code)
            return f"agent pid {child.pid}, ISAPI backend"

        if not await run.step("agent started", agent):
            return False
        api = str(run.status["api"])
        async with RelayClient(api) as owner, RelayClient(api) as friend:
            story = Story(run, owner, friend, code)
            for label, action in (
                ("accounts", story.accounts),
                ("owner adds the recorder", story.bind),
                ("owner shares, recipient accepts", story.share),
            ):
                if not await run.step(label, action):
                    return False
            await run.step("live view, channel 1", story.live)
            await run.step("PTZ, channel 1", story.ptz)
            await run.step("playback, channel 2", story.playback)
            await run.step(
                "channel 3 (not shared)", lambda: story.refused(3, SessionKind.LIVE_MAIN)
            )
            await run.step(
                "two-way audio, channel 1 (not granted)",
                lambda: story.refused(1, SessionKind.TALK),
            )
            await run.step("relay metrics", story.metrics)
        codes = await children.stop_all()
    unclean = {name: rc for name, rc in codes.items() if rc != 0}
    run.say(not unclean, f"processes stopped: {', '.join(f'{n}={rc}' for n, rc in codes.items())}")
    return run.ok


async def _main(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="nvrshare-demo-"))
    run = DemoRun(workdir)
    ok = False
    interrupted = False
    # Ctrl-C (asyncio.run cancels us) and SIGTERM both unwind through `Children`,
    # which stops every process group before we return.
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        ok = await run_demo(run)
    except asyncio.CancelledError:
        interrupted = True
        print("interrupted: every process was stopped", file=run.out, flush=True)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        took = time.monotonic() - run.started
        passed = sum(line.ok for line in run.lines)
        verdict = "INTERRUPTED" if interrupted else "PASSED" if ok else "FAILED"
        print(
            f"demo {verdict}: {passed}/{len(run.lines)} steps in {took:.1f} s",
            file=run.out,
            flush=True,
        )
        if args.keep or not ok:
            print(f"logs and configs kept in {workdir}", file=run.out, flush=True)
        else:
            with contextlib.suppress(OSError):
                shutil.rmtree(workdir)
    return EXIT_INTERRUPTED if interrupted else 0 if ok else 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("demo", help="run the whole product on embedded defaults")
    parser.add_argument("--keep", action="store_true", help="keep the demo's directory")
    parser.set_defaults(func=_main)
