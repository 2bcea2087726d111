"""get_quote round trip over stdio (server + spawned worker) against the SDK's floor, interleaved.

    python benchmarks/quote_rtt.py [--calls N]

Prints p50/p99 in ms and the ratio to the floor measured in the same run (the target: get_quote
p50 within 2x the floor). Uses a fresh temporary state dir.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

HERE = Path(__file__).resolve().parent


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(calls: int) -> None:
    home = tempfile.mkdtemp(prefix="qmt-mcp-bench-")
    qmt = StdioServerParameters(command=sys.executable, args=["-m", "qmt_mcp", "serve"], env={"QMT_MCP_HOME": home})
    floor = StdioServerParameters(command=sys.executable, args=[str(HERE / "floor_server.py")])
    async with Client(qmt) as q, Client(floor) as f:
        for _ in range(50):  # warm both up
            await q.call_tool("get_quote", {"codes": ["600000.SH"]})
            await f.call_tool("echo", {"value": "x"})
        quote: list[float] = []
        base: list[float] = []
        for _ in range(calls):  # interleaved so both see the same machine load
            t0 = time.perf_counter()
            await f.call_tool("echo", {"value": "600000.SH"})
            base.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            res = await q.call_tool("get_quote", {"codes": ["600000.SH"]})
            quote.append((time.perf_counter() - t0) * 1000)
            assert not res.is_error
    p50f, p99f = statistics.median(base), _pct(base, 0.99)
    p50q, p99q = statistics.median(quote), _pct(quote, 0.99)
    print(f"{'measure':<28}{'p50 ms':>10}{'p99 ms':>10}{'p50/floor':>12}")
    print(f"{'SDK floor (echo, stdio)':<28}{p50f:>10.2f}{p99f:>10.2f}{1.0:>12.2f}")
    print(f"{'get_quote (stdio)':<28}{p50q:>10.2f}{p99q:>10.2f}{p50q / p50f:>12.2f}")
    print(f"({calls} calls each, interleaved)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=500)
    anyio.run(main, ap.parse_args().calls)
