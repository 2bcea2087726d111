"""A small HTTP/1.1 keep-alive client for the worker's JSON calls.

Every tool call crosses this hop, so its cost is in every round trip an agent sees. httpx spends about
a millisecond of Python per request here (pool bookkeeping, several small socket writes and reads);
this client writes each request in one send and reads the answer with as few receives as it can,
which is what closes most of the gap to the MCP SDK's own floor (see benchmarks/run.py). httpx stays
for the event stream, where per-request cost does not matter.

It speaks only what the worker speaks: POST with a JSON body, answers with Content-Length (chunked
and read-to-close are understood too, for a proxy in between). Errors say whether the request can
have reached the worker: `WireConnectError` means it cannot, any other `WireError` means it may have.
"""

from __future__ import annotations

import socket
import time
from contextlib import suppress
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio
from anyio.abc import ByteStream, SocketAttribute

from .wire_socket import ProtocolStream, connect_tcp, connect_unix

MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024 * 1024
# The worker keeps an idle connection for 60 s (cli.WORKER_KEEP_ALIVE_S); the client lets go well
# before, so it seldom writes into a connection the worker is just closing.
IDLE_S = 20.0
MAX_IDLE_CONNECTIONS = 32


class WireError(Exception):
    """The exchange failed after the request may have been sent."""


class WireConnectError(WireError):
    """No connection: nothing was sent."""


class WireTimeout(WireError):
    """No complete answer within the deadline (the request was sent)."""


@dataclass(frozen=True)
class Target:
    uds: str | None
    host: str
    port: int
    tls: bool
    host_header: str
    base_path: str

    @classmethod
    def parse(cls, uds: str | None, url: str | None) -> Target:
        if uds is not None:
            return cls(uds, "", 0, False, "worker", "")
        parts = urlsplit(url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"worker.url must be http(s)://host:port, not {url!r}")
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        return cls(None, parts.hostname, port, tls, parts.netloc, parts.path.rstrip("/"))


class _StaleConnection(Exception):
    """The connection ended before any byte of the answer: the worker had closed it."""


@dataclass
class _Conn:
    stream: ByteStream
    buffer: bytearray
    idle_since: float
    answered: bool = False  # some byte of the current answer has arrived

    def still_open(self) -> bool:
        """An idle connection the peer has closed reads EOF at once; a live one has nothing to read."""
        if self.buffer:
            return False  # bytes nobody asked for: the exchange is out of step
        if isinstance(self.stream, ProtocolStream):
            return self.stream.at_rest()
        try:
            raw = self.stream.extra(SocketAttribute.raw_socket)  # noqa: S610 (anyio, not Django)
            # asyncio gives a TCP stream's socket as a TransportSocket, which has no recv (a worker.url
            # worker): peek through a socket object on the same descriptor, detached after, never closed.
            sock = raw if isinstance(raw, socket.socket) else socket.socket(fileno=raw.fileno())
            try:
                sock.recv(1, socket.MSG_PEEK)  # the event loop's sockets never block
            finally:
                if sock is not raw:
                    sock.detach()
        except BlockingIOError:
            return True
        except (OSError, anyio.TypedAttributeLookupError):
            return False
        return False  # EOF, or stray bytes: either way not a connection to reuse


