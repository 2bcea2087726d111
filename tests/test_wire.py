"""The lean HTTP/1.1 client for worker calls, against a raw socket server that answers as told."""

from __future__ import annotations

import asyncio
import socket
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import SocketAttribute, SocketStream

from qmt_mcp.server.wire import WireConnectError, WireError, WirePool, WireTimeout
from qmt_mcp.server.wire_socket import HIGH_WATER, connect_unix

pytestmark = pytest.mark.anyio
Answer = Callable[[int], bytes | None]  # request number -> raw answer, or None to close without one


def _json(body: bytes, extra: str = "") -> bytes:
    head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{extra}content-length: {len(body)}\r\n\r\n"
    return head.encode() + body


class RawServer:
    def __init__(self, answer: Answer, close_after_each: bool = False) -> None:
        self.answer = answer
        self.close_after_each = close_after_each
        self.connections = 0
        self.open = 0
        self.requests: list[bytes] = []
        self.hang = anyio.Event()
        self.all_closed = anyio.Event()

    async def handle(self, stream: SocketStream) -> None:
        self.connections += 1
        self.open += 1
        try:
            await self._serve(stream)
        finally:
            self.open -= 1
            if self.open == 0:
                self.all_closed.set()
                self.all_closed = anyio.Event()

    async def _serve(self, stream: SocketStream) -> None:
        buf = b""
        async with stream:
            while True:
                while b"\r\n\r\n" not in buf:
                    try:
                        buf += await stream.receive()
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        return
                head, _, rest = buf.partition(b"\r\n\r\n")
                length = int(next(v for k, _, v in (line.partition(b":") for line in head.split(b"\r\n"))
                                  if k.lower() == b"content-length"))
                while len(rest) < length:
                    rest += await stream.receive()
                self.requests.append(rest[:length])
                buf = rest[length:]
                out = self.answer(len(self.requests))
                if out is None:
                    return
                if out == b"hang":
                    await self.hang.wait()
                    return
                await stream.send(out)
                if self.close_after_each:
                    return


@asynccontextmanager
async def raw_server(
    answer: Answer, close_after_each: bool = False, tcp: bool = False,
) -> AsyncIterator[tuple[RawServer, str]]:
    """The server and where it listens: a Unix socket's path, or with `tcp` a loopback worker.url."""
    srv = RawServer(answer, close_after_each)
    if tcp:
        listener: Any = await anyio.create_tcp_listener(local_host="127.0.0.1")
        where = f"http://127.0.0.1:{listener.extra(SocketAttribute.local_port)}"  # noqa: S610 (anyio)
    else:
        where = str(Path(tempfile.mkdtemp(prefix="qmt-wire-")) / "s.sock")
        listener = await anyio.create_unix_listener(where)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, srv.handle)
        try:
            yield srv, where
        finally:
            # Let every connection end by itself (the client closed it) before stopping the accept
            # loop: cancelling a read that EOF is completing trips asyncio.
            srv.hang.set()
            with anyio.move_on_after(5):
                while srv.open:
                    await srv.all_closed.wait()
            tg.cancel_scope.cancel()


async def test_a_kept_alive_connection_carries_many_calls() -> None:
    async with raw_server(lambda n: _json(b'{"n": %d}' % n)) as (srv, sock):
        pool = WirePool(sock, None)
        for i in range(1, 6):
            status, body = await pool.post("/v1/x", b"{}", {}, 5)
            assert (status, body) == (200, b'{"n": %d}' % i)
        assert srv.connections == 1
        await pool.aclose()


async def test_a_read_on_a_connection_the_worker_closed_is_sent_again_once() -> None:
    # The worker closes a kept-alive connection just as the second call is written on it (the race
    # a keep-alive timeout causes): a read goes again, once, on a fresh connection.
    async with raw_server(lambda n: None if n == 2 else _json(b'{"n": %d}' % n)) as (srv, sock):
        pool = WirePool(sock, None)
        assert await pool.post("/v1/health", b"{}", {}, 5) == (200, b'{"n": 1}')
        assert await pool.post("/v1/health", b"{}", {}, 5, retry_safe=True) == (200, b'{"n": 3}')
        assert srv.connections == 2
        await pool.aclose()


async def test_an_idle_connection_found_closed_is_not_used() -> None:
    async with raw_server(lambda n: _json(b"{}"), close_after_each=True) as (srv, sock):
        pool = WirePool(sock, None)
        assert (await pool.post("/v1/place_order", b"{}", {}, 5))[0] == 200
        while srv.open:  # the server has hung up
            await srv.all_closed.wait()
        assert (await pool.post("/v1/place_order", b"{}", {}, 5))[0] == 200
        assert srv.connections == 2 and len(srv.requests) == 2
        await pool.aclose()


async def test_a_state_changing_call_is_never_sent_twice() -> None:
    # The first answer comes, then the connection dies before answering the second request.
    async with raw_server(lambda n: _json(b"{}") if n == 1 else None) as (srv, sock):
        pool = WirePool(sock, None)
        await pool.post("/v1/place_order", b"{}", {}, 5)
        with pytest.raises(WireError) as err:
            await pool.post("/v1/place_order", b'{"x": 1}', {}, 5, retry_safe=False)
        assert not isinstance(err.value, WireConnectError)  # it may have arrived: not "nothing sent"
        assert srv.requests.count(b'{"x": 1}') == 1
        await pool.aclose()


