"""The worker connection's byte stream: an asyncio protocol kept registered with the event loop.

anyio's socket stream waits for every receive by registering the socket with the loop's selector
and removing it again after (add_reader, which also formats the socket's repr on the way). On the
MCP server that was a fifth of the CPU of a tool call's round trip to the worker. Here the
transport owns the socket for the connection's life: bytes arrive by callback and wait in a queue
until read, and a reader waits on a future. The stream has anyio's ByteStream shape and raises
what anyio's would (EndOfStream at the end, BrokenResourceError when the connection failed,
ClosedResourceError after aclose), so wire.py and wire_stream.py read it as before. A TLS
connection (an https worker.url) keeps anyio's stream.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from typing import Any

import anyio
from anyio.abc import ByteStream, SocketAttribute

# Bytes a reader has not taken yet before the transport stops reading (an event stream the
# server falls behind on); reading resumes once they are taken.
HIGH_WATER = 256 * 1024


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.eof = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.writable: asyncio.Future[None] | None = None   # set while the transport's buffer is full
        self.transport: asyncio.Transport | None = None
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport if isinstance(transport, asyncio.Transport) else None

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False   # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        if exc is not None:
            self.error = exc
        self._wake()
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    def pause_writing(self) -> None:
        self.writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)
        self.writable = None

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def take(self, max_bytes: int) -> bytes:
        data = self.chunks.popleft()
        if len(data) > max_bytes:
            data, rest = data[:max_bytes], data[max_bytes:]
            self.chunks.appendleft(rest)
        self.buffered -= len(data)
        if self.paused and self.buffered <= HIGH_WATER // 2 and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data


class ProtocolStream(ByteStream):
    """One connection to the worker (module docstring)."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol, sock: socket.socket) -> None:
        self._transport = transport
        self._protocol = protocol
        self._sock = sock
        self._closed = False

    async def receive(self, max_bytes: int = 65536) -> bytes:
        p = self._protocol
        while not p.chunks:
            if self._closed:
                raise anyio.ClosedResourceError
            if p.error is not None:
                raise anyio.BrokenResourceError from p.error
            if p.eof:
                raise anyio.EndOfStream
            p.waiter = asyncio.get_running_loop().create_future()
            try:
                await p.waiter
            finally:
                p.waiter = None
        return p.take(max_bytes)

    async def send(self, item: bytes) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        p = self._protocol
        if p.error is not None or self._transport.is_closing():
            raise anyio.BrokenResourceError from p.error
        self._transport.write(item)
        if p.writable is not None:
            # Shielded: the future is the connection's, shared by every send until the buffer drains.
            await asyncio.shield(p.writable)

    async def send_eof(self) -> None:
        self._transport.write_eof()

    async def aclose(self) -> None:
        self._closed = True
        if self._transport.get_write_buffer_size():
            self._transport.abort()   # unsent bytes to a peer that is not reading: do not wait for them
        else:
            self._transport.close()

    def at_rest(self) -> bool:
        """Open, with nothing unread: what a kept-alive connection must be before it carries a
        request. The loop has seen every event so far; a peek sees a close it has not got to yet."""
        p = self._protocol
        if self._closed or p.eof or p.chunks or self._transport.is_closing():
            return False
        try:
            self._sock.recv(1, socket.MSG_PEEK)   # non-blocking: the transport set it so
        except BlockingIOError:
            return True
        except OSError:
            return False
        return False   # EOF, or stray bytes: either way not a connection to reuse

    @property
    def extra_attributes(self) -> dict[Any, Any]:
        return {SocketAttribute.raw_socket: lambda: self._sock}


async def connect_unix(path: str) -> ProtocolStream:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    return await _connected(sock, path)


async def connect_tcp(host: str, port: int) -> ProtocolStream:
    """Each of the host's addresses in turn (`localhost` may name ::1 first, and the worker listen on
    127.0.0.1 only); the last one's error if none answers."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    failure: OSError = OSError(f"no address for {host}:{port}")
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            return await _connected(sock, address)
        except OSError as exc:
            failure = exc
    raise failure


async def _connected(sock: socket.socket, address: Any) -> ProtocolStream:
    loop = asyncio.get_running_loop()
    try:
        sock.setblocking(False)
        await loop.sock_connect(sock, address)
        if sock.family == socket.AF_UNIX:
            transport, protocol = await loop.create_unix_connection(_Protocol, sock=sock)
        else:
            transport, protocol = await loop.create_connection(_Protocol, sock=sock)
    except BaseException:
        sock.close()
        raise
    return ProtocolStream(transport, protocol, sock)