class WirePool:
    def __init__(self, uds: str | None, url: str | None) -> None:
        self.target = Target.parse(uds, url)
        self._idle: list[_Conn] = []
        self._streams: dict[int, _Conn] = {}   # connect()'s, by id: closed with the pool
        self._closed = False

    async def post(
        self, path: str, body: bytes, headers: dict[str, str], budget_s: float, *, retry_safe: bool = False
    ) -> tuple[int, bytes]:
        """(status, body) of one POST; raises WireConnectError, WireTimeout or WireError.

        A kept-alive connection can be closed by the worker just as it is reused. When that happens
        before any answer arrives and the call is `retry_safe` (it changes nothing), it is sent once
        more on a fresh connection; a call that changes state is never resent here.
        """
        head = [f"POST {self.target.base_path}{path} HTTP/1.1", f"Host: {self.target.host_header}",
                "Content-Type: application/json", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        deadline = time.monotonic() + budget_s
        conn, reused = await self._acquire(budget_s)
        try:
            return await self._exchange(conn, request, deadline)
        except _StaleConnection as exc:
            if not (reused and retry_safe):
                raise WireError("the worker closed the connection without answering") from exc
        conn, _ = await self._acquire(max(deadline - time.monotonic(), 0.001), fresh=True)
        try:
            return await self._exchange(conn, request, deadline)
        except _StaleConnection as exc:
            raise WireError("the worker closed the connection without answering") from exc

    async def _exchange(self, conn: _Conn, request: bytes, deadline: float) -> tuple[int, bytes]:
        reusable = False
        try:
            with anyio.fail_after(max(deadline - time.monotonic(), 0.001)):
                await conn.stream.send(request)
                status, payload, reusable = await _read_response(conn)
        except TimeoutError as exc:
            raise WireTimeout("no answer within the deadline") from exc
        except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError) as exc:
            if not conn.answered:
                raise _StaleConnection from exc
            raise WireError(f"the connection failed mid-answer: {exc!r}") from exc
        except (OSError, anyio.ClosedResourceError) as exc:
            raise WireError(f"the connection failed: {exc!r}") from exc
        finally:
            if reusable and not self._closed and len(self._idle) < MAX_IDLE_CONNECTIONS:
                conn.idle_since = time.monotonic()
                conn.answered = False
                self._idle.append(conn)
            else:
                await _close(conn)
        return status, payload

    async def connect(self, budget_s: float) -> _Conn:
        """A connection of its own, never pooled (a stream's: wire_stream.py); raises WireConnectError.
        It is closed with the pool (`release` it when done): a rebind to another worker must end the
        streams of the one it leaves, or they would go on following it."""
        conn, _ = await self._acquire(budget_s, fresh=True)
        if self._closed:
            await _close(conn)
            raise WireConnectError("the connection to this worker was closed")
        self._streams[id(conn)] = conn
        return conn

    def release(self, conn: _Conn) -> None:
        self._streams.pop(id(conn), None)

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        streams, self._streams = list(self._streams.values()), {}
        for conn in idle + streams:
            await _close(conn)

    async def _acquire(self, budget_s: float, *, fresh: bool = False) -> tuple[_Conn, bool]:
        now = time.monotonic()
        while self._idle and not fresh:
            conn = self._idle.pop()
            if now - conn.idle_since < IDLE_S and conn.still_open():
                return conn, True
            await _close(conn)
        t = self.target
        try:
            with anyio.fail_after(budget_s):
                if t.uds is not None:
                    stream: ByteStream = await connect_unix(t.uds)
                elif t.tls:
                    stream = await anyio.connect_tcp(t.host, t.port, tls=True, tls_hostname=t.host)
                else:
                    stream = await connect_tcp(t.host, t.port)
        except (OSError, TimeoutError) as exc:
            raise WireConnectError(f"cannot connect to the worker: {exc!r}") from exc
        return _Conn(stream, bytearray(), now), False


async def _close(conn: _Conn) -> None:
    with anyio.CancelScope(shield=True):
        with suppress(OSError, anyio.BrokenResourceError):
            await conn.stream.aclose()


async def _fill(conn: _Conn) -> None:
    chunk = await conn.stream.receive()
    conn.answered = True
    conn.buffer += chunk


async def _read_response(conn: _Conn) -> tuple[int, bytes, bool]:
    """Status, body, and whether the connection may carry another request."""
    buf = conn.buffer
    while (end := buf.find(b"\r\n\r\n")) < 0:
        if len(buf) > MAX_HEAD:
            raise WireError("the answer's head is too large")
        await _fill(conn)
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    del buf[: end + 4]
    try:
        version, code = lines[0].split(" ", 2)[:2]
        status = int(code)
    except ValueError as exc:
        raise WireError(f"not an HTTP answer: {lines[0][:80]!r}") from exc
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    keep = version == "HTTP/1.1" and fields.get("connection", "").lower() != "close"
    if "chunked" in fields.get("transfer-encoding", "").lower():
        return status, await _read_chunked(conn), keep
    if "content-length" in fields:
        try:
            length = int(fields["content-length"])
        except ValueError as exc:
            raise WireError("a bad Content-Length") from exc
        if not 0 <= length <= MAX_BODY:
            raise WireError("the answer is too large")
        while len(buf) < length:
            await _fill(conn)
        body = bytes(buf[:length])
        del buf[:length]
        return status, body, keep
    # No length: the body runs to the end of the connection.
    try:
        while len(buf) <= MAX_BODY:
            await _fill(conn)
    except anyio.EndOfStream:
        body = bytes(buf)
        buf.clear()
        return status, body, False
    raise WireError("the answer is too large")


async def _read_chunked(conn: _Conn) -> bytes:
    buf, out = conn.buffer, bytearray()
    while True:
        while (eol := buf.find(b"\r\n")) < 0:
            await _fill(conn)
        try:
            size = int(bytes(buf[:eol]).split(b";")[0], 16)
        except ValueError as exc:
            raise WireError("a bad chunk size") from exc
        del buf[: eol + 2]
        if size == 0:
            while (end := buf.find(b"\r\n")) != 0:  # trailers, then the blank line
                if end < 0:
                    await _fill(conn)
                else:
                    del buf[: end + 2]
            del buf[:2]
            return bytes(out)
        while len(buf) < size + 2:
            await _fill(conn)
        out += buf[:size]
        if len(out) > MAX_BODY:
            raise WireError("the answer is too large")
        del buf[: size + 2]
