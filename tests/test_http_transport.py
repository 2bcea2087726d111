"""`qmt-mcp serve` over streamable HTTP and SSE: bearer auth (401), Host (421) and Origin (403)
checks, refusal to start on a non-loopback host without a token, and 20 concurrent clients placing
and cancelling orders with no errors and no cross-talk."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

TOKEN = "http-test-token"
ROOT = Path(__file__).resolve().parents[1]
BUSY = "[risk]\nmax_orders_per_minute = 1000\nmax_daily_orders = 1000\nmax_daily_turnover = 100000000\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(
    tmp: Path, transport: str, token: str | None = TOKEN, host: str = "127.0.0.1", extra_config: str = "",
    stderr: Path | None = None, max_files: int | None = None,
) -> tuple[subprocess.Popen[bytes], int]:
    """The server as a process of its own; `stderr` collects its log, `max_files` is its fd limit."""
    port = _free_port()
    (tmp / "config.toml").write_text(BUSY + extra_config)
    env = {**os.environ, "QMT_MCP_HOME": str(tmp)}
    env.pop("QMT_MCP_CONFIG", None)
    env.pop("QMT_MCP_TOKEN", None)
    if token is not None:
        env["QMT_MCP_TOKEN"] = token
    cmd = [sys.executable, "-m", "qmt_mcp", "serve", "--transport", transport, "--port", str(port), "--host", host]
    if max_files is not None:
        cmd = ["sh", "-c", f'ulimit -n {max_files} && exec "$@"', "sh", *cmd]
    log = stderr.open("wb") if stderr is not None else None
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
    if log is not None:
        log.close()   # the child has its own copy
    for _ in range(300):  # bounded: ~30 s
        try:
            with socket.create_connection((host, port), timeout=0.1):
                return proc, port
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}") from None
            import time

            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not listen")


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[int]:
    proc, port = _start(tmp_path, "streamable-http")
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@asynccontextmanager
async def _client(port: int, token: str = TOKEN) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60)
    async with http, Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)) as c:
        yield c


async def _call(c: Client, tool: str, **args: Any) -> dict[str, Any]:
    res = await c.call_tool(tool, args)
    assert res.structured_content is not None
    return res.structured_content


@pytest.mark.anyio
async def test_authorized_http_client_trades_and_its_subscription_sees_the_fill(http_server: int) -> None:
    with anyio.fail_after(60):
        async with _client(http_server) as c:
            assert len((await c.list_tools()).tools) == 25
            q = (await _call(c, "get_quote", codes=["600000.SH"]))["quotes"][0]
            async with c.listen(resource_subscriptions=["qmt://accounts/sim/positions"]) as sub:
                placed = await _call(c, "place_order", account="sim", code="600000.SH", side="buy", volume=100,
                                     price=q["ask_prices"][0], client_order_id="http-1")
                assert placed["order"]["status"] == "succeeded"
                async for event in sub:
                    assert str(event.uri) == "qmt://accounts/sim/positions"  # type: ignore[union-attr]
                    break
            body = (await c.read_resource("qmt://accounts/sim/positions")).contents[0].text  # type: ignore[union-attr]
            assert json.loads(body)["positions"][0]["volume"] == 100


@pytest.mark.anyio
@pytest.mark.parametrize(("headers", "status"), [
    ({}, 401),
    ({"Authorization": "Bearer wrong"}, 401),
    ({"Authorization": f"Bearer {TOKEN}", "Host": "evil.example:80"}, 421),
    ({"Authorization": f"Bearer {TOKEN}", "Origin": "http://evil.example"}, 403),
])
async def test_http_requests_without_token_or_from_foreign_host_or_origin_are_refused(
    http_server: int, headers: dict[str, str], status: int,
) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_server}") as http:
        r = await http.post("/mcp", json=body, headers={"Accept": "application/json, text/event-stream", **headers})
    assert r.status_code == status


def test_server_refuses_to_listen_beyond_loopback_without_a_token(tmp_path: Path) -> None:
    env = {**os.environ, "QMT_MCP_HOME": str(tmp_path)}
    env.pop("QMT_MCP_TOKEN", None)
    res = subprocess.run([sys.executable, "-m", "qmt_mcp", "serve", "--transport", "streamable-http",
                          "--host", "0.0.0.0", "--port", str(_free_port())], env=env, capture_output=True,  # noqa: S104 - refused before any bind
                         text=True, timeout=60, check=False)
    assert res.returncode == 2 and "without a bearer token" in res.stderr


@pytest.mark.anyio
async def test_twenty_concurrent_http_clients_place_and_cancel_without_errors_or_cross_talk(http_server: int) -> None:
    errors: list[str] = []
    seen: dict[int, list[int]] = {}

    async def trader(n: int) -> None:
        async with _client(http_server) as c:
            q = (await _call(c, "get_quote", codes=["600000.SH"]))["quotes"][0]
            ids = []
            for k in range(3):
                cid = f"c{n}-{k}"
                res = await _call(c, "place_order", account="sim", code="600000.SH", side="buy", volume=100,
                                  price=q["bid_prices"][4], client_order_id=cid)
                if not res["ok"]:
                    errors.append(f"{cid}: {res['error']}")
                    continue
                if res["order"]["client_order_id"] != cid:
                    errors.append(f"{cid}: got someone else's order {res['order']['client_order_id']}")
                ids.append(res["order"]["order_id"])
                got = await _call(c, "cancel_order", account="sim", order_id=res["order"]["order_id"])
                if not got["ok"] or got["order"]["client_order_id"] != cid:
                    errors.append(f"{cid}: cancel {got}")
            seen[n] = ids

    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            for n in range(20):
                tg.start_soon(trader, n)
    assert errors == []
    all_ids = [i for ids in seen.values() for i in ids]
    assert len(all_ids) == 60 and len(set(all_ids)) == 60


@pytest.mark.anyio
async def test_sse_transport_serves_tools_with_the_token(tmp_path: Path) -> None:
    proc, port = _start(tmp_path, "sse")
    try:
        with anyio.fail_after(60):
            async with Client(sse_client(f"http://127.0.0.1:{port}/sse",
                                         headers={"Authorization": f"Bearer {TOKEN}"})) as c:
                q = await _call(c, "get_quote", codes=["000001"])
                assert q["quotes"][0]["code"] == "000001.SZ"
        async with httpx.AsyncClient() as http:
            r = await http.get(f"http://127.0.0.1:{port}/sse")
            assert r.status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=30)




@pytest.mark.anyio
async def test_host_and_origin_lists_from_config_apply_on_a_non_default_address(tmp_path: Path) -> None:
    # 127.0.0.2 is still this machine, but not one of the loopback names the server trusts by default,
    # so it is served like any other address: token required, Host/Origin checked against config.
    extra = '[server]\nallowed_hosts = ["mcp.example.com:*"]\nallowed_origins = ["https://app.example"]\n'
    proc, port = _start(tmp_path, "streamable-http", host="127.0.0.2", extra_config=extra)
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    base = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json, text/event-stream"}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.2:{port}") as http:
            ok_host = await http.post("/mcp", json=body, headers={**base, "Host": "mcp.example.com"})
            assert ok_host.status_code == 200
            assert (await http.post("/mcp", json=body, headers={**base, "Host": "evil.example"})).status_code == 421
            ok_origin = await http.post("/mcp", json=body, headers={**base, "Origin": "https://app.example"})
            assert ok_origin.status_code == 200
            bad = await http.post("/mcp", json=body, headers={**base, "Origin": "https://evil.example"})
            assert bad.status_code == 403
            assert (await http.post("/mcp", json=body, headers={"Accept": base["Accept"]})).status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    env = {**os.environ, "QMT_MCP_HOME": str(tmp_path)}
    env.pop("QMT_MCP_TOKEN", None)
    res = await anyio.run_process([sys.executable, "-m", "qmt_mcp", "serve", "--transport", "streamable-http",
                                   "--host", "127.0.0.2", "--port", str(_free_port())], env=env, check=False)
    assert res.returncode == 2 and b"without a bearer token" in res.stderr


INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=30)


def _closed_by_peer(s: socket.socket) -> bool:
    s.settimeout(10)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True   # closed with our half head unread: the kernel answers with a reset


def test_half_sent_request_heads_without_a_token_cannot_exhaust_the_server(tmp_path: Path) -> None:
    # A server with 256 file descriptors, and a client with no token opening 400 connections that
    # each send half a request head and then nothing: before, the server ran out of descriptors, an
    # authorized client could not get in, and asyncio logged every failed accept with a traceback.
    log = tmp_path / "stderr.log"
    proc, port = _start(tmp_path, "streamable-http", stderr=log, max_files=256)
    flood: list[socket.socket] = []
    try:
        for _ in range(400):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            flood.append(s)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            r = http.post("/mcp", json=INITIALIZE, headers={"Authorization": f"Bearer {TOKEN}",
                                                            "Accept": "application/json, text/event-stream"})
        assert r.status_code == 200
        # Most of the flood has been let go already: only a bounded number may wait for a head.
        assert _closed_by_peer(flood[0])
    finally:
        for s in flood:
            s.close()
        _stop(proc)
    text = log.read_text(errors="replace")
    assert "Traceback" not in text
    assert len(text.splitlines()) < 10, text[-2000:]


def test_asyncios_accept_retry_on_a_listener_closed_at_shutdown_logs_no_traceback() -> None:
    # Under load the half-sent-heads flood above could end with the server shutting down while
    # asyncio's accept retry (a second after running out of descriptors) was pending: the retry found
    # descriptor -1 and logged a traceback per listener. The record asyncio makes then, and another.
    import logging

    from qmt_mcp.server.conn_guard import _AcceptFailures

    def record(msg: str, exc: BaseException) -> logging.LogRecord:
        return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, msg, None, (type(exc), exc, None))

    f = _AcceptFailures()
    retry = "Exception in callback BaseSelectorEventLoop._start_serving(<function Server>, <socket>, None)"
    assert not f.filter(record(retry, ValueError("Invalid file descriptor: -1")))
    assert f.filter(record(retry, OSError("something else")))   # anything else still reaches the log
    assert f.filter(record("Exception in callback other()", ValueError("Invalid file descriptor: -1")))


def test_a_refused_origin_on_sse_is_one_log_line_not_a_traceback(tmp_path: Path) -> None:
    log = tmp_path / "stderr.log"
    proc, port = _start(tmp_path, "sse", stderr=log)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            r = http.get("/sse", headers={"Authorization": f"Bearer {TOKEN}", "Origin": "http://evil.example"})
            assert r.status_code == 403
    finally:
        _stop(proc)
    text = log.read_text(errors="replace")
    assert "Traceback" not in text
    assert len([line for line in text.splitlines() if "evil.example" in line]) == 1, text


@pytest.mark.anyio
@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
async def test_host_and_origin_names_are_matched_without_regard_to_case(tmp_path: Path, transport: str) -> None:
    proc, port = _start(tmp_path, transport)
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json, text/event-stream",
               "Host": f"LOCALHOST:{port}", "Origin": f"HTTP://LocalHost:{port}"}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            if transport == "sse":
                async with http.stream("GET", "/sse", headers=headers) as r:
                    assert r.status_code == 200
            else:
                r = await http.post("/mcp", json=INITIALIZE, headers=headers)
                assert r.status_code == 200
            evil = await http.post("/mcp", json=INITIALIZE, headers={**headers, "Host": f"EVIL.example:{port}"})
            assert evil.status_code == 421
    finally:
        _stop(proc)
