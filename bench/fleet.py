"""A fleet of simulated devices in one process, running the agent's real control loop.

`worker(spec, events, go, stop)` is the entry point of one spawned process:

1. provisioning: for each device, the agent's own claim (`build_claim`: a
   device key, MAC keyed by the verification code, signature) is POSTed to
   the relay's provisioning endpoint, a few at a time; each device's claim
   leaves from its own loopback source address in 127.0.0.0/8 (the relay
   rate-limits claims per source, as it would per home network);
2. after `go`: one `nvrshare.agent.control.ControlChannel` per device (the
   real agent's MQTT loop: will, retained state, signed registration with
   retries, heartbeat, grant sets applied to a per-device `GrantStore`,
   full-jitter reconnect backoff) - only the recorder behind it is replaced by
   fixed facts (4 channels), since no recorder is asked during registration
   once facts are known;
3. every 20 ms the worker reports, in one batch, which devices became
   registered (accepted by the relay) or lost it, with CLOCK_MONOTONIC
   times (comparable across processes on Linux); and, when it changed, how
   many of its devices hold a grant set and how many sets they refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing.queues
import multiprocessing.synchronize
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from nvrshare.agent.bootstrap import build_claim
from nvrshare.agent.config import AgentConfig, BrokerEndpoint
from nvrshare.agent.control import ControlChannel
from nvrshare.agent.grants import GrantStore
from nvrshare.agent.registration import DeviceFacts, signed_registration
from nvrshare.firmware_shim import RecorderConfig
from nvrshare.protocol.messages import ChannelInfo
from nvrshare.protocol.permissions import Permission
from nvrshare.protocol.signing import SigningKey

__all__ = ["FleetSpec", "worker"]

REPORT_INTERVAL = 0.02
PROVISION_CONCURRENCY = 8
PROVISION_ATTEMPTS = 5
FACTS = DeviceFacts(
    model="DS-7604NI-BENCH",
    firmware_version="V4.0.0 bench",
    channels=tuple(
        ChannelInfo(
            number=n,
            name=f"Camera {n}",
            online=True,
            capabilities=Permission.LIVE_VIEW | Permission.PLAYBACK,
        )
        for n in range(1, 5)
    ),
)


@dataclass(frozen=True, kw_only=True, slots=True)
class FleetSpec:
    """What one worker runs: devices (serial, code, source address) and where the relay is."""

    devices: tuple[tuple[str, str, str], ...]
    provisioning_url: str
    broker_host: str
    broker_port: int
    state_dir: Path


@dataclass(slots=True)
class _Device:
    config: AgentConfig
    key: SigningKey
    broker: BrokerEndpoint | None = None
    channel: ControlChannel | None = None
    grants: GrantStore | None = None


def _config(spec: FleetSpec, serial: str, code: str) -> AgentConfig:
    state = spec.state_dir / serial
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    return AgentConfig(
        serial=serial,
        domain=serial.lower(),  # a domain names one device
        verification_code=code,
        state_dir=state,
        broker=BrokerEndpoint(host=spec.broker_host, port=spec.broker_port),
        recorder=RecorderConfig(backend="isapi", host="127.0.0.1"),
        provisioning_url=spec.provisioning_url,
    )


async def _provision_one(
    session: aiohttp.ClientSession, spec: FleetSpec, device: _Device
) -> str | None:
    """Claim the device's broker account; None on success, else why not."""
    why = "not tried"
    for attempt in range(PROVISION_ATTEMPTS):
        body = build_claim(
            serial=device.config.serial,
            verification_code=device.config.verification_code,
            key=device.key,
            now=time.time(),
        )
        try:
            async with session.post(spec.provisioning_url, json=body) as response:
                answer = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            why = f"{type(exc).__name__}: {exc}"
        else:
            if status == 200 and isinstance(answer, dict):
                device.broker = BrokerEndpoint(
                    host=spec.broker_host,
                    port=spec.broker_port,
                    username=str(answer["username"]),
                    password=str(answer["password"]),
                )
                return None
            why = f"HTTP {status}: {answer!r:.200}"
            if status not in (429, 500, 502, 503, 504):
                return why
        await asyncio.sleep(0.5 * (attempt + 1))
    return why


