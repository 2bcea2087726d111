"""Fill-to-notification latency over stdio and streamable HTTP.

    python benchmarks/fill_notify.py [--orders N]

Each round places a marketable buy and waits for the `qmt://accounts/sim/positions` update that its
fill causes. Latency = the notification's arrival at the client minus the fill's own timestamp in the
worker's journal (same machine clock, millisecond resolution). Risk limits are lifted for the run.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import anyio
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

CONFIG = "[risk]\nenabled = false\n"
URI = "qmt://accounts/sim/positions"


def _home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="qmt-mcp-bench-"))
    (home / "config.toml").write_text(CONFIG)
    return home


async def _rounds(c: Client, orders: int, tag: str) -> list[float]:
    lat: list[float] = []
    q = (await c.call_tool("get_quote", {"codes": ["600000.SH"]})).structured_content["quotes"][0]  # type: ignore[index]
    async with c.listen(resource_subscriptions=[URI]) as sub:
        it = sub.__aiter__()
        for i in range(orders):
            cid = f"{tag}{i}"  # a reused id would replay, not trade
            # A limit at the day's up limit trades at the book's own prices; if this quote's book is
            # used up, it rests until the next quote (the fill's own timestamp still marks the fill).
            res = await c.call_tool("place_order", {"account": "sim", "code": "600000.SH", "side": "buy",
                                                    "volume": 100, "price": q["up_limit"], "client_order_id": cid})
            assert not res.is_error, res.content
            with anyio.fail_after(30):
                await it.__anext__()
            arrived = time.time()
            got = await c.call_tool("get_order", {"account": "sim", "client_order_id": cid})
            trades = [e for e in got.structured_content["events"] if e["type"] == "trade"]  # type: ignore[index]
            filled = datetime.fromisoformat(trades[-1]["time"]).timestamp()
            lat.append((arrived - filled) * 1000)
    return lat


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def main(orders: int) -> None:
    results: dict[str, list[float]] = {}
    home = _home()
    params = StdioServerParameters(command=sys.executable, args=["-m", "qmt_mcp", "serve"],
                                   env={"QMT_MCP_HOME": str(home)})
    async with Client(params) as c:
        await _rounds(c, 10, "warm")
        results["stdio"] = await _rounds(c, orders, "run")

    home = _home()
    port = _port()
    env = {**os.environ, "QMT_MCP_HOME": str(home), "QMT_MCP_TOKEN": "bench"}
    proc = subprocess.Popen([sys.executable, "-m", "qmt_mcp", "serve", "--transport", "streamable-http",  # noqa: ASYNC220
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                await anyio.sleep(0.1)
        async with httpx2.AsyncClient(headers={"Authorization": "Bearer bench"}, timeout=60) as http, \
                Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)) as c:
            await _rounds(c, 10, "warm")
            results["streamable HTTP"] = await _rounds(c, orders, "run")
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    print(f"{'fill -> notification':<24}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for name, lat in results.items():
        ordered = sorted(lat)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        print(f"{name:<24}{statistics.median(lat):>10.1f}{p99:>10.1f}{max(lat):>10.1f}")
    print(f"({orders} fills each; ms resolution)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=200)
    anyio.run(main, ap.parse_args().orders)
