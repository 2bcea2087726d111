"""Quotes to subscribers, beside the MCP SDK's floor measured in the same run.

    python benchmarks/quotes.py [--quick]      # or as part of benchmarks/run.py

- `get_quote` for a code someone follows (`qmt://quotes/{code}` on a `subscriptions/listen` stream:
  the server answers from what it holds) and for one nobody follows (a worker round trip), called
  interleaved with the floor (a trivial MCPServer tool) over stdio and streamable HTTP;
- quote at the worker -> its notification at the client, with 50 codes followed: the notification's
  `_meta["qmt/worker_at"]` (the worker's wall clock when it had the quote) against the client's
  wall clock when the notification arrives (one machine, one clock);
- server + worker resident memory with 200 codes followed, after they have been pushing a while.

Targets: followed p50 <= 1.2x the floor, unfollowed <= 1.6x, over both transports; push p99 <= 10 ms
with 50 codes; RSS < 150 MB with 200 codes. The universe beyond the simulator's own codes is a
replay of generated one-minute bars (written to the run's state dir), four quotes a minute per code
with the codes' quotes spread over each 15 s as an exchange's are; simulated time runs 2x, so 50
codes make about 7 quotes a second. One more row shows the worst case without a target: 50 codes
whose quotes all change at the same instant (each burst's last notification waits for the others).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import ResourceUpdatedNotification
from measure import (  # the scripts' shared helpers (benchmarks/measure.py)
    free_port,
    http_process,
    ok,
    pct,
    rss_mb,
    worker_pid,
)

HERE = Path(__file__).resolve().parent
TOKEN = "bench-token"  # noqa: S105 (a throwaway token for a loopback server)
START = datetime(2026, 11, 20, 10, 0, 0, tzinfo=timezone(timedelta(hours=8)))
HELD, FRESH = "600000.SH", "000001.SZ"
RATIO_TARGETS = {"get_quote (followed)": 1.2, "get_quote (not followed)": 1.6}
PUSH_P99_MS = 10.0
RSS_MB = 150.0


def replay_codes(n: int) -> list[str]:
    """`n` codes outside the simulator's universe, half Shanghai, half Shenzhen."""
    return [f"{600100 + i // 2:06d}.SH" if i % 2 == 0 else f"{2100 + i // 2:06d}.SZ" for i in range(n)]


def write_home(codes: list[str], minutes: int, speed: float, stagger: bool = True) -> Path:
    """A state dir whose config replays generated 1-minute bars for `codes` from START on, at
    `speed` times real time. Each bar is four quotes 15 s apart; with `stagger` each code's bars start
    a few seconds after the minute (code n: n mod 15 s), so the codes' quotes come spread out, as an
    exchange's snapshots of different codes do, rather than all at the same instant."""
    home = Path(tempfile.mkdtemp(prefix="qmt-mcp-bench-quotes-"))
    replay = home / "replay"
    replay.mkdir()
    for n, code in enumerate(codes):
        price = 10.0 + n % 40
        rows = ["time,open,high,low,close,volume,amount"]
        for m in range(-5, minutes):
            o = price + ((m * 7 + n) % 11 - 5) * 0.01
            c = o + ((m * 3 + n) % 5 - 2) * 0.01
            at = (START + timedelta(minutes=m, seconds=n % 15 if stagger else 0)).strftime("%Y-%m-%d %H:%M:%S")
            vol = 1000 * (1 + (m + n) % 9)
            rows.append(f"{at},{o:.2f},{max(o, c) + 0.01:.2f},{min(o, c) - 0.01:.2f},{c:.2f},{vol},{vol * c:.2f}")
        (replay / f"{code}.csv").write_text("\n".join(rows) + "\n")
    (home / "config.toml").write_text(
        "[risk]\nenabled = false\n\n[accounts.sim]\naccount_id = \"88000001\"\n\n"
        f"[sim]\nreplay_dir = \"{replay}\"\nstart_at = {START.isoformat()}\nspeed = {speed}\n")
    return home


def parent_pid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


