"""What a year of history costs `get_statement`: its p50 over stdio, and the journal's size after.

    python benchmarks/statement.py [--days 250] [--per-day 20] [--calls 30] [--json PATH]

Seeds a fresh state dir with `days` trading days before today (default 250, about a year), each with
`per_day` fills (default 20) over four codes, their order records and trade events, and the day's
opening and closing snapshots, written straight through the journal (no MCP, no broker). Then starts
`qmt-mcp serve` over stdio on it, as an agent's client would, and calls `get_statement` for the whole
range `calls` times (the worker computes every day from its snapshots and trades each time).

`run.py` awaits `benchmark()` for its table's statement row.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

from qmt_mcp.domain.calendar import is_trading_day
from qmt_mcp.domain.codes import board_of
from qmt_mcp.domain.events import OrderStatusEvent, TradeEvent
from qmt_mcp.domain.fees import FeeSchedule, compute_fees
from qmt_mcp.domain.orders import OrderRecord, OrderType, Side
from qmt_mcp.domain.statement import Holding, Snapshot
from qmt_mcp.domain.status import OrderStatus
from qmt_mcp.domain.timeutil import CN_TZ, iso_ms
from qmt_mcp.worker.journal import Journal

CONFIG = """\
[risk]
enabled = false

[accounts.sim]
account_id = "88000001"
initial_cash = 100000000
"""
CODES = ("600000.SH", "000001.SZ", "600519.SH", "300750.SZ")
BASE = {"600000.SH": Decimal("10.00"), "000001.SZ": Decimal("12.00"), "600519.SH": Decimal("1500.00"),
        "300750.SZ": Decimal("200.00")}


def trading_days_before(today: date, n: int) -> list[date]:
    out: list[date] = []
    d = today - timedelta(days=1)
    while len(out) < n:
        if is_trading_day(d):
            out.append(d)
        d -= timedelta(days=1)
    return out[::-1]


def price(code: str, day_no: int, k: int) -> Decimal:
    """A repeatable price path: a slow wave around the code's base, to the fen."""
    step = Decimal((day_no * 7 + k * 3) % 41 - 20) / Decimal(1000)
    return (BASE[code] * (1 + step)).quantize(Decimal("0.01"))


def seed(home: Path, days: int, per_day: int) -> tuple[date, date]:
    """`days` trading days before today with `per_day` fills each; returns (first day, last day)."""
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)
    (home / "config.toml").write_text(CONFIG)
    journal = Journal(home / "worker.sqlite")
    fees = FeeSchedule()
    cash = Decimal(100_000_000)
    held: dict[str, Holding] = {}
    book = list(trading_days_before(datetime.now(CN_TZ).date(), days))
    n = 0
    for day_no, d in enumerate(book):
        opening = Snapshot(cash, dict(held), {c: price(c, day_no, 0) for c in held})
        with journal.batch():
            for k in range(per_day):
                code = CODES[k % len(CODES)]
                p = price(code, day_no, k)
                have = held.get(code, Holding(0, Decimal(0)))
                side = Side.SELL if k % 3 == 2 and have.volume >= 100 else Side.BUY
                volume = 100
                amount = p * volume
                f = compute_fees(fees, board_of(code), side.value, amount, d)
                at = datetime.combine(d, datetime.min.time(), CN_TZ) + timedelta(hours=10, minutes=k)
                n += 1
                cid, oid = f"b{n}", 1_000_000 + n
                if side is Side.BUY:
                    cash -= amount + f.total
                    held[code] = Holding(have.volume + volume, have.cost + amount + f.total)
                else:
                    cash += amount - f.total
                    released = have.cost * volume / have.volume
                    held[code] = Holding(have.volume - volume, have.cost - released)
                rec = OrderRecord(
                    account="sim", client_order_id=cid, code=code, name=code, side=side, order_type=OrderType.LIMIT,
                    market_type=None, price_type=11, price=p, volume=volume, status=OrderStatus.SUCCEEDED,
                    created_at=iso_ms(at), order_id=oid, traded_volume=volume, traded_amount=amount)
                journal.put_order(rec)
                journal.append(OrderStatusEvent.of(rec), at)
                journal.append(TradeEvent(
                    account="sim", order_id=oid, client_order_id=cid, code=code, side=side, trade_id=f"T{n:09d}",
                    price=p, volume=volume, amount=amount, commission=f.commission, stamp_duty=f.stamp_duty,
                    transfer_fee=f.transfer_fee, fees=f.total, fee_detail="itemized"), at)
            held = {c: h for c, h in held.items() if h.volume}
            closing = Snapshot(cash, dict(held), {c: price(c, day_no, per_day) for c in held})
            journal.execute_all([(
                "INSERT INTO history_days (account, day, opening, closing, final) VALUES (?,?,?,?,1)",
                ("sim", d.isoformat(), json.dumps(opening.to_wire()), json.dumps(closing.to_wire())))])
    journal.close()
    return book[0], book[-1]


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


async def measure(home: Path, first: date, calls: int) -> dict[str, Any]:
    params = StdioServerParameters(command=sys.executable, args=["-m", "qmt_mcp", "serve"],
                                   env={**os.environ, "QMT_MCP_HOME": str(home)})
    samples: list[float] = []
    async with Client(params) as c:
        args = {"account": "sim", "start": first.strftime("%Y%m%d")}
        first_call = time.perf_counter()
        res = await c.call_tool("get_statement", args)
        first_ms = _ms(first_call)
        data = res.structured_content or {}
        if not data.get("ok"):
            raise SystemExit(f"get_statement failed: {data.get('error')}")
        for _ in range(calls):
            t0 = time.perf_counter()
            await c.call_tool("get_statement", args)
            samples.append(_ms(t0))
        health = (await c.call_tool("health", {})).structured_content or {}
    journal = health.get("worker", {}).get("journal", {})
    return {"days": len(data["days"]), "trades": data["totals"]["trades"], "first_call_ms": round(first_ms, 1),
            "p50_ms": round(statistics.median(samples), 2), "max_ms": round(max(samples), 2),
            "journal_bytes": journal.get("size_bytes"), "oldest_day": journal.get("oldest_day")}


async def benchmark(days: int = 250, per_day: int = 20, calls: int = 30) -> dict[str, Any]:
    """Seed a fresh state dir and measure; what run.py reports."""
    home = Path(tempfile.mkdtemp(prefix="qmt-mcp-statement-")) / "home"
    first, _ = seed(home, days, per_day)
    return await measure(home, first, calls)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--days", type=int, default=250, help="trading days before today (default 250)")
    p.add_argument("--per-day", type=int, default=20, help="fills per day (default 20)")
    p.add_argument("--calls", type=int, default=30, help="get_statement calls measured (default 30)")
    p.add_argument("--json", help="also write the numbers to this file")
    a = p.parse_args()
    got = anyio.run(benchmark, a.days, a.per_day, a.calls)
    print(f"\nget_statement over stdio, {got['days']} days with {got['trades']} trades: p50 {got['p50_ms']} ms "
          f"(first call {got['first_call_ms']} ms, max {got['max_ms']} ms); journal {got['journal_bytes']:,} bytes")
    if a.json:
        Path(a.json).write_text(json.dumps({"args": vars(a), **got}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
