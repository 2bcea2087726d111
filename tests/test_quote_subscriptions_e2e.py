"""Quotes to subscribers through real processes: `qmt-mcp serve` over stdio and streamable HTTP with
its spawned worker, reached through the SDK's Client. Simulated time runs 60x (a new quote every
50 ms), so updates come without waiting; every wait is bounded and event-driven. A worker killed
with SIGKILL is restarted by the server, which tells the new worker what it follows: the pushes go on."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, MCPDeprecationWarning, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from test_quote_subscriptions import Notes
from test_stdio_e2e import _worker_pids

pytestmark = [pytest.mark.anyio, pytest.mark.skipif(sys.platform == "win32", reason="Unix socket worker")]
FAST = "[sim]\nstart_at = 2026-11-20T10:00:00+08:00\nspeed = 60\npoll_interval_s = 0.05\n"
CODES = ("600000.SH", "000001.SZ")
URIS = [f"qmt://quotes/{c}" for c in CODES]


def _home(tmp: Path) -> Path:
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(FAST)
    return home


@asynccontextmanager
async def stdio_client(home: Path, notes: Notes) -> AsyncIterator[Client]:
    params = StdioServerParameters(command=sys.executable, args=["-m", "qmt_mcp", "serve"],
                                   env={"QMT_MCP_HOME": str(home)})
    async with Client(params, mode="legacy", message_handler=notes.on_message) as c:
        yield c


async def subscribe(c: Client, uri: str, on: bool = True) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        await (c.subscribe_resource(uri) if on else c.unsubscribe_resource(uri))


async def read(c: Client, uri: str) -> dict[str, Any]:
    return dict(json.loads((await c.read_resource(uri)).contents[0].text))  # type: ignore[union-attr]


async def updates_in_order_then_none_after_unsubscribing(c: Client, notes: Notes) -> None:
    for uri in URIS:
        await subscribe(c, uri)
    seqs: dict[str, list[int]] = {u: [] for u in URIS}
    for n in range(1, 5):
        for uri, code in zip(URIS, CODES, strict=True):
            await notes.wait_for(uri, n)
            body = await read(c, uri)
            assert body["code"] == code and body["held"] is True
            seqs[uri].append(body["seq"])
    for uri in URIS:
        # Each read at least as new as the one before (two notifications may land before one read),
        # the notifications in the worker's order, and time moved on meanwhile. (Over streamable HTTP
        # under load a notification has been seen to arrive twice: a hint, so a read is the latest.)
        assert seqs[uri] == sorted(seqs[uri]) and seqs[uri][-1] > seqs[uri][0], seqs[uri]
        assert notes.seqs[uri] == sorted(notes.seqs[uri]), notes.seqs[uri]
    quote = (await c.call_tool("get_quote", {"codes": [CODES[0]]})).structured_content
    assert quote is not None and quote["ok"] and quote["quotes"][0]["age_ms"] >= 0
    for uri in URIS:
        await subscribe(c, uri, on=False)
    got = {u: notes.count(u) for u in URIS}
    sentinel = "qmt://quotes/600519.SH"
    await subscribe(c, sentinel)
    await notes.wait_for(sentinel, 3)   # time has passed and quotes moved on: pushes would have come
    assert {u: notes.count(u) for u in URIS} == got


async def test_python_client_over_stdio_gets_quotes_of_two_codes_in_order_and_none_after_unsubscribing(
    tmp_path: Path,
) -> None:
    notes = Notes()
    with anyio.fail_after(120):
        async with stdio_client(_home(tmp_path), notes) as c:
            await updates_in_order_then_none_after_unsubscribing(c, notes)


async def test_python_client_over_streamable_http_gets_quotes_in_order_and_none_after_unsubscribing(
    tmp_path: Path,
) -> None:
    from test_http_transport import TOKEN, _start

    proc, port = _start(tmp_path, "streamable-http", extra_config="\n" + FAST)
    try:
        notes = Notes()
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
        with anyio.fail_after(120):
            async with http, Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http),
                                    mode="legacy", message_handler=notes.on_message) as c:
                await updates_in_order_then_none_after_unsubscribing(c, notes)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def test_a_killed_worker_is_restarted_and_told_again_what_is_followed(tmp_path: Path) -> None:
    notes = Notes()
    home = _home(tmp_path)
    uri = URIS[0]
    with anyio.fail_after(120):
        async with stdio_client(home, notes) as c:
            await subscribe(c, uri)
            await notes.wait_for(uri, 2)
            before = await read(c, uri)
            os.kill(_worker_pids(home)[0], signal.SIGKILL)
            killed_at = time.time()
            while True:   # bounded by fail_after; the supervisor starts another worker
                h = (await c.call_tool("health", {})).structured_content or {}
                if h.get("ok") and h["worker"]["state"] == "up" and h["worker"]["restarts"] == 1:
                    break
                await anyio.sleep(0.1)
            n = notes.count(uri)
            await notes.wait_for(uri, n + 2)
            after = await read(c, uri)
            # A new worker (its seq starts again) had the quote after the kill, and pushes it on.
            assert after["held"] is True and after["worker_at"] > killed_at > before["worker_at"]
            # (Not its quote time: each worker's simulated clock starts again at sim.start_at.)
            assert after["quote"]["code"] == before["quote"]["code"] == CODES[0]
