"""Stream verbs: `view`, `playback`, `talk`, `ptz`, `alarms`.

Each verb uses the login stored by `nvrshare account login`, fetches a share
token for the device from the relay's control plane (refreshed before it
expires), and opens relay sessions on the relay's data port (`--data
HOST:PORT` or `$NVRSHARE_DATA`; else the endpoint the token response
advertises, TLS included; else the relay URL's host, port 8481).  `--data-tls`
/ `--data-ca PEM` make the data connection TLS (the relay's name is verified).
`view`/`playback` serve until `--duration`, Ctrl-C or SIGTERM (all exit 0).
Exit codes: 0 done, 1 refused (the typed reason is printed), 2 bad usage,
4 the relay could not be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import ipaddress
import json
import os
import signal
import ssl
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from nvrshare.client.errors import ClientError, RelayRefused, RelayUnreachable
from nvrshare.client.sdk import API, RelayClient
from nvrshare.client.session_file import load_session
from nvrshare.client.streams import (
    LocalRtspEndpoint,
    RelayEndpoint,
    StreamRefused,
    StreamUnavailable,
    open_session,
    read_alarms,
    talk,
)
from nvrshare.protocol.errors import ProtocolError
from nvrshare.protocol.messages import SessionKind, SessionRequest
from nvrshare.protocol.permissions import TimeWindow
from nvrshare.protocol.tokens import token_from_text

__all__ = [
    "DEFAULT_DATA_PORT",
    "TokenCache",
    "advertised_endpoint",
    "parse_endpoint",
    "pcm16_to_ulaw",
    "read_ulaw_audio",
    "register",
]

DEFAULT_DATA_PORT = 8481
EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 4
MAX_HOST_LENGTH = 253
TOKEN_REFRESH_MARGIN = 30.0  # seconds before expiry at which a new token is fetched


class UsageError(ClientError):
    """A command-line value is unusable."""


def parse_endpoint(text: str, *, default_port: int) -> RelayEndpoint:
    """`HOST[:PORT]` or `[V6]:PORT` → endpoint; `UsageError` if malformed."""
    try:
        parts = urlsplit(f"//{text}")
        port = parts.port if parts.port is not None else default_port
    except ValueError as exc:
        raise UsageError(f"bad endpoint {text!r}: {exc}") from exc
    if not parts.hostname:
        raise UsageError(f"bad endpoint {text!r}")
    return RelayEndpoint(host=parts.hostname, port=port)


def _parse_time(text: str) -> int:
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise UsageError(f"bad time {text!r}: use ISO 8601, e.g. 2026-11-21T09:00") from exc
    return int(when.astimezone().timestamp())  # naive times are this machine's local time


class TokenCache:
    """Share tokens for one device, fetched through the SDK and reused until near expiry.

    A device allows each token a bounded number of sessions, so a token is
    also replaced after `max_uses` sessions (a player that reconnects often
    would otherwise run into the device's allowance).
    """

    def __init__(self, client: RelayClient, serial: str, *, max_uses: int = 16) -> None:
        self.client = client
        self._serial = serial
        self._max_uses = max_uses
        self._token: bytes | None = None
        self._expires_at = 0.0
        self._uses = 0
        self._lock = asyncio.Lock()
        self.fetched = 0
        self.last_response: dict[str, Any] = {}

    async def __call__(self) -> bytes:
        async with self._lock:
            self._uses += 1
            if (
                self._token is None
                or self._expires_at - time.time() < TOKEN_REFRESH_MARGIN
                or self._uses > self._max_uses
            ):
                self._uses = 1
                issued = await self.client.issue_token(self._serial)
                self.last_response = issued
                self._token = token_from_text(str(issued["token"]))
                self._expires_at = float(issued["expires_at"])
                self.fetched += 1
            return self._token


def advertised_endpoint(value: object) -> tuple[RelayEndpoint, bool] | None:
    """The relay's `data_endpoint` from a token response → (endpoint, speaks TLS).

    None when the relay named none (null/absent).  The value comes off the
    network: anything but `{"host": str, "port": 1..65535, "tls": bool}` (or an
    older relay's `"HOST:PORT"` text) is a `UsageError`, never a guess.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return parse_endpoint(value, default_port=DEFAULT_DATA_PORT), False
    if isinstance(value, dict):
        host, port, tls = value.get("host"), value.get("port"), value.get("tls", False)
        if (
            isinstance(host, str)
            and 0 < len(host) <= MAX_HOST_LENGTH
            and type(port) is int
            and 1 <= port <= 65535
            and type(tls) is bool
        ):
            return RelayEndpoint(host=host, port=port), tls
    raise UsageError("the relay advertised a malformed data endpoint; use --data HOST:PORT")


def _tls_context(cafile: str | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot load the data port's CA {cafile!r}: {exc}") from exc


def _data_endpoint(
    args: argparse.Namespace, relay_url: str, issued: dict[str, Any]
) -> RelayEndpoint:
    # An explicit --data / $NVRSHARE_DATA wins over what the relay advertises.
    wants_tls = bool(getattr(args, "data_tls", False) or getattr(args, "data_ca", None))
    text = args.data or os.environ.get("NVRSHARE_DATA")
    if text:
        endpoint = parse_endpoint(str(text), default_port=DEFAULT_DATA_PORT)
    elif (advertised := advertised_endpoint(issued.get("data_endpoint"))) is not None:
        endpoint, advertised_tls = advertised
        wants_tls = wants_tls or advertised_tls
    else:
        host = urlsplit(relay_url).hostname or "127.0.0.1"
        endpoint = RelayEndpoint(host=host, port=DEFAULT_DATA_PORT)
    if not wants_tls:
        return endpoint
    return dataclasses.replace(endpoint, tls=_tls_context(getattr(args, "data_ca", None)))


def _request(args: argparse.Namespace, kind: SessionKind) -> SessionRequest:
    window = None
    if kind is SessionKind.PLAYBACK:
        start, end = _parse_time(args.start), _parse_time(args.end)
        if end <= start:
            raise UsageError("--to must be after --from")
        window = TimeWindow(start=start, end=end)
    try:
        return SessionRequest(
            device_serial=args.device, channel=args.channel, kind=kind, playback_window=window
        )
    except ProtocolError as exc:
        raise UsageError(str(exc)) from exc


# --- audio input ----------------------------------------------------------------------

MAX_TALK_SECONDS = 600
_WAVE_PCM, _WAVE_MULAW, _WAVE_EXTENSIBLE = 1, 7, 0xFFFE


def _ulaw_byte(sample: int) -> int:
    """ITU-T G.711 µ-law encoding of one signed 16-bit sample."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = magnitude.bit_length() - 8
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def pcm16_to_ulaw(pcm: bytes) -> bytes:
    """Little-endian signed 16-bit PCM → µ-law, one byte per sample."""
    samples = memoryview(pcm[: len(pcm) // 2 * 2]).cast("h")
    return bytes(_ulaw_byte(sample) for sample in samples)


def read_ulaw_audio(path: Path) -> bytes:
    """8 kHz mono µ-law audio from a WAV file (µ-law or 16-bit PCM) or a raw `.ul` file.

    Raises `UsageError` for anything else, with the ffmpeg command that converts it.
    """
    hint = f"convert it: ffmpeg -i {path} -ar 8000 -ac 1 -c:a pcm_mulaw talk.wav"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc
    limit = MAX_TALK_SECONDS * 8000
    if not data.startswith(b"RIFF"):
        if path.suffix.lower() not in {".ul", ".ulaw", ".mulaw"}:
            raise UsageError(f"{path} is neither a WAV file nor raw µ-law (.ul); {hint}")
        return data[:limit]
    if data[8:12] != b"WAVE":
        raise UsageError(f"{path} is not a WAV file; {hint}")
    fmt: tuple[int, int, int, int] | None = None
    position = 12
    while position + 8 <= len(data):
        chunk, size = (
            data[position : position + 4],
            int.from_bytes(data[position + 4 : position + 8], "little"),
        )
        body = data[position + 8 : position + 8 + size]
        if chunk == b"fmt " and len(body) >= 16:
            tag = int.from_bytes(body[0:2], "little")
            if tag == _WAVE_EXTENSIBLE and len(body) >= 26:
                tag = int.from_bytes(body[24:26], "little")
            fmt = (
                tag,
                int.from_bytes(body[2:4], "little"),
                int.from_bytes(body[4:8], "little"),
                int.from_bytes(body[14:16], "little"),
            )
        elif chunk == b"data":
            if fmt is None:
                break
            tag, channels, rate, bits = fmt
            if channels != 1 or rate != 8000:
                raise UsageError(f"{path} must be 8 kHz mono; {hint}")
            if tag == _WAVE_MULAW and bits == 8:
                return body[:limit]
            if tag == _WAVE_PCM and bits == 16:
                return pcm16_to_ulaw(body[: limit * 2])
            raise UsageError(f"{path} must be µ-law or 16-bit PCM; {hint}")
        position += 8 + size + (size & 1)
    raise UsageError(f"{path} has no usable audio; {hint}")


# --- verbs --------------------------------------------------------------------------


async def _serve_rtsp(
    args: argparse.Namespace, tokens: TokenCache, relay: RelayEndpoint, kind: SessionKind
) -> int:
    listen = parse_endpoint(args.listen, default_port=8554)
    if not _is_loopback(listen.host):
        # Anyone who can reach this port watches with *your* share token.
        print(
            f"warning: serving on {listen.host}, not loopback: others on the network can "
            "open this stream as you",
            file=sys.stderr,
        )
    request = _request(args, kind)
    endpoint = LocalRtspEndpoint(relay, tokens, request, host=listen.host, port=listen.port)
    async with endpoint:
        print(
            f"{endpoint.url}   (RTSP over TCP: ffplay -rtsp_transport tcp {endpoint.url})",
            flush=True,
        )
        serving = asyncio.ensure_future(endpoint.serve_forever())
        try:
            with _stop_on_signals() as stopped:
                stopping = asyncio.ensure_future(stopped.wait())
                try:
                    await asyncio.wait(
                        (serving, stopping),
                        timeout=args.duration,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    stopping.cancel()
            if serving.done() and not serving.cancelled():
                serving.result()  # serving ended by itself: an error, surface it
        finally:
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
    return 0


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[asyncio.Event]:
    """An event set by SIGINT or SIGTERM while inside: a clean stop, exit status 0.

    Process supervisors (systemd, docker, a test's cleanup) stop with SIGTERM;
    it must close the local listener and the relay sessions like Ctrl-C does.
    Where the loop cannot take signals (not the main thread) nothing is installed.
    """
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stopped.set)
        except (NotImplementedError, RuntimeError, ValueError):
            continue
        installed.append(sig)
    try:
        yield stopped
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _view(args: argparse.Namespace, tokens: TokenCache, relay: RelayEndpoint) -> int:
    return await _serve_rtsp(
        args, tokens, relay, SessionKind.LIVE_SUB if args.sub else SessionKind.LIVE_MAIN
    )


async def _playback(args: argparse.Namespace, tokens: TokenCache, relay: RelayEndpoint) -> int:
    return await _serve_rtsp(args, tokens, relay, SessionKind.PLAYBACK)


async def _talk(args: argparse.Namespace, tokens: TokenCache, relay: RelayEndpoint) -> int:
    audio = await asyncio.to_thread(read_ulaw_audio, Path(args.input))
    request = _request(args, SessionKind.TALK)
    async with await open_session(relay, await tokens(), request) as session:
        heard = await talk(session, audio, linger=args.linger)
    if args.output:
        await asyncio.to_thread(Path(args.output).write_bytes, heard)
    print(f"sent {len(audio) / 8000:.1f} s of audio, received {len(heard) / 8000:.1f} s")
    return 0


async def _alarms(args: argparse.Namespace, tokens: TokenCache, relay: RelayEndpoint) -> int:
    request = _request(args, SessionKind.ALARM)
    async with await open_session(relay, await tokens(), request) as session:
        async for event in read_alarms(session):
            if args.json:
                print(
                    json.dumps(
                        {
                            "device": event.device_serial,
                            "channel": event.channel,
                            "type": event.event_type,
                            "active": event.active,
                            "timestamp": event.timestamp,
                        }
                    ),
                    flush=True,
                )
            else:
                when = datetime.fromtimestamp(event.timestamp).isoformat(timespec="seconds")
                state = "active" if event.active else "cleared"
                print(f"{when}  channel {event.channel}  {event.event_type}  {state}", flush=True)
    print("the device ended the alarm stream", file=sys.stderr)
    return 0


async def _ptz(args: argparse.Namespace, tokens: TokenCache, relay: RelayEndpoint) -> int:
    del relay  # PTZ is a control-plane call: the relay forwards it to the device over MQTT
    if args.stop:
        command: dict[str, object] = {"action": "stop"}
    elif args.preset is not None:
        command = {"action": "set_preset" if args.set else "goto_preset", "preset": args.preset}
    else:
        if not all(-1.0 <= v <= 1.0 for v in (args.pan, args.tilt, args.zoom)):
            raise UsageError("--pan/--tilt/--zoom must be within [-1, 1]")
        command = {
            "action": "continuous_move",
            "pan": args.pan,
            "tilt": args.tilt,
            "zoom": args.zoom,
        }
    path = f"{API}/devices/{args.device}/ptz"
    try:
        # The SDK has no PTZ method yet; its generic request keeps auth and error mapping.
        result = await tokens.client._request(
            "POST", path, body={"channel": args.channel, **command}
        )
    except RelayRefused as exc:
        if exc.status in {404, 405}:
            raise ClientError(f"this relay has no PTZ endpoint (POST {path})") from exc
        raise
    print(json.dumps(result) if args.json else f"ptz {command['action']}: ok")
    return 0


# --- wiring ---------------------------------------------------------------------------

Verb = Callable[[argparse.Namespace, TokenCache, RelayEndpoint], Awaitable[int]]


def _runner(verb: Verb) -> Callable[[argparse.Namespace], Awaitable[int]]:
    async def run(args: argparse.Namespace) -> int:
        try:
            if getattr(args, "start", None) is not None:  # bad times fail before any network
                _request(args, SessionKind.PLAYBACK)
            session = load_session()
            relay_url = args.relay or session.relay
            async with RelayClient(relay_url, token=session.token) as client:
                tokens = TokenCache(client, args.device)
                await tokens()
                relay = _data_endpoint(args, relay_url, tokens.last_response)
                return int(await verb(args, tokens, relay))
        except UsageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except StreamRefused as exc:
            print(
                f"refused: {exc.reason.value}" + (f" ({exc.message})" if exc.message else ""),
                file=sys.stderr,
            )
            return EXIT_REFUSED
        except (StreamUnavailable, RelayUnreachable) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_UNREACHABLE
        except RelayRefused as exc:
            print(f"error: {exc.message} [{exc.code}]", file=sys.stderr)
            return EXIT_REFUSED
        except ClientError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_REFUSED

    return run


def _add(subparsers: Any, name: str, help_text: str, verb: Verb) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=help_text)
    parser.add_argument("--device", required=True, metavar="SERIAL")
    parser.add_argument("--channel", type=int, default=1, metavar="N")
    parser.add_argument("--relay", help="relay URL (default: the login's)")
    parser.add_argument("--data", metavar="HOST:PORT", help="relay data port")
    parser.add_argument("--data-tls", action="store_true", help="the data port speaks TLS")
    parser.add_argument("--data-ca", metavar="PEM", help="CA for the data port's TLS (implies it)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=_runner(verb))
    return parser


def register(subparsers: Any) -> None:
    """Add the stream verbs to the `nvrshare` dispatcher."""
    for name, help_text, verb in (
        ("view", "expose a shared channel as a local RTSP URL", _view),
        ("playback", "expose a playback window as a local RTSP URL", _playback),
    ):
        p = _add(subparsers, name, help_text, verb)
        p.add_argument("--listen", default="127.0.0.1:8554", metavar="HOST:PORT")
        p.add_argument(
            "--duration",
            type=float,
            default=None,
            metavar="SECONDS",
            help="stop serving after this long (default: until interrupted)",
        )
        if name == "view":
            p.add_argument("--sub", action="store_true", help="the sub stream")
        else:
            p.add_argument("--from", dest="start", required=True, metavar="TIME")
            p.add_argument("--to", dest="end", required=True, metavar="TIME")
    p = _add(subparsers, "talk", "two-way audio", _talk)
    p.add_argument(
        "--in",
        dest="input",
        required=True,
        metavar="FILE.wav",
        help="8 kHz mono WAV (µ-law or 16-bit PCM), or raw µ-law (.ul)",
    )
    p.add_argument("--out", dest="output", metavar="FILE.ul", help="save the device's audio")
    p.add_argument("--linger", type=float, default=1.0, help="seconds to listen after sending")
    p = _add(subparsers, "ptz", "move a PTZ camera", _ptz)
    for axis in ("--pan", "--tilt", "--zoom"):
        p.add_argument(axis, type=float, default=0.0, help="speed in [-1, 1]")
    p.add_argument("--stop", action="store_true")
    p.add_argument("--preset", type=int)
    p.add_argument("--set", action="store_true", help="store the preset instead of going there")
    _add(subparsers, "alarms", "print alarm events as they arrive", _alarms)
