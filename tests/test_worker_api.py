"""The worker's HTTP API at its edges. Over its real Unix socket: a body larger than the limit is
refused with 413 as soon as that is known, never read to its end first (a declared Content-Length
beyond the limit before any of it arrives; a chunked body once it passes the limit). And a slow read
(years of bars) is answered TIMEOUT at its deadline while every other call is served meanwhile."""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from anyio.abc import SocketStream
from conftest import TOKEN, SessionFactory, make_worker, serve_worker

from qmt_mcp.clock import ManualClock
from qmt_mcp.config import Config
from qmt_mcp.worker.api import MAX_BODY

pytestmark = pytest.mark.anyio
HEAD = (f"POST /v1/health HTTP/1.1\r\nHost: worker\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Content-Type: application/json\r\n")


@pytest.fixture
async def worker_sock(clock: ManualClock, tmp_path: Path) -> AsyncIterator[Path]:
    worker = make_worker(Config(), tmp_path / "home", clock)
    sock = Path(tempfile.mkdtemp(prefix="qmt-api-")) / "w.sock"
    try:
        async with serve_worker(worker, sock):
            yield sock
    finally:
        await worker.close()


async def _answer(stream: SocketStream) -> tuple[int, dict[str, object]]:
    """Status and JSON body of one answer (Content-Length framed, as the worker sends)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += await stream.receive()
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(int(v) for k, _, v in (line.partition(": ") for line in lines[1:]) if k.lower() == "content-length")
    while len(rest) < length:
        rest += await stream.receive()
    return int(lines[0].split()[1]), json.loads(rest[:length])


async def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent(worker_sock: Path) -> None:
    with anyio.fail_after(10):
        async with await anyio.connect_unix(worker_sock) as stream:
            await stream.send(f"{HEAD}Content-Length: 1000000000\r\n\r\n{{".encode())
            status, body = await _answer(stream)   # the worker does not wait for a gigabyte first
    assert status == 413 and body["error"]["code"] == "INVALID_ARGUMENT"  # type: ignore[index]


async def test_a_chunked_body_is_read_only_until_it_passes_the_limit(worker_sock: Path) -> None:
    chunk = b"x" * 16384
    with anyio.fail_after(10):
        async with await anyio.connect_unix(worker_sock) as stream:
            await stream.send(f"{HEAD}Transfer-Encoding: chunked\r\n\r\n".encode())
            for _ in range(MAX_BODY // len(chunk) + 2):   # past the limit, and the body never ends
                await stream.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            status, body = await _answer(stream)
    assert status == 413 and body["error"]["code"] == "INVALID_ARGUMENT"  # type: ignore[index]


async def test_a_body_within_the_limit_is_still_answered(worker_sock: Path) -> None:
    payload = json.dumps({"pad": "x" * (MAX_BODY - 20)}).encode()
    assert len(payload) <= MAX_BODY
    with anyio.fail_after(10):
        async with await anyio.connect_unix(worker_sock) as stream:
            await stream.send(f"{HEAD}Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
            status, body = await _answer(stream)
    # Answered as a call (health takes no arguments, so it names the one it was sent), not a 413.
    assert status == 200 and body["ok"] is False and body["error"]["details"]["arguments"] == ["pad"]  # type: ignore[index]


async def test_a_long_read_past_its_deadline_is_a_timeout_while_other_calls_answer(
    session_with: SessionFactory,
) -> None:
    # Years of daily bars take the simulator seconds the first time; the deadline here is 50 ms.
    async with session_with(worker={"call_timeout_s": 0.05}) as s:
        with anyio.fail_after(30):
            err = await s.error("get_klines", code="600519.SH", period="1d", count=5000)
            assert err["code"] == "TIMEOUT" and err["retryable"] is True and err["state_changed"] == "no"
            # The read goes on in its own thread; the loop that serves everything else does not wait for it.
            assert (await s.ok("health"))["worker"]["state"] == "up"
            assert (await s.ok("get_quote", codes=["600519.SH"]))["quotes"][0]["code"] == "600519.SH"


async def _exchange(
    sock: Path, method: str, path: str, body: bytes = b"{}", token: str = TOKEN,
) -> tuple[int, dict[str, object]]:
    async with await anyio.connect_unix(sock) as stream:
        await stream.send(f"{method} {path} HTTP/1.1\r\nHost: worker\r\nAuthorization: Bearer {token}\r\n"
                          f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        return await _answer(stream)


async def test_every_answer_at_the_edges_is_an_envelope_whichever_path_serves_it(worker_sock: Path) -> None:
    """A call (POST /v1/<call>) is answered in plain ASGI, anything else by Starlette's routes: both
    answer in the contract's envelope, with the status that says what went wrong."""
    with anyio.fail_after(20):
        ok = await _exchange(worker_sock, "POST", "/v1/health")
        unknown = await _exchange(worker_sock, "POST", "/v1/no_such_call")
        wrong_token = await _exchange(worker_sock, "POST", "/v1/health", token="not-the-token")
        not_json = await _exchange(worker_sock, "POST", "/v1/health", body=b"[1, 2]")
        bad_args = await _exchange(worker_sock, "POST", "/v1/get_quote", body=b'{"codes": "600000.SH"}')
        wrong_method = await _exchange(worker_sock, "GET", "/v1/health")
        nested = await _exchange(worker_sock, "POST", "/v1/health/more")
    assert ok[0] == 200 and ok[1]["ok"] is True
    assert bad_args[0] == 200 and bad_args[1]["error"]["code"] == "INVALID_ARGUMENT"  # type: ignore[index]
    for (status, body), expected in ((unknown, 404), (wrong_token, 401), (not_json, 400), (wrong_method, 405),
                                     (nested, 404)):
        assert status == expected and body["ok"] is False, (expected, body)
        assert body["error"]["code"] in ("INVALID_ARGUMENT", "UNAUTHORIZED")  # type: ignore[index]
