"""What a long history costs the worker: start-up, memory, lookups and the reconciliation timer.

    python benchmarks/history.py [--orders N] [--days D] [--today M] [--json PATH]

Seeds a fresh state dir with N finished orders spread over the D days before today (default 100,000
over 30 days), plus M finished orders of today, written straight through the journal's and the
simulated counter's own store APIs (one transaction per few thousand rows; no MCP, no HTTP, no
broker), each with its events, its trade and its audit record. Then starts a real `qmt-mcp worker`
process on it and measures, through the worker's HTTP API on a Unix socket:

- start: spawning the process until its first `health` answer (start-up reconciliation included);
- the worker's resident memory (VmRSS) after start;
- `get_order` of random earlier orders, by client_order_id and by order_id (p50, p99);
- `get_orders` (today's orders) (p50, p99);
- the longest pause of the worker's event loop while the reconciliation timer runs: `health` is
  called back to back for a few timer periods, and the slowest answer is the longest time the loop
  was not serving (an answer takes ~1 ms when it is).

Bounded in time: seeding 100,000 orders takes well under a minute, the measuring about half a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio

from qmt_mcp.backends.port import BrokerTrade
from qmt_mcp.backends.sim.paper import SimOrder, trade_row
from qmt_mcp.backends.sim.store import SimStore
from qmt_mcp.domain.errors import QmtError
from qmt_mcp.domain.events import OrderStatusEvent, TradeEvent
from qmt_mcp.domain.orders import OrderRecord, OrderType, Side
from qmt_mcp.domain.status import OrderStatus
from qmt_mcp.domain.timeutil import CN_TZ, iso, iso_ms
from qmt_mcp.server.worker_client import WorkerClient
from qmt_mcp.worker.audit import AuditLog
from qmt_mcp.worker.journal import Journal

ACCOUNT, ACCOUNT_ID = "sim", "88000001"
TOKEN = "bench-token"  # noqa: S105 (a throwaway token for a local socket)
RECONCILE_S = 3.0
CONFIG = f"""\
[risk]
enabled = false

[worker]
reconcile_interval_s = {RECONCILE_S}

