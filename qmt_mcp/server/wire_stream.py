"""A GET whose answer is a stream (the worker's event and quote streams), read straight off the wire's
connection.

Every quote a subscriber gets, and every order event, crosses this read. Through httpx each chunk
climbed seven layers of async iterators (httpx, httpcore's pool and connection, h11) before the
reader saw it: a few µs when warm, but a quote arrives alone after the process has idled for half
a second, when that much cold code cost ~0.5 ms of each notification's path. Here a chunk is one
receive and a slice.

It speaks what the worker answers (chunked), and Content-Length or read-to-close for a proxy between.
The connection is the wire's own kind (wire.py: Unix socket, TCP or TLS) but never pooled: the stream
holds it until it ends. Failures raise WireError (WireConnectError: nothing was sent); a receive that
waits longer than `read_s` raises WireTimeout.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlencode

import anyio

from .wire import MAX_HEAD, WireError, WirePool, WireTimeout, _close, _Conn

CHUNK_MAX = 16 * 1024 * 1024   # one chunk this large is no quote frame: the stream is out of step


@asynccontextmanager
async def get_stream(pool: WirePool, path: str, params: dict[str, str], headers: dict[str, str], *,
                     connect_s: float, read_s: float) -> AsyncIterator[tuple[int, AsyncIterator[bytes]]]:
    """(status, the body's bytes as they come) of GET `path`?`params`; the connection closes with the block."""
    t = pool.target
    head = [f"GET {t.base_path}{path}?{urlencode(params)} HTTP/1.1", f"Host: {t.host_header}",
            "Accept: text/event-stream"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    conn = await pool.connect(connect_s)
    try:
        try:
            with anyio.fail_after(connect_s):
                await conn.stream.send(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
                status, fields = await _read_head(conn)
        except TimeoutError as exc:
            raise WireTimeout("no answer head within the deadline") from exc
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise WireError(f"the stream's connection failed: {exc!r}") from exc
        yield status, _body(conn, fields, read_s)
    finally:
        pool.release(conn)
        await _close(conn)


async def _read_head(conn: _Conn) -> tuple[int, dict[str, str]]:
    buf = conn.buffer
    while (end := buf.find(b"\r\n\r\n")) < 0:
        if len(buf) > MAX_HEAD:
            raise WireError("the answer's head is too large")
        buf += await conn.stream.receive()
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    del buf[: end + 4]
    try:
        status = int(lines[0].split(" ", 2)[1])
    except (ValueError, IndexError) as exc:
        raise WireError(f"not an HTTP answer: {lines[0][:80]!r}") from exc
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return status, fields


async def _body(conn: _Conn, fields: dict[str, str], read_s: float) -> AsyncIterator[bytes]:
    try:
        if "chunked" in fields.get("transfer-encoding", "").lower():
            async for part in _chunks(conn, read_s):
                yield part
            return
        left = int(fields["content-length"]) if "content-length" in fields else -1   # -1: to the close
        if conn.buffer:   # what came with the head
            part = bytes(conn.buffer if left < 0 else conn.buffer[:left])
            conn.buffer.clear()
            left -= len(part) if left > 0 else 0
            yield part
        while left != 0:
            try:
                part = await _receive(conn, read_s)
            except anyio.EndOfStream:
                if left < 0:
                    return   # read-to-close: the end of the connection is the end of the body
                raise
            if left > 0:
                part = part[:left]
                left -= len(part)
            yield part
    except ValueError as exc:
        raise WireError("a bad Content-Length") from exc
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
        raise WireError(f"the stream ended mid-answer: {exc!r}") from exc


async def _chunks(conn: _Conn, read_s: float) -> AsyncIterator[bytes]:
    buf = conn.buffer
    while True:
        while (eol := buf.find(b"\r\n")) < 0:
            if len(buf) > MAX_HEAD:
                raise WireError("a bad chunk size line")
            buf += await _receive(conn, read_s)
        try:
            size = int(bytes(buf[:eol]).split(b";")[0], 16)
        except ValueError as exc:
            raise WireError("a bad chunk size") from exc
        if not 0 <= size <= CHUNK_MAX:
            raise WireError("a chunk too large for this stream")
        del buf[: eol + 2]
        if size == 0:
            return   # the last chunk: the stream is over (trailers are not read; the connection closes)
        while len(buf) < size + 2:
            buf += await _receive(conn, read_s)
        part = bytes(buf[:size])
        del buf[: size + 2]
        yield part


async def _receive(conn: _Conn, read_s: float) -> bytes:
    try:
        with anyio.fail_after(read_s):
            return await conn.stream.receive()
    except TimeoutError as exc:
        raise WireTimeout(f"nothing on the stream for {read_s:g} s") from exc
