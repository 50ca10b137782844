"""An accepted data-port connection during its handshake: plain TCP or TLS.

Plain TCP stays a bare non-blocking socket (`SocketConnection`) so that the
splice engine can take it over with nothing buffered in user space.  With TLS
configured, the socket is wrapped by asyncio's TLS transport
(`TlsConnection`); splice cannot see through TLS, so such sessions are moved
by `StreamRelaySession` instead (decrypt, re-encrypt, with asyncio's flow
control as backpressure).
"""

from __future__ import annotations

import asyncio
import socket
import ssl

__all__ = ["Connection", "SocketConnection", "TlsConnection", "accept_tls"]

TLS_READ_LIMIT = 256 * 1024


class SocketConnection:
    """A plain TCP connection: the socket itself."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    async def recv(self, size: int) -> bytes:
        return await asyncio.get_running_loop().sock_recv(self.sock, size)

    async def sendall(self, data: bytes) -> None:
        await asyncio.get_running_loop().sock_sendall(self.sock, data)

    def close(self) -> None:
        self.sock.close()


class TlsConnection:
    """A TLS connection: asyncio's TLS transport and a stream reader over it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def recv(self, size: int) -> bytes:
        return await self.reader.read(size)

    async def sendall(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def close(self) -> None:
        # abort, not close: a peer being cut off (refused, revoked) gets no more bytes.
        self.writer.transport.abort()


Connection = SocketConnection | TlsConnection


async def accept_tls(sock: socket.socket, context: ssl.SSLContext) -> TlsConnection:
    """Run the server side of a TLS handshake on an accepted socket.

    Bound it with the caller's timeout.  Raises `OSError` (`ssl.SSLError`
    included) if the handshake fails; asyncio closes the socket then.
    """
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=TLS_READ_LIMIT)
    protocol = asyncio.StreamReaderProtocol(reader)
    # On failure or cancellation asyncio closes the transport it made, and with it the
    # socket; closing the socket here too would pull the fd from under that transport.
    transport, _ = await loop.connect_accepted_socket(lambda: protocol, sock, ssl=context)
    return TlsConnection(reader, asyncio.StreamWriter(transport, protocol, reader, loop))
