"""`nvrshare sim camera|recorder`: run simulated hardware until SIGINT or SIGTERM.

On start it prints one JSON line with every URL and the credentials, so scripts
and end-to-end tests can read where the simulator listens.  The password comes
from --password, else $NVRSHARE_SIM_PASSWORD (which keeps it out of `ps`), else
it is random (and printed): simulators never come up with a well-known password.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
from collections.abc import Callable

from nvrshare.firmware_shim.models import AlarmKind
from nvrshare.simulators.camera import CameraSimConfig, CameraSimulator
from nvrshare.simulators.recorder import RecorderSimConfig, RecorderSimulator

__all__ = ["PASSWORD_ENV", "register"]

PASSWORD_ENV = "NVRSHARE_SIM_PASSWORD"  # noqa: S105 - the variable's name, not a secret


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x", 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if width % 2 or height % 2 or not 16 <= width <= 1920 or not 16 <= height <= 1080:
        raise argparse.ArgumentTypeError("size must be even, 16x16 .. 1920x1080")
    return width, height


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("port must be 0..65535")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("sim", help="run simulated cameras and recorders")
    kinds = parser.add_subparsers(dest="sim_kind", metavar="KIND", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--host", default="127.0.0.1", help="listen address")
        sub.add_argument("--rtsp-port", type=_port, default=0, help="RTSP port (0 = any)")
        sub.add_argument("--username", default="admin")
        sub.add_argument(
            "--password",
            help=(
                f"device password (default: ${PASSWORD_ENV}, else random; printed either way;"
                " write --password=VALUE when it starts with '-')"
            ),
        )
        sub.add_argument("--size", type=_size, default=(640, 360), help="main stream WxH")
        sub.add_argument("--sub-size", type=_size, default=(320, 180), help="sub stream WxH")
        sub.add_argument("--fps", type=int, choices=range(1, 31), default=25, metavar="1..30")
        sub.add_argument(
            "--motion-every",
            type=float,
            default=0.0,
            metavar="SECONDS",
            help="raise and clear a motion alarm periodically (0 = never)",
        )

    camera = kinds.add_parser("camera", help="an IP camera: RTSP + ONVIF")
    common(camera)
    camera.add_argument("--onvif-port", type=_port, default=0, help="ONVIF HTTP port (0 = any)")
    camera.add_argument("--no-onvif", action="store_true", help="RTSP only")
    camera.set_defaults(func=run_camera)

    recorder = kinds.add_parser("recorder", help="an NVR: ISAPI + RTSP, N channels")
    common(recorder)
    recorder.add_argument("--channels", type=int, choices=range(1, 65), default=4, metavar="1..64")
    recorder.add_argument("--http-port", type=_port, default=0, help="ISAPI port (0 = any)")
    recorder.add_argument(
        "--heartbeat", type=float, default=10.0, help="alertStream heartbeat seconds"
    )
    recorder.set_defaults(func=run_recorder)


def _password(args: argparse.Namespace) -> str:
    # The environment keeps the password out of `ps` output, unlike argv.
    return args.password or os.environ.get(PASSWORD_ENV) or secrets.token_urlsafe(12)


async def _serve_until_signal(
    announce: dict[str, object], motion: Callable[[bool], None] | None, every: float
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(json.dumps(announce), flush=True)
    try:
        if motion is None or every <= 0:
            await stop.wait()
            return
        active = False
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every):
                    await stop.wait()
            active = not active
            motion(active)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def run_camera(args: argparse.Namespace) -> int:
    password = _password(args)
    config = CameraSimConfig(
        host=args.host,
        rtsp_port=args.rtsp_port,
        onvif_port=args.onvif_port,
        username=args.username,
        password=password,
        main_size=args.size,
        sub_size=args.sub_size,
        fps=args.fps,
        onvif=not args.no_onvif,
    )
    try:
        async with CameraSimulator(config) as cam:
            state = cam.onvif_state

            def motion(active: bool) -> None:
                if state is not None:
                    state.trigger_motion(active)

            await _serve_until_signal(
                {
                    "kind": "camera",
                    "main": cam.main_url,
                    "sub": cam.sub_url,
                    "onvif": cam.onvif_url,
                    "username": args.username,
                    "password": password,
                },
                motion if state is not None else None,
                args.motion_every,
            )
    except OSError as exc:
        print(f"nvrshare sim camera: {exc}", file=sys.stderr)
        return 2
    return 0


async def run_recorder(args: argparse.Namespace) -> int:
    password = _password(args)
    config = RecorderSimConfig(
        channels=args.channels,
        host=args.host,
        http_port=args.http_port,
        rtsp_port=args.rtsp_port,
        username=args.username,
        password=password,
        main_size=args.size,
        sub_size=args.sub_size,
        fps=args.fps,
        heartbeat=args.heartbeat,
    )
    try:
        async with RecorderSimulator(config) as nvr:

            def motion(active: bool) -> None:
                nvr.device.trigger_alarm(AlarmKind.MOTION, channel=1, active=active)

            await _serve_until_signal(
                {
                    "kind": "recorder",
                    "isapi": nvr.base_url,
                    "rtsp": nvr.rtsp.url(""),
                    "channels": args.channels,
                    "serial": nvr.config.serial,
                    "username": args.username,
                    "password": password,
                },
                motion,
                args.motion_every,
            )
    except OSError as exc:
        print(f"nvrshare sim recorder: {exc}", file=sys.stderr)
        return 2
    return 0
