"""relay_throughput: bulk bytes through the real data plane vs socat vs a direct connection.

Each run moves `total` bytes (1 GiB; 256 MiB with --quick) from a writer to a
reader over loopback, in the video direction (agent → client), four ways,
alternating so that drift on a shared machine hits all of them alike:

* direct: writer → reader, no hop (the ceiling);
* socat: writer → `socat -b 262144` → reader (the baseline a relay must beat);
* relay: writer (agent) → data plane (splice engine) → reader (client),
  after a real ClientHello / SessionOffer / AgentHello handshake;
* relay_protocol: the same with the portable BufferedProtocol engine.

The relay runs in its own process (`bench.relay_proc`) so that its CPU time
is measured alone (psutil); socat's is its rusage from wait4.  Figures are
medians over the runs; ratios are medians of the per-round ratios (a round
runs every series once, back to back); CPU is CPU-seconds per GB (10^9 bytes).
"""

from __future__ import annotations

import os
import resource
import shutil
import socket
import subprocess
import time

from bench.common import BenchResult, cpu_seconds, median
from bench.peers import RelayProcess, bulk_transfer

GIB = 1 << 30


def _direct(total: int) -> tuple[float, float]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        source = socket.create_connection(listener.getsockname())
        sink, _ = listener.accept()
    with source, sink:
        return bulk_transfer(source, sink, total), 0.0


def _socat(total: int) -> tuple[float, float]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            front_port = probe.getsockname()[1]
        proc = subprocess.Popen(
            [
                "socat",
                "-b",
                "262144",
                f"TCP4-LISTEN:{front_port},bind=127.0.0.1,reuseaddr",
                f"TCP4:127.0.0.1:{listener.getsockname()[1]}",
            ]
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    source = socket.create_connection(("127.0.0.1", front_port))
                    break
                except ConnectionRefusedError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
            sink, _ = listener.accept()
            with source, sink:
                elapsed = bulk_transfer(source, sink, total)
        finally:
            usage = _reap(proc)
    cpu = usage.ru_utime + usage.ru_stime
    return elapsed, cpu


def _reap(proc: subprocess.Popen[bytes]) -> resource.struct_rusage:
    """Wait for socat to exit (killing it after 10 s) and return its exact rusage.

    wait4 rather than psutil: psutil cannot read a process that already exited.
    """
    deadline = time.monotonic() + 10
    while True:
        pid, _, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = 0
            return usage
        if time.monotonic() > deadline:
            proc.kill()
            deadline = float("inf")
        time.sleep(0.005)


def _relay(relay: RelayProcess, total: int) -> tuple[float, float]:
    client, agent = relay.pair()
    with client, agent:
        before = cpu_seconds(relay.process)
        elapsed = bulk_transfer(agent, client, total)
        cpu = cpu_seconds(relay.process) - before
    return elapsed, cpu


def run(quick: bool) -> BenchResult:
    total = GIB // 4 if quick else GIB
    repeats = 2 if quick else 5
    result = BenchResult(name="relay_throughput")
    if shutil.which("socat") is None:
        result.measured = False
        result.notes.append("not measured: socat is not installed (make system-deps)")
        return result
    relays = {"relay": RelayProcess("splice"), "relay_protocol": RelayProcess("protocol")}
    series = ["direct", "socat", *relays]
    rates: dict[str, list[float]] = {name: [] for name in series}
    cpus: dict[str, list[float]] = {name: [] for name in series}
    try:
        for _ in range(repeats):
            for name in series:
                if name == "direct":
                    elapsed, cpu = _direct(total)
                elif name == "socat":
                    elapsed, cpu = _socat(total)
                else:
                    elapsed, cpu = _relay(relays[name], total)
                rates[name].append(total / elapsed / 1e9)
                cpus[name].append(cpu / (total / 1e9))
    finally:
        for relay in relays.values():
            relay.close()
    result.runs = {f"{name}_gb_per_s": rates[name] for name in series}
    result.runs.update({f"{name}_cpu_s_per_gb": cpus[name] for name in series if name != "direct"})
    gbps = {name: median(rates[name]) for name in series}
    cpu_per_gb = {name: median(cpus[name]) for name in series if name != "direct"}
    result.figures = {
        "relay_gb_per_s": gbps["relay"],
        "relay_cpu_s_per_gb": cpu_per_gb["relay"],
        "relay_protocol_gb_per_s": gbps["relay_protocol"],
        "relay_protocol_cpu_s_per_gb": cpu_per_gb["relay_protocol"],
    }
    result.baselines = {
        "direct_gb_per_s": gbps["direct"],
        "socat_gb_per_s": gbps["socat"],
        "socat_cpu_s_per_gb": cpu_per_gb["socat"],
    }

    # Ratios are medians of per-round ratios: each round runs the series back to back,
    # so pairing them cancels most of the drift of a shared machine.
    def paired(numerator: list[float], denominator: list[float]) -> float:
        return median([a / b for a, b in zip(numerator, denominator, strict=True)])

    result.ratios = {
        "relay_vs_socat": paired(rates["relay"], rates["socat"]),
        "relay_vs_direct": paired(rates["relay"], rates["direct"]),
        "relay_cpu_vs_socat": paired(cpus["relay"], cpus["socat"]),
        "relay_protocol_vs_socat": paired(rates["relay_protocol"], rates["socat"]),
        "relay_protocol_cpu_vs_socat": paired(cpus["relay_protocol"], cpus["socat"]),
    }
    result.goals = {"relay_vs_socat": ">= 1.0", "relay_cpu_vs_socat": "<= 0.6"}
    result.verdicts = {
        "relay_vs_socat": result.ratios["relay_vs_socat"] >= 1.0,
        "relay_cpu_vs_socat": result.ratios["relay_cpu_vs_socat"] <= 0.6,
    }
    result.notes.append(
        f"{total / GIB:g} GiB per run, {repeats} runs per series, alternating; "
        "relay = splice engine (default on Linux), relay_protocol = BufferedProtocol fallback"
    )
    return result