async def test_chunked_and_read_to_close_answers_are_understood() -> None:
    chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n: 1\r\n1\r\n}\r\n0\r\n\r\n"
    to_close = b"HTTP/1.0 200 OK\r\n\r\n{\"b\": 2}"
    async with raw_server(lambda n: chunked if n == 1 else _json(b"{}")) as (_, sock):
        pool = WirePool(sock, None)
        assert await pool.post("/v1/x", b"{}", {}, 5) == (200, b'{"a": 1}')
        assert await pool.post("/v1/x", b"{}", {}, 5) == (200, b"{}")  # same connection, still in step
        await pool.aclose()
    async with raw_server(lambda n: to_close, close_after_each=True) as (_, sock):
        pool = WirePool(sock, None)
        assert await pool.post("/v1/x", b"{}", {}, 5) == (200, b'{"b": 2}')
        await pool.aclose()


async def test_no_answer_in_time_is_a_timeout_and_the_connection_is_dropped() -> None:
    async with raw_server(lambda n: b"hang" if n == 1 else _json(b"{}")) as (srv, sock):
        pool = WirePool(sock, None)
        with pytest.raises(WireTimeout):
            await pool.post("/v1/x", b"{}", {}, 0.2)
        assert await pool.post("/v1/x", b"{}", {}, 5) == (200, b"{}")
        assert srv.connections == 2  # the late answer can never be read as the next call's
        await pool.aclose()


async def test_no_worker_is_a_connect_error(tmp_path: Path) -> None:
    pool = WirePool(str(tmp_path / "nobody.sock"), None)
    with pytest.raises(WireConnectError):
        await pool.post("/v1/x", b"{}", {}, 1)
    with pytest.raises(ValueError, match=r"worker\.url"):
        WirePool(None, "ftp://example")


async def test_garbage_instead_of_http_is_a_wire_error() -> None:
    async with raw_server(lambda n: b"SSH-2.0-OpenSSH\r\n\r\n", close_after_each=True) as (_, sock):
        pool = WirePool(sock, None)
        with pytest.raises(WireError, match="not an HTTP answer"):
            await pool.post("/v1/x", b"{}", {}, 5)
        await pool.aclose()


async def test_over_tcp_calls_share_a_connection_and_a_closed_one_is_left() -> None:
    async with raw_server(lambda n: _json(b'{"n": %d}' % n), tcp=True) as (srv, url):
        pool = WirePool(None, url)
        for i in range(1, 4):
            assert await pool.post("/v1/x", b"{}", {}, 5) == (200, b'{"n": %d}' % i)
        assert srv.connections == 1
        await pool.aclose()
    async with raw_server(lambda n: _json(b"{}"), close_after_each=True, tcp=True) as (srv, url):
        pool = WirePool(None, url)
        assert (await pool.post("/v1/x", b"{}", {}, 5))[0] == 200
        while srv.open:  # the server has hung up
            await srv.all_closed.wait()
        assert (await pool.post("/v1/x", b"{}", {}, 5))[0] == 200
        assert srv.connections == 2
        await pool.aclose()


async def test_an_answer_larger_than_the_read_buffer_arrives_whole() -> None:
    # Past the stream's high-water mark its transport stops reading until the reader catches up.
    big = b'{"pad": "' + b"x" * (3 * HIGH_WATER) + b'"}'
    async with raw_server(lambda n: _json(big)) as (_, sock):
        pool = WirePool(sock, None)
        for _ in range(2):
            assert await pool.post("/v1/x", b"{}", {}, 10) == (200, big)
        await pool.aclose()


async def test_a_tcp_worker_is_reached_on_the_hosts_other_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """`localhost` may resolve to ::1 first while the worker listens on 127.0.0.1 only: each address is
    tried in turn, as anyio's connect does."""
    async with raw_server(lambda n: _json(b"{}"), tcp=True) as (_, url):
        port = int(url.rsplit(":", 1)[1])
        loop = asyncio.get_running_loop()

        async def both(host: str, port: int, **kw: Any) -> list[Any]:
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

        monkeypatch.setattr(loop, "getaddrinfo", both)
        pool = WirePool(None, f"http://localhost:{port}")
        assert await pool.post("/v1/x", b"{}", {}, 5) == (200, b"{}")
        await pool.aclose()


async def test_a_stream_read_takes_at_most_what_it_asks_for() -> None:
    async with raw_server(lambda n: _json(b'{"abc": 1}')) as (_, sock):
        stream = await connect_unix(sock)
        await stream.send(b"POST /v1/x HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
        first = await stream.receive(4)
        rest = b""
        while not rest.endswith(b'{"abc": 1}'):
            rest += await stream.receive()
        await stream.aclose()
    assert first == b"HTTP" and rest.startswith(b"/1.1 200 OK")
