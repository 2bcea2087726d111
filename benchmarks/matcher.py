"""The simulator's own costs: quote generation and matcher throughput with a busy book.

    python benchmarks/matcher.py [--orders N] [--resting N]

Measures, in process (no MCP, no HTTP):
- building one instrument-day of the synthetic market (cold) and one quote from it (warm);
- placing marketable limit orders while N orders rest in the book (orders/s), each placement with
  its pushes and its write to the counter's SQLite file;
- one matching pass (`poll`) over the N resting orders when a new quote arrives.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from qmt_mcp.backends.sim.broker import SimBroker
from qmt_mcp.backends.sim.market import SimMarket
from qmt_mcp.backends.sim.paper import PaperAccount
from qmt_mcp.clock import ManualClock
from qmt_mcp.domain.fees import FeeSchedule
from qmt_mcp.domain.orders import parse_order_request
from qmt_mcp.domain.timeutil import CN_TZ

START = datetime(2026, 11, 20, 10, 0, tzinfo=CN_TZ)
CODES = ("600000.SH", "000001.SZ", "600519.SH", "300750.SZ", "510300.SH")


def quote_costs() -> tuple[float, float]:
    market = SimMarket(42)
    t0 = time.perf_counter()
    days = 20
    for i in range(days):
        market.quote("600000.SH", START + timedelta(days=i))
    cold = (time.perf_counter() - t0) / days
    samples = 20_000
    t0 = time.perf_counter()
    for i in range(samples):
        market.quote(CODES[i % len(CODES)], START + timedelta(seconds=3 * (i // len(CODES))))
    warm = (time.perf_counter() - t0) / samples
    return cold, warm


def matcher(orders: int, resting: int) -> tuple[float, float]:
    home = Path(tempfile.mkdtemp(prefix="qmt-mcp-matcher-"))
    clock = ManualClock(START)
    broker = SimBroker(seed=42, clock=clock, fees=FeeSchedule(), state_path=home / "sim.sqlite",
                       accounts={"A": PaperAccount(Decimal(10) ** 12, {c: 10**7 for c in CODES})})
    counter, market = broker.counter, broker.market

    def place(code: str, side: str, volume: int, price: Decimal) -> None:
        req = parse_order_request({"account": "sim", "code": code, "side": side, "volume": volume,
                                   "price": str(price)})
        counter.place("A", req, market.instrument(code, START.date()), "bench")

    for i in range(resting):   # a busy book: bids and asks a few ticks away from the market
        code = CODES[i % len(CODES)]
        q = market.quote(code, START)
        if i % 2:
            place(code, "buy", 100, q.bids[-1].price)
        else:
            place(code, "sell", 100, q.asks[-1].price)
    t0 = time.perf_counter()
    for i in range(orders):
        code = CODES[i % len(CODES)]
        q = market.quote(code, clock.now())
        place(code, "buy", 100, q.asks[0].price)
    rate = orders / (time.perf_counter() - t0)
    passes = []
    for _ in range(20):
        clock.advance(3)
        t0 = time.perf_counter()
        counter.poll()
        passes.append(time.perf_counter() - t0)
    broker.store.close()
    return rate, statistics.median(passes)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--resting", type=int, default=2000)
    args = parser.parse_args()
    cold, warm = quote_costs()
    rate, poll = matcher(args.orders, args.resting)
    print(f"| measure | value |\n|---|---|\n"
          f"| synthetic day build (one code, cold) | {cold * 1000:.1f} ms |\n"
          f"| quote from a built day (warm) | {warm * 1e6:.1f} µs |\n"
          f"| marketable orders placed, {args.resting} resting | {rate:,.0f} orders/s |\n"
          f"| matching pass over {args.resting} resting orders | {poll * 1000:.2f} ms |")


if __name__ == "__main__":
    main()
