"""The quote stream's reader (server/wire_stream.py) against a real socket whose peer splits its
answer anywhere: each chunk's bytes come out whole and in order, whatever the receives; a body without
chunking runs to the close; a silent stream times out; a dead end is a WireError the hub reconnects on."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from anyio.abc import SocketStream

from qmt_mcp.server.wire import WireConnectError, WireError, WirePool, WireTimeout
from qmt_mcp.server.wire_stream import get_stream
from qmt_mcp.sse import sse_events

pytestmark = [pytest.mark.anyio, pytest.mark.skipif(sys.platform == "win32", reason="Unix socket")]
Peer = Callable[[SocketStream, bytes], Awaitable[None]]


@asynccontextmanager
async def serving(path: Path, peer: Peer) -> AsyncIterator[WirePool]:
    """A Unix socket at `path` whose every connection gets its request head read, then `peer`."""
    listener = await anyio.create_unix_listener(path)

    async def one(conn: SocketStream) -> None:
        async with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                head += await conn.receive()
            await peer(conn, head)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, one)
        yield WirePool(str(path), None)
        tg.cancel_scope.cancel()


def frame(n: int) -> bytes:
    return f'event: quote\ndata: {{"code": "600000.SH", "seq": {n}}}\n\n'.encode()


async def test_chunks_split_anywhere_come_out_whole_and_in_order(tmp_path: Path) -> None:
    frames = [frame(n) for n in range(1, 6)]
    body = b"".join(f"{len(f):x}\r\n".encode() + f + b"\r\n" for f in frames) + b"0\r\n\r\n"
    wire = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n" + body
    seen: list[bytes] = []

    async def peer(conn: SocketStream, head: bytes) -> None:
        seen.append(head)
        for i in range(0, len(wire), 7):   # 7 bytes a send: size lines, payloads and CRLFs all cut
            await conn.send(wire[i:i + 7])
            await anyio.wait_all_tasks_blocked()   # each piece is its own receive on the other side

    async with serving(tmp_path / "s.sock", peer) as pool, \
            get_stream(pool, "/v1/quotes", {"watcher": "w1"}, {"Authorization": "Bearer t"},
                       connect_s=5, read_s=5) as (status, chunks):
        parts = [part async for part in chunks]
    assert status == 200
    assert parts == frames   # one per chunk the peer sent, not per receive
    assert seen[0].startswith(b"GET /v1/quotes?watcher=w1 HTTP/1.1\r\n")
    assert b"\r\nAuthorization: Bearer t\r\n" in seen[0]


async def test_a_body_without_chunking_runs_to_the_close_and_parses_as_frames(tmp_path: Path) -> None:
    async def peer(conn: SocketStream, head: bytes) -> None:
        await conn.send(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n" + frame(1)[:9])
        await anyio.wait_all_tasks_blocked()
        await conn.send(frame(1)[9:] + frame(2))

    async with serving(tmp_path / "s.sock", peer) as pool, \
            get_stream(pool, "/v1/quotes", {"watcher": "w"}, {}, connect_s=5, read_s=5) as (status, chunks):
        got = [(kind, data) async for kind, data in sse_events(chunks)]
    assert status == 200
    assert got == [("quote", '{"code": "600000.SH", "seq": 1}'), ("quote", '{"code": "600000.SH", "seq": 2}')]


async def test_a_refusal_a_silent_stream_and_a_cut_one_are_told_apart(tmp_path: Path) -> None:
    async def refuse(conn: SocketStream, head: bytes) -> None:
        await conn.send(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 2\r\n\r\n{}")

    async with serving(tmp_path / "a.sock", refuse) as pool, \
            get_stream(pool, "/v1/quotes", {"watcher": "w"}, {}, connect_s=5, read_s=5) as (status, chunks):
        assert status == 401 and [p async for p in chunks] == [b"{}"]

    async def silent(conn: SocketStream, head: bytes) -> None:
        await conn.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        await anyio.sleep_forever()

    async with serving(tmp_path / "b.sock", silent) as pool, \
            get_stream(pool, "/v1/quotes", {"watcher": "w"}, {}, connect_s=5, read_s=0.05) as (_, chunks):
        with pytest.raises(WireTimeout):
            await chunks.__anext__()

    async def cut(conn: SocketStream, head: bytes) -> None:
        await conn.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n20\r\nevent: quo")

    async with serving(tmp_path / "c.sock", cut) as pool, \
            get_stream(pool, "/v1/quotes", {"watcher": "w"}, {}, connect_s=5, read_s=5) as (_, chunks):
        with pytest.raises(WireError):
            await chunks.__anext__()

    with pytest.raises(WireConnectError):   # nothing listens: nothing was sent
        async with get_stream(WirePool(str(tmp_path / "none.sock"), None), "/v1/quotes", {}, {},
                              connect_s=5, read_s=5):
            pass