class Pushes:
    """Arrivals of quote notifications: (uri, arrival wall time, worker_at)."""

    def __init__(self) -> None:
        self.got: list[tuple[str, float, float]] = []
        self.arrived = anyio.Event()

    async def on_message(self, message: Any) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            now = time.time()
            meta = message.params.meta or {}
            if "qmt/worker_at" in meta:
                self.got.append((str(message.params.uri), now, float(meta["qmt/worker_at"])))
                self.arrived.set()
                self.arrived = anyio.Event()

    async def wait(self, n: int) -> None:
        with anyio.fail_after(60):
            while len(self.got) < n:
                await self.arrived.wait()


@asynccontextmanager
async def following(c: Client, codes: list[str], pushes: Pushes) -> AsyncIterator[None]:
    """A listen stream on the quotes of `codes`, open until the block ends. Enters once every code's
    current quote (the burst a new subscription starts with) has arrived: what follows is the market."""
    uris = [f"qmt://quotes/{code}" for code in codes]
    async with c.listen(resource_subscriptions=uris):
        start = len(pushes.got)
        with anyio.fail_after(60):
            while {u for u, _, _ in pushes.got[start:]} < set(uris):
                await pushes.arrived.wait()
        yield


async def interleaved(c: Client, floor: Client, rounds: int) -> dict[str, list[float]]:
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "floor": lambda: floor.call_tool("echo", {"value": HELD}),
        "get_quote (followed)": lambda: c.call_tool("get_quote", {"codes": [HELD]}),
        "get_quote (not followed)": lambda: c.call_tool("get_quote", {"codes": [FRESH]}),
    }
    samples: dict[str, list[float]] = {k: [] for k in calls}
    fresh = 0
    for i in range(rounds + 20):   # the first 20 warm both servers up
        for name, fn in calls.items():
            t0 = time.perf_counter()
            res = await fn()
            dt = (time.perf_counter() - t0) * 1000
            if name != "floor":
                q = ok(res)["quotes"][0]
                fresh += name == "get_quote (followed)" and q["age_ms"] == 0
            if i >= 20:
                samples[name].append(dt)
    # age_ms 0 is a worker read (or a quote held for under a millisecond): most must be held.
    if fresh > rounds // 10:
        raise RuntimeError(f"{fresh} of {rounds + 20} followed quotes were not answered from what the server holds")
    return samples


def ratio_rows(transport: str, samples: dict[str, list[float]]) -> list[dict[str, Any]]:
    floor = statistics.median(samples["floor"])
    rows = [{"measure": "SDK floor (trivial tool)", "transport": transport, "samples": len(samples["floor"]),
             "p50_ms": floor, "p99_ms": pct(samples["floor"], 0.99), "floor_p50_ms": floor, "ratio": 1.0}]
    for name, target in RATIO_TARGETS.items():
        s = samples[name]
        p50 = statistics.median(s)
        rows.append({"measure": name, "transport": transport, "samples": len(s), "p50_ms": p50,
                     "p99_ms": pct(s, 0.99), "floor_p50_ms": floor, "ratio": p50 / floor,
                     "target": f"p50 <= {target}x floor", "met": p50 <= target * floor})
    return rows


async def push_latency(c: Client, pushes: Pushes, codes: list[str], seconds: float) -> list[float]:
    async with following(c, codes, pushes):
        start = len(pushes.got)
        await anyio.sleep(seconds)   # the market runs; every arrival in the window is a sample
        window = pushes.got[start:]
    return [(arrived - worker_at) * 1000 for _, arrived, worker_at in window]


@asynccontextmanager
async def http_client(port: int, token: str | None, pushes: Pushes | None = None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http, \
            Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http),
                   message_handler=pushes.on_message if pushes else None) as c:
        yield c


def rss_pair(home: Path) -> tuple[float, float] | None:
    """(server MB, worker MB): the stdio server is the client's child, found as the worker's parent."""
    wpid = worker_pid(home)
    ppid = parent_pid(wpid) if wpid else None
    server_mb, worker_mb = (rss_mb(ppid) if ppid else None), (rss_mb(wpid) if wpid else None)
    return None if server_mb is None or worker_mb is None else (server_mb, worker_mb)


def latency_row(measure: str, lat: list[float], target: bool) -> dict[str, Any]:
    p99 = pct(lat, 0.99)
    row: dict[str, Any] = {"measure": measure, "transport": "stdio", "samples": len(lat),
                           "p50_ms": statistics.median(lat), "p99_ms": p99}
    if target:
        row.update(target=f"p99 <= {PUSH_P99_MS:g} ms", met=p99 <= PUSH_P99_MS)
    return row


