"""Blocking-socket peers for benchmarks: a relay process handle, handshakes, bulk movers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from nvrshare.protocol.framing import NEED_DATA, FrameReceived, HandshakeConnection
from nvrshare.protocol.handshake import AgentHello, ClientHello, HelloAccepted, agent_proof
from nvrshare.protocol.handshake_state import Role
from nvrshare.protocol.messages import SessionKind, SessionRequest
from nvrshare.protocol.permissions import Permission
from nvrshare.protocol.signing import SigningKey, public_key_bytes
from nvrshare.protocol.tokens import TokenIssuer

ROOT = Path(__file__).resolve().parent.parent
SERIAL = "DS-7608NI-K2-BENCH0001"


class RelayProcess:
    """`bench.relay_proc` as a child process; `pair()` opens one relayed session."""

    def __init__(self, engine: str = "auto") -> None:
        self.key = SigningKey.generate()
        self.issuer = TokenIssuer(self.key, "bench")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.relay_proc",
                "--public-key",
                public_key_bytes(self.key.public_key).hex(),
                "--engine",
                engine,
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline().split()
        if not ready or ready[0] != "READY":
            self.close()
            raise RuntimeError("relay process did not start")
        self.port = int(ready[1])
        self.process = psutil.Process(self.proc.pid)
        now = int(time.time())
        self.token = self.issuer.issue(
            account_id="bench@example.com",
            device_serial=SERIAL,
            channels=dict.fromkeys(range(1, 65), Permission.LIVE_VIEW),
            not_before=now - 60,
            expires_at=now + 6 * 3600,
            share_epoch=1,
        )

    def client_hello(self, sock: socket.socket, channel: int = 1) -> HandshakeConnection:
        connection = HandshakeConnection(Role.CLIENT)
        request = SessionRequest(device_serial=SERIAL, channel=channel, kind=SessionKind.LIVE_MAIN)
        hello = ClientHello(token=self.token, request=request, client_nonce=os.urandom(16))
        sock.sendall(connection.send(hello))
        return connection

    def next_offer(self) -> tuple[bytes, bytes]:
        assert self.proc.stdout is not None
        offer = json.loads(self.proc.stdout.readline())
        return bytes.fromhex(offer["session_id"]), bytes.fromhex(offer["secret"])

    def pair(self, channel: int = 1) -> tuple[socket.socket, socket.socket]:
        """A relayed session: (client socket, agent socket), both blocking, handshake done."""
        client = socket.create_connection(("127.0.0.1", self.port))
        client_conn = self.client_hello(client, channel)
        session_id, secret = self.next_offer()
        agent = socket.create_connection(("127.0.0.1", self.port))
        agent_conn = HandshakeConnection(Role.AGENT)
        proof = agent_proof(secret, session_id)
        agent.sendall(agent_conn.send(AgentHello(session_id=session_id, proof=proof)))
        await_accepted(agent, agent_conn)
        await_accepted(client, client_conn)
        return client, agent

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def await_accepted(sock: socket.socket, connection: HandshakeConnection) -> None:
    while True:
        event = connection.next_event()
        if isinstance(event, FrameReceived):
            if not isinstance(event.message, HelloAccepted):
                raise RuntimeError(f"relay refused: {event.message}")
            early, _ = connection.switch_to_raw()
            assert early == b""
            return
        if event is not NEED_DATA:
            raise RuntimeError(f"relay closed the handshake: {event}")
        connection.receive_data(sock.recv(4096))


def bulk_transfer(source: socket.socket, sink: socket.socket, total: int) -> float:
    """Write `total` bytes into `source`, read them from `sink`; returns seconds."""
    chunk = memoryview(os.urandom(1 << 20))
    received = [0]

    def read() -> None:
        buffer = bytearray(1 << 20)
        while count := sink.recv_into(buffer):
            received[0] += count

    reader = threading.Thread(target=read)
    start = time.perf_counter()
    reader.start()
    sent = 0
    while sent < total:
        piece = chunk[: min(len(chunk), total - sent)]
        source.sendall(piece)
        sent += len(piece)
    source.shutdown(socket.SHUT_WR)
    reader.join()
    elapsed = time.perf_counter() - start
    if received[0] != total:
        raise RuntimeError(f"sink got {received[0]} of {total} bytes")
    return elapsed
