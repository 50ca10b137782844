"""The whole product as real processes, for benchmarks: recorder simulator, relay, agent.

Reuses the demo's process starters (`nvrshare.demo`): a simulated 4-channel
recorder, `nvrshare relay` (SQLite, managed mosquitto, registry, data plane)
with a manufacturing manifest listing the recorder, and `nvrshare agent` with
the ISAPI backend.  An owner account binds the device and shares channels
1-4 (live view) with a viewer account, as a real user would; `open_live`
opens one live session as the viewer.  Every process is stopped on exit
(process groups: SIGTERM, bounded wait, SIGKILL).
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Self

from nvrshare.client.sdk import RelayClient
from nvrshare.client.stream_cli import TokenCache
from nvrshare.client.streams import RelayEndpoint, StreamSession, open_session
from nvrshare.demo import DemoRun, Story, _agent_toml, start_recorder, start_relay
from nvrshare.demo_processes import Child, Children
from nvrshare.protocol.messages import SessionKind, SessionRequest

__all__ = ["Product", "profile_env", "rtsp_options"]

_PROFILE_HOOK = """\
import atexit, cProfile, os
_profiler = cProfile.Profile()
_profiler.enable()

def _dump():
    _profiler.disable()
    _profiler.dump_stats(os.environ["NVRSHARE_BENCH_PROFILE"])

atexit.register(_dump)
"""


def rtsp_options(channel: int) -> bytes:
    """The RTSP request a player sends first; the agent's gate answers it locally."""
    return (
        f"OPTIONS rtsp://127.0.0.1/live/{channel}/main RTSP/1.0\r\nCSeq: 1\r\n"
        "User-Agent: nvrshare-bench\r\n\r\n"
    ).encode()


def profile_env(workdir: Path, out: Path) -> dict[str, str]:
    """Environment that makes a child `python` run under cProfile, stats to `out` at exit."""
    hook = workdir / "profile-hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(_PROFILE_HOOK, encoding="utf-8")
    return {"PYTHONPATH": str(hook), "NVRSHARE_BENCH_PROFILE": str(out)}


class _Quiet:
    """The demo's step printer, silenced."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


class Product:
    """`async with Product() as product:` the running stack, owner bound, viewer shared."""

    def __init__(self, *, profile_agent: Path | None = None) -> None:
        """`profile_agent`: run the agent under cProfile, stats written there when it stops."""
        self._profile = profile_agent
        self.workdir = Path(tempfile.mkdtemp(prefix="nvrshare-bench-"))
        self.run = DemoRun(self.workdir, out=_Quiet())
        self._stack = AsyncExitStack()
        self.agent: Child | None = None
        self.data: RelayEndpoint | None = None
        self.tokens: TokenCache | None = None

    async def __aenter__(self) -> Self:
        try:
            await self._start()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def _start(self) -> None:
        code = secrets.token_hex(4).upper()
        children = await self._stack.enter_async_context(Children(self.workdir))
        await start_recorder(self.run, children)
        await start_relay(self.run, children, code)
        self.agent = await self._start_agent(children, code)
        api = str(self.run.status["api"])
        owner = await self._stack.enter_async_context(RelayClient(api))
        viewer = await self._stack.enter_async_context(RelayClient(api))
        story = Story(self.run, owner, viewer, code)
        await story.accounts()
        await story.bind()
        await owner.share(
            self.run.serial,
            name="demo-friend",
            permissions={channel: ["live_view"] for channel in range(1, 5)},
        )
        pending = await viewer.shared_with_me(state="pending")
        await viewer.accept(str(pending["items"][0]["id"]))
        await story.wait_for_grant()
        self.data = story.data
        # The agent allows 4 concurrent sessions per token: at 50 setups/s a token
        # reused 16 times (the SDK's default) can have more in flight, so 4 uses each.
        self.tokens = TokenCache(viewer, self.run.serial, max_uses=4)

    async def _start_agent(self, children: Children, code: str) -> Child:
        # As `nvrshare.demo.start_agent`, optionally with a cProfile hook: a
        # sitecustomize on PYTHONPATH starts the profiler and dumps it at exit
        # (the agent exits normally on SIGTERM).
        path = self.workdir / "agent.toml"
        path.write_text(_agent_toml(self.run, code), encoding="utf-8")
        path.chmod(0o600)
        env = profile_env(self.workdir, self._profile) if self._profile is not None else {}
        self.run.agent = await children.start("agent", "agent", "--config", str(path), env=env)
        return self.run.agent

    @property
    def broker_url(self) -> str:
        return str(self.run.status["broker_url"])

    def request(self, channel: int) -> SessionRequest:
        return SessionRequest(
            device_serial=self.run.serial, channel=channel, kind=SessionKind.LIVE_MAIN
        )

    async def token(self) -> bytes:
        assert self.tokens is not None
        return await self.tokens()

    async def open_live(self, channel: int, token: bytes) -> StreamSession:
        assert self.data is not None
        return await open_session(self.data, token, self.request(channel))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._stack.aclose()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