async def rows(quick: bool) -> list[dict[str, Any]]:
    """The measurements as rows for benchmarks/run.py's table (its Row fields)."""
    rounds, window = (60, 8.0) if quick else (400, 40.0)
    many = replay_codes(200)
    out: list[dict[str, Any]] = []
    py = sys.executable
    floor_stdio = StdioServerParameters(command=py, args=[str(HERE / "floor_server.py")])

    def serve(home: Path) -> StdioServerParameters:
        return StdioServerParameters(command=py, args=["-m", "qmt_mcp", "serve"], env={"QMT_MCP_HOME": str(home)})

    print(f"quotes, stdio: {rounds} rounds; pushes of 50 codes for {window:g} s; 200 codes ...", file=sys.stderr)
    home = write_home(many, 30, speed=2)
    pushes = Pushes()
    async with Client(serve(home), message_handler=pushes.on_message) as c, Client(floor_stdio) as f:
        async with following(c, [HELD], pushes):
            out += ratio_rows("stdio", await interleaved(c, f, rounds))
        gc.collect()
        lat = await push_latency(c, pushes, many[:50], window)
        out.append(latency_row("quote at worker -> notification, 50 codes", lat, True))
        before = rss_pair(home)
        async with following(c, [HELD, *many[:199]], pushes):
            await anyio.sleep(window / 2)   # every code pushed several times
            after = rss_pair(home)
    if before is not None and after is not None:
        total = sum(after)
        out.append({"measure": "RSS server + worker (MB), 200 codes followed", "transport": "stdio", "samples": 1,
                    "p50_ms": total, "p99_ms": total, "target": f"< {RSS_MB:g} MB", "met": total < RSS_MB,
                    "extra": {"server_mb": round(after[0], 1), "worker_mb": round(after[1], 1),
                              "before_following_mb": round(sum(before), 1)}})

    print("quotes, stdio: 50 codes whose quotes all change at the same instant ...", file=sys.stderr)
    home = write_home(many[:50], 30, speed=2, stagger=False)
    pushes = Pushes()
    async with Client(serve(home), message_handler=pushes.on_message) as c:
        lat = await push_latency(c, pushes, many[:50], max(window, 16.0))   # a burst every 7.5 s
        out.append(latency_row("quote at worker -> notification, 50 codes in one burst", lat, False))

    print(f"quotes, streamable HTTP: {rounds} rounds ...", file=sys.stderr)
    home = write_home(many[:4], 30, speed=2)
    port, floor_port = free_port(), free_port()
    qmt_argv = [py, "-m", "qmt_mcp", "serve", "--transport", "streamable-http", "--port", str(port)]
    floor_argv = [py, str(HERE / "floor_server.py"), "--http", str(floor_port)]
    pushes = Pushes()
    async with http_process(qmt_argv, {"QMT_MCP_HOME": str(home), "QMT_MCP_TOKEN": TOKEN}, port), \
            http_process(floor_argv, {}, floor_port), \
            http_client(port, TOKEN, pushes) as c, http_client(floor_port, None) as f, \
            following(c, [HELD], pushes):
        out += ratio_rows("streamable HTTP", await interleaved(c, f, rounds))
    return out


async def main(quick: bool) -> int:
    out = await rows(quick)
    print("| measure | transport | n | p50 | p99 | floor p50 ms | p50 / floor | target |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for r in out:
        ratio = f"{r['ratio']:.2f}x" if r.get("ratio") is not None else ""
        floor = f"{r['floor_p50_ms']:.2f}" if r.get("floor_p50_ms") is not None else ""
        target = f"{r['target']}: {'met' if r['met'] else 'MISSED'}" if r.get("target") else ""
        extra = "".join(f", {k} {v}" for k, v in r.get("extra", {}).items())
        print(f"| {r['measure']}{extra} | {r['transport']} | {r['samples']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
              f"| {floor} | {ratio} | {target} |")
    return 1 if any(r.get("met") is False for r in out) else 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a short run")
    sys.exit(anyio.run(main, ap.parse_args().quick))