async def _provision(spec: FleetSpec, devices: list[_Device], sources: list[str]) -> list[str]:
    failures: list[str] = []
    semaphore = asyncio.Semaphore(PROVISION_CONCURRENCY)
    sessions: dict[str, aiohttp.ClientSession] = {}
    timeout = aiohttp.ClientTimeout(total=60)
    try:
        for source in set(sources):
            connector = aiohttp.TCPConnector(local_addr=(source, 0), limit=PROVISION_CONCURRENCY)
            sessions[source] = aiohttp.ClientSession(timeout=timeout, connector=connector)

        async def one(device: _Device, source: str) -> None:
            async with semaphore:
                why = await _provision_one(sessions[source], spec, device)
            if why is not None:
                failures.append(f"{device.config.serial}: {why}")

        await asyncio.gather(*(one(d, s) for d, s in zip(devices, sources, strict=True)))
    finally:
        for session in sessions.values():
            await session.close()
    return failures


def _channel(device: _Device, logger: logging.Logger) -> ControlChannel:
    config, key = device.config, device.key
    assert device.broker is not None
    grants = device.grants = GrantStore(config.state_dir, config.serial, logger=logger)

    async def registration() -> bytes:
        return signed_registration(
            key=key,
            serial=config.serial,
            domain=config.domain,
            facts=FACTS,
            ip="127.0.0.1",
            port=80,
            now=time.time(),
        )

    return ControlChannel(
        config,
        device.broker,
        grants=grants,
        registration=registration,
        address=("127.0.0.1", 80),
        logger=logger,
    )


async def _main(
    spec: FleetSpec,
    events: multiprocessing.queues.Queue[object],
    go: multiprocessing.synchronize.Event,
    stop: multiprocessing.synchronize.Event,
) -> None:
    # Thousands of devices log every reconnect at WARNING: keep errors only.
    logger = logging.getLogger("bench.fleet")
    logger.setLevel(logging.ERROR)
    devices = [
        _Device(config=_config(spec, serial, code), key=SigningKey.generate())
        for serial, code, _ in spec.devices
    ]
    started = time.monotonic()
    failures = await _provision(spec, devices, [source for _, _, source in spec.devices])
    events.put(("provisioned", time.monotonic() - started, failures))
    await asyncio.to_thread(go.wait)  # the driver sets it, also when it stops us early
    ready = [d for d in devices if d.broker is not None]
    tasks: list[asyncio.Task[None]] = []
    for device in ready:
        device.channel = _channel(device, logger)
        tasks.append(asyncio.create_task(device.channel.run()))
    state = [False] * len(ready)
    grants_reported = (0, 0)
    try:
        while not stop.is_set():
            await asyncio.sleep(REPORT_INTERVAL)
            now = time.monotonic()
            changes: list[tuple[str, bool, float]] = []
            held = refused = 0
            for index, device in enumerate(ready):
                assert device.channel is not None
                registered = device.channel.status.registered.is_set()
                if registered != state[index]:
                    state[index] = registered
                    changes.append((device.config.serial, registered, now))
                held += device.grants is not None and device.grants.current is not None
                refused += device.channel.status.grant_rejections
            if changes:
                events.put(("changes", changes))
            if (held, refused) != grants_reported:
                grants_reported = (held, refused)
                events.put(("grants", str(spec.state_dir), held, refused))
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)


def worker(
    spec: FleetSpec,
    events: multiprocessing.queues.Queue[object],
    go: multiprocessing.synchronize.Event,
    stop: multiprocessing.synchronize.Event,
) -> None:
    """Process entry point (spawned): provision, wait for `go`, run until `stop`."""
    asyncio.run(_main(spec, events, go, stop))
