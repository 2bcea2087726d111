"""The worker's HTTP protocol (worker/call_protocol.py) over a real Unix socket under uvicorn: a
plain call is answered without h11, in order with what follows it on the connection, however its
bytes are split; everything else is h11's, with h11's answers; an app that fails answers 500 and
closes; a shutdown lets the answer under way finish."""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
import uvicorn
from anyio.abc import SocketStream
from conftest import TOKEN, make_worker
from uvicorn.protocols.http.h11_impl import H11Protocol

from qmt_mcp.clock import ManualClock
from qmt_mcp.config import Config
from qmt_mcp.worker.api import MAX_BODY
from qmt_mcp.worker.call_protocol import CallRequest, _NotOurs, parse_call

pytestmark = pytest.mark.anyio


def call(path: str = "/v1/health", body: bytes = b"{}", extra: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: worker\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\n{extra}Content-Length: {len(body)}\r\n\r\n").encode() + body


class Reader:
    """Answers off one connection, Content-Length framed (every answer here has one)."""

    def __init__(self, stream: SocketStream) -> None:
        self.stream, self.buf = stream, b""

    async def answer(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buf:
            self.buf += await self.stream.receive()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers["content-length"])
        while len(self.buf) < length:
            self.buf += await self.stream.receive()
        body, self.buf = self.buf[:length], self.buf[length:]
        return int(lines[0].split()[1]), headers, body

    async def closed(self) -> bool:
        try:
            extra = await self.stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return True
        raise AssertionError(f"more bytes after the answer: {extra!r}")


@asynccontextmanager
async def serving(app: Any, **config: Any) -> AsyncIterator[tuple[Path, uvicorn.Server]]:
    from qmt_mcp.worker.call_protocol import CallProtocol

    sock = Path(tempfile.mkdtemp(prefix="qmt-proto-")) / "w.sock"
    server = uvicorn.Server(uvicorn.Config(app, uds=str(sock), http=CallProtocol, log_level="warning",
                                           lifespan="off", **config))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        for _ in range(1000):   # uvicorn says it has started by a flag, not an event
            if server.started:
                break
            await anyio.sleep(0.01)
        _SERVERS[sock] = server
        try:
            yield sock, server
        finally:
            _SERVERS.pop(sock, None)
            server.should_exit = True


@pytest.fixture
async def worker_sock(clock: ManualClock, tmp_path: Path) -> AsyncIterator[Path]:
    worker = make_worker(Config(), tmp_path / "home", clock)
    try:
        async with serving(worker.app(TOKEN, background=False)) as (sock, _):
            yield sock
    finally:
        await worker.close()


@pytest.fixture
def h11_events(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per time h11 was asked for events (it parses every request it is handed)."""
    seen: list[int] = []
    original = H11Protocol.handle_events

    def counted(self: H11Protocol) -> None:
        seen.append(1)
        original(self)

    monkeypatch.setattr(H11Protocol, "handle_events", counted)
    return seen


# ----- the parser

def test_a_plain_call_is_parsed_with_its_headers_body_and_size() -> None:
    raw = call(body=b'{"a": 1}', extra="Connection: keep-alive, close\r\n")
    req = parse_call(raw + b"POST /v1/next")
    assert isinstance(req, CallRequest)
    assert (req.path, req.body, req.close, req.size) == ("/v1/health", b'{"a": 1}', True, len(raw))
    assert (b"authorization", f"Bearer {TOKEN}".encode()) in req.headers


def test_a_call_not_yet_whole_waits_for_more() -> None:
    raw = call(body=b'{"a": 1}')
    assert all(parse_call(raw[:n]) is None for n in range(len(raw)))


@pytest.mark.parametrize("raw", [
    b"GET /v1/events HTTP/1.1\r\n\r\n",
    b"PUT /v1/health HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    b"POST /v2/health HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    b"POST /v1/health HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
    b"POST /v1/health?x=1 HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    b"POST /v1/he%6Cth HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    b"POST /v1/health HTTP/1.1\r\n\r\n",                                        # no length
    b"POST /v1/health HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
    b"POST /v1/health HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"POST /v1/health HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST /v1/health HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
    b"POST /v1/health HTTP/1.1\r\nContent-Length: 0\r\n folded\r\n\r\n",
    b"POST /v1/health HTTP/1.1\r\nno colon\r\nContent-Length: 0\r\n\r\n",
    b"POST /v1/health HTTP/1.1\r\nContent-Length : 0\r\n\r\n",
    b"POST /v1/health HTTP/1.1\r\nHost: w\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1),
    b"POST /v1/health HTTP/1.1\r\nHost: w\r\nContent-Length: " + b"1" * 5000 + b"\r\n\r\n",  # int() limit
    b"POST /v1/" + b"x" * 17000,                                                # a head without end
    # What h11 reads differently must be h11's: it takes a bare LF (or CR) as a line end.
    b"POST /v1/health HTTP/1.1\r\nHost: w\nContent-Length: 2\n\n{}",
    b"POST /v1/a HTTP/1.1\r\nHost: w\r\nX: y\n\nPOST /v1/b HTTP/1.1\r\nHost: w\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /v1/health HTTP/1.1\r\nHost: w\rX: y\r\nContent-Length: 0\r\n\r\n",
    b"POST /v1/health HTTP/1.1\r\nContent-Length: 0\r\n\r\n",                    # no Host
    b"POST /v1/health HTTP/1.1\r\nHost: w\r\nX: a\x01b\r\nContent-Length: 0\r\n\r\n",  # a control byte
    b"POST /v1/health HTTP/1.1\r\nHost: w\r\nX Y: z\r\nContent-Length: 0\r\n\r\n",     # not a token
])
def test_anything_else_is_left_to_h11(raw: bytes) -> None:
    with pytest.raises(_NotOurs):
        parse_call(raw)


# ----- over the socket, with the worker's app

async def test_a_call_is_answered_without_h11(worker_sock: Path, h11_events: list[int]) -> None:
    with anyio.fail_after(10):
        async with await anyio.connect_unix(worker_sock) as stream:
            await stream.send(call())
            status, headers, body = await Reader(stream).answer()
    assert status == 200 and json.loads(body)["ok"] is True
    assert headers["content-type"] == "application/json"
    assert h11_events == []


async def test_calls_sent_together_are_answered_in_order(worker_sock: Path, h11_events: list[int]) -> None:
    bad = call("/v1/get_quote", b'{"codes": "600000.SH"}')
    with anyio.fail_after(10):
        async with await anyio.connect_unix(worker_sock) as stream:
            await stream.send(call() + bad + call("/v1/no_such_call"))
            reader = Reader(stream)
            answers = [await reader.answer() for _ in range(3)]
    assert [a[0] for a in answers] == [200, 200, 404]
    assert json.loads(answers[0][2])["ok"] is True
    assert json.loads(answers[1][2])["error"]["code"] == "INVALID_ARGUMENT"
    assert h11_events == []


async def test_a_call_sent_a_few_bytes_at_a_time_is_answered(worker_sock: Path) -> None:
    raw = call("/v1/get_quote", b'{"codes": ["600000.SH"]}')
    with anyio.fail_after(10):
        async with await anyio.connect_unix(worker_sock) as stream:
            for i in range(0, len(raw), 7):
                await stream.send(raw[i:i + 7])
            status, _, body = await Reader(stream).answer()
    assert status == 200 and json.loads(body)["quotes"][0]["code"] == "600000.SH"


async def test_h11_and_calls_take_turns_on_one_connection(worker_sock: Path, h11_events: list[int]) -> None:
    wrong_method = (f"GET /v1/health HTTP/1.1\r\nHost: worker\r\nAuthorization: Bearer {TOKEN}\r\n\r\n").encode()
    with anyio.fail_after(10):
        async with await anyio.connect_unix(worker_sock) as stream:
            reader = Reader(stream)
            await stream.send(call())
            first = await reader.answer()
            await stream.send(wrong_method)
            second = await reader.answer()
            await stream.send(call())
            third = await reader.answer()
    assert [first[0], second[0], third[0]] == [200, 405, 200]
    assert json.loads(second[2])["error"]["code"] == "INVALID_ARGUMENT"
    assert h11_events   # the GET went to h11, and the call after it did not stay there


async def test_a_malformed_head_gets_h11s_400(worker_sock: Path) -> None:
    with anyio.fail_after(10):
        async with await anyio.connect_unix(worker_sock) as stream:
            await stream.send(b"POST /v1/health HTTP/1.1\r\nContent-Length: 1x\r\n\r\n")
            raw = b""
            with pytest.raises(anyio.EndOfStream):   # h11's 400 is framed by closing the connection
                while True:
                    raw += await stream.receive()
    assert raw.startswith(b"HTTP/1.1 400 ") and raw.endswith(b"Invalid HTTP request received.")


async def test_a_call_that_asks_to_close_is_closed_after_its_answer(worker_sock: Path) -> None:
    with anyio.fail_after(10):
        async with await anyio.connect_unix(worker_sock) as stream:
            await stream.send(call(extra="Connection: close\r\n") + call())
            reader = Reader(stream)
            status, headers, _ = await reader.answer()
            assert status == 200 and headers["connection"] == "close"
            assert await reader.closed()


# ----- over the socket, with apps that misbehave or wait

async def test_an_app_that_fails_answers_500_and_closes() -> None:
    async def failing(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    async with serving(failing) as (sock, _):
        with anyio.fail_after(10):
            async with await anyio.connect_unix(sock) as stream:
                await stream.send(call())
                reader = Reader(stream)
                status, _, body = await reader.answer()
                assert status == 500 and body == b"Internal Server Error"
                assert await reader.closed()


async def test_a_shutdown_lets_the_answer_under_way_finish() -> None:
    started, release = anyio.Event(), anyio.Event()

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        started.set()
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": message["body"], "more_body": True})
        await send({"type": "http.response.body", "body": b"!"})

    async with serving(slow) as (sock, server):
        with anyio.fail_after(10):
            async with await anyio.connect_unix(sock) as stream:
                await stream.send(call(body=b"late"))
                await started.wait()
                server.should_exit = True   # uvicorn asks every connection to shut down, on its next tick
                for _ in range(1000):
                    if any(getattr(c, "_closing", False) for c in server.server_state.connections):
                        break
                    await anyio.sleep(0.01)
                release.set()
                reader = Reader(stream)
                status, headers, body = await reader.answer()
                assert (status, body, headers["content-length"]) == (200, b"late!", "5")
                assert await reader.closed()


async def test_a_stream_after_a_call_is_not_cut_by_the_keep_alive_timer(worker_sock: Path) -> None:
    """A GET of the event stream sent right behind a call goes to h11 once the call is answered; the
    call's end must not arm the idle timer on a connection h11 is now serving (it would close the
    stream mid-way)."""
    get = f"GET /v1/events HTTP/1.1\r\nHost: worker\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode()
    with anyio.fail_after(10):
        async with await anyio.connect_unix(worker_sock) as stream:
            await stream.send(call() + get)
            reader = Reader(stream)
            status, _, _ = await reader.answer()
            while b"event: hello" not in reader.buf:   # the stream has started: h11 is serving it
                reader.buf += await stream.receive()
            protocols = list(_connections(worker_sock))
    assert status == 200 and protocols
    assert all(p.timeout_keep_alive_task is None for p in protocols)


async def test_after_an_answer_a_half_sent_request_still_times_out(worker_sock: Path) -> None:
    """As under h11, the idle timer runs after an answer even when the start of another request came
    with it; only more bytes of that request stop it."""
    with anyio.fail_after(10):
        async with await anyio.connect_unix(worker_sock) as stream:
            await stream.send(call() + b"POST /v1/health HTTP/1.1\r\nHo")
            await Reader(stream).answer()
            for _ in range(1000):   # the timer is armed right after the answer is written
                protocols = list(_connections(worker_sock))
                if protocols and all(p.timeout_keep_alive_task is not None for p in protocols):
                    break
                await anyio.sleep(0.01)
            else:
                raise AssertionError("no idle timer after the answer")


_SERVERS: dict[Path, uvicorn.Server] = {}


def _connections(sock: Path) -> Any:
    return _SERVERS[sock].server_state.connections