[accounts.sim]
account_id = "{ACCOUNT_ID}"
initial_cash = 100000000
"""
CODES = ("600000.SH", "000001.SZ", "600519.SH", "510300.SH")
CHUNK = 5000
FIRST_ID = 1000001


def seed(home: Path, orders: int, days: int, today_orders: int, rng: random.Random) -> list[tuple[str, int]]:
    """Write the history; returns (client_order_id, order_id) of the earlier orders."""
    now = datetime.now(CN_TZ)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    journal = Journal(home / "worker.sqlite")
    store = SimStore(home / "sim.sqlite")
    audit = _FastAudit(home / "audit.jsonl")
    earlier: list[tuple[str, int]] = []
    total = orders + today_orders
    for start in range(0, total, CHUNK):
        sim_orders: list[tuple[int, str, dict[str, Any]]] = []
        sim_trades: list[tuple[str, dict[str, Any]]] = []
        with journal.batch():
            for i in range(start, min(total, start + CHUNK)):
                if i < orders:   # spread evenly over the earlier days, oldest first
                    day = midnight - timedelta(days=days - (i * days) // orders)
                    at = day + timedelta(hours=9, minutes=30, seconds=(i * 7) % 7200)
                else:            # today's, in the hour before now
                    at = max(midnight, now - timedelta(seconds=3600 - (i - orders) * 3600 / max(1, today_orders)))
                oid, cid = FIRST_ID + i, f"h{i:07d}"
                code = CODES[i % len(CODES)]
                filled = i % 3 != 0
                price = Decimal("10.00") + Decimal(i % 100) / 100
                rec = OrderRecord(
                    account=ACCOUNT, client_order_id=cid, code=code, name=code, side=Side.BUY,
                    order_type=OrderType.LIMIT, market_type=None, price_type=11, price=price, volume=100,
                    status=OrderStatus.SUCCEEDED if filled else OrderStatus.CANCELED, created_at=iso_ms(at),
                    order_id=oid, traded_volume=100 if filled else 0,
                    traded_amount=price * 100 if filled else Decimal(0),
                    status_msg="" if filled else "canceled", fingerprint={"code": code},
                )
                journal.put_order(rec)
                journal.append(OrderStatusEvent.of(rec), at)
                so = SimOrder(order_id=oid, account_id=ACCOUNT_ID, code=code, name=code, side=Side.BUY, volume=100,
                              order_type=OrderType.LIMIT, market_type=None, price=price, limit=price, remark=cid,
                              time=iso(at), day=at.date().isoformat(), status=rec.status,
                              traded_volume=rec.traded_volume, traded_amount=rec.traded_amount)
                sim_orders.append((oid, ACCOUNT_ID, so.to_row()))
                if filled:
                    trade = BrokerTrade(account_id=ACCOUNT_ID, trade_id=f"T{i + 1:08d}", order_id=oid, remark=cid,
                                        code=code, side=Side.BUY, price=price, volume=100, amount=price * 100,
                                        commission=Decimal(5), stamp_duty=Decimal(0), transfer_fee=Decimal("0.01"),
                                        time=at)
                    journal.append(TradeEvent(
                        account=ACCOUNT, order_id=oid, client_order_id=cid, code=code, side=Side.BUY,
                        trade_id=trade.trade_id, price=price, volume=100, amount=trade.amount,
                        commission=trade.commission, stamp_duty=trade.stamp_duty, transfer_fee=trade.transfer_fee,
                        fees=trade.fees, fee_detail=trade.fee_detail), at)
                    sim_trades.append((ACCOUNT_ID, trade_row(trade)))
                audit.add({"time": iso(at), "call": "place_order", "args": {"client_order_id": cid},
                           "outcome": {"ok": True, "order": rec.to_wire()}})
                if i < orders:
                    earlier.append((cid, oid))
        store.save(orders=sim_orders, trades=sim_trades,
                   meta={"next_order_id": str(FIRST_ID + total), "next_trade_no": str(total + 1)})
    audit.close(journal)
    journal.close()
    store.close()
    return earlier


class _FastAudit:
    """The audit chain written in one go (one fsync at the end, not one per record), in the
    worker's own format; anchored in the journal when the journal keeps an anchor."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []
        self.n, self.prev = 0, "0" * 64

    def add(self, record: dict[str, Any]) -> None:
        from qmt_mcp.worker import audit as audit_mod

        rec = {"n": self.n + 1, "prev": self.prev, **record}
        rec["hash"] = audit_mod._hash(rec)   # the benchmark writes the worker's own format
        self.lines.append(json.dumps(rec, ensure_ascii=False))
        self.n, self.prev = rec["n"], rec["hash"]

    def close(self, journal: Journal) -> None:
        with open(self.path, "w", encoding="utf-8") as f:
            f.write("\n".join(self.lines) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(self.path, 0o600)
        put_head = getattr(journal, "put_audit_head", None)
        if put_head is not None:
            put_head(self.n, self.prev)
        AuditLog(self.path)   # the worker's own reader accepts it


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def timed(client: WorkerClient, name: str, args: dict[str, Any]) -> float:
    t0 = time.perf_counter()
    await client.call(name, args)
    return (time.perf_counter() - t0) * 1000


async def measure(home: Path, earlier: list[tuple[str, int]], rng: random.Random, calls: int) -> dict[str, float]:
    sock = home / "bench.sock"
    env = {**os.environ, "QMT_MCP_HOME": str(home), "QMT_WORKER_TOKEN": TOKEN}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "qmt_mcp", "worker", "--uds", str(sock)], env=env,  # noqa: ASYNC220
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    client = WorkerClient.for_uds(str(sock), TOKEN, timeout_s=120)
    out: dict[str, float] = {}
    try:
        with anyio.fail_after(300):
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"the worker exited at start with {proc.returncode}")
                try:
                    await client.call("health", {})
                    break
                except QmtError:
                    await anyio.sleep(0.01)
        out["start_s"] = time.perf_counter() - t0
        out["rss_mb"] = rss_mb(proc.pid)
        by_cid = [await timed(client, "get_order", {"account": ACCOUNT, "client_order_id": cid})
                  for cid, _ in rng.sample(earlier, min(calls, len(earlier)))]
        by_id = [await timed(client, "get_order", {"account": ACCOUNT, "order_id": oid})
                 for _, oid in rng.sample(earlier, min(calls, len(earlier)))]
        listing = [await timed(client, "get_orders", {"account": ACCOUNT}) for _ in range(max(10, calls // 10))]
        out |= {"get_order_cid_p50": pct(by_cid, 0.5), "get_order_cid_p99": pct(by_cid, 0.99),
                "get_order_id_p50": pct(by_id, 0.5), "get_order_id_p99": pct(by_id, 0.99),
                "get_orders_p50": pct(listing, 0.5), "get_orders_p99": pct(listing, 0.99)}
        # Back-to-back health calls across three reconciliation periods: the slowest is the longest
        # stretch the worker's loop served nobody.
        health: list[float] = []
        until = time.perf_counter() + 3 * RECONCILE_S + 0.5
        while time.perf_counter() < until:
            health.append(await timed(client, "health", {}))
        out["loop_pause_max_ms"] = max(health)
        out["health_p50"] = statistics.median(health)
        out["rss_after_mb"] = rss_mb(proc.pid)
    finally:
        await client.aclose()
        proc.terminate()
        proc.wait(timeout=30)
    return out


def _p(got: dict[str, float], key: str) -> str:
    return f"{got[key + '_p50']:.2f} / {got[key + '_p99']:.2f} ms"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--orders", type=int, default=100_000, help="finished orders before today (default 100000)")
    p.add_argument("--days", type=int, default=30, help="earlier days they are spread over (default 30)")
    p.add_argument("--today", type=int, default=500, help="finished orders of today (default 500)")
    p.add_argument("--calls", type=int, default=200, help="get_order calls per way of asking (default 200)")
    p.add_argument("--json", help="also write the numbers to this file")
    args = p.parse_args()
    rng = random.Random(20261121)  # noqa: S311 (repeatable picks, not a secret)
    home = Path(tempfile.mkdtemp(prefix="qmt-mcp-history-"))
    home.chmod(0o700)
    (home / "config.toml").write_text(CONFIG)
    t0 = time.perf_counter()
    earlier = seed(home, args.orders, args.days, args.today, rng)
    seeded = time.perf_counter() - t0
    got = anyio.run(measure, home, earlier, rng, args.calls)
    rows = [
        ("seeding (not the worker)", f"{seeded:.1f} s"),
        ("worker start (spawn to first health)", f"{got['start_s']:.2f} s"),
        ("worker RSS after start", f"{got['rss_mb']:.1f} MB"),
        ("worker RSS at the end", f"{got['rss_after_mb']:.1f} MB"),
        ("get_order by client_order_id p50 / p99", _p(got, "get_order_cid")),
        ("get_order by order_id p50 / p99", _p(got, "get_order_id")),
        (f"get_orders ({args.today} today) p50 / p99", _p(got, "get_orders")),
        ("longest event-loop pause over 3 reconciliations", f"{got['loop_pause_max_ms']:.1f} ms"),
        ("health p50 meanwhile", f"{got['health_p50']:.2f} ms"),
    ]
    print(f"\n{args.orders:,} earlier orders over {args.days} days, {args.today} today; state dir {home}\n")
    width = max(len(r[0]) for r in rows)
    print(f"| {'measure'.ljust(width)} | value |\n|{'-' * (width + 2)}|------:|")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "seed_s": seeded, **got}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
