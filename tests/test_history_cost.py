"""What the worker does for a call or a reconciliation does not grow with the orders of earlier days.

Counted, not timed, so the test is exact on any machine: order records decoded by the journal, and
SQLite virtual-machine steps on the journal's connection (a full scan of a table costs steps per
row; an index lookup costs the same few steps however large the table is). The same worker, on a
state dir seeded with a short and with a long history, must do the same work.
benchmarks/history.py measures the time and memory this saves with 100,000 earlier orders.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import START, make_worker, serve_worker

from qmt_mcp.backends.port import BrokerTrade
from qmt_mcp.backends.sim.paper import SimOrder, trade_row
from qmt_mcp.backends.sim.store import SimStore
from qmt_mcp.bootstrap import Worker
from qmt_mcp.clock import ManualClock
from qmt_mcp.config import parse_config
from qmt_mcp.domain.events import OrderStatusEvent, TradeEvent
from qmt_mcp.domain.orders import OrderRecord, OrderType, Side
from qmt_mcp.domain.status import OrderStatus
from qmt_mcp.domain.timeutil import iso, iso_ms
from qmt_mcp.worker.journal import Journal

pytestmark = pytest.mark.anyio
CFG = parse_config({"risk": {"enabled": False}})
ACCOUNT_ID = "88000001"   # the default account's id
SHORT, LONG = 30, 3000


def seed_history(home: Path, orders: int, days: int = 20) -> None:
    """`orders` finished orders over the `days` days before START, in the journal and in the
    simulated counter's book, each with its events and (if it filled) its trade."""
    home.mkdir(parents=True)
    journal, store = Journal(home / "worker.sqlite"), SimStore(home / "sim.sqlite")
    sim_orders: list[tuple[int, str, dict[str, Any]]] = []
    sim_trades: list[tuple[str, dict[str, Any]]] = []
    with journal.batch():
        for i in range(orders):
            at = START - timedelta(days=days - (i * days) // orders, minutes=i % 60)
            oid, cid, filled, price = 1000 + i, f"old-{i}", i % 3 != 0, Decimal("10.00")
            rec = OrderRecord(
                account="sim", client_order_id=cid, code="600000.SH", name="浦发银行", side=Side.BUY,
                order_type=OrderType.LIMIT, market_type=None, price_type=11, price=price, volume=100,
                status=OrderStatus.SUCCEEDED if filled else OrderStatus.CANCELED, created_at=iso_ms(at),
                order_id=oid, traded_volume=100 if filled else 0, traded_amount=price * 100 if filled else Decimal(0),
            )
            journal.put_order(rec)
            journal.append(OrderStatusEvent.of(rec), at)
            order = SimOrder(order_id=oid, account_id=ACCOUNT_ID, code="600000.SH", name="浦发银行", side=Side.BUY,
                             volume=100, order_type=OrderType.LIMIT, market_type=None, price=price, limit=price,
                             remark=cid, time=iso(at), day=at.date().isoformat(), status=rec.status,
                             traded_volume=rec.traded_volume, traded_amount=rec.traded_amount)
            sim_orders.append((oid, ACCOUNT_ID, order.to_row()))
            if filled:
                journal.append(TradeEvent(
                    account="sim", order_id=oid, client_order_id=cid, code="600000.SH", side=Side.BUY,
                    trade_id=f"T{i:08d}", price=price, volume=100, amount=price * 100, commission=Decimal(5),
                    stamp_duty=Decimal(0), transfer_fee=Decimal("0.01"), fees=Decimal("5.01"),
                    fee_detail="itemized"), at)
                sim_trades.append((ACCOUNT_ID, trade_row(BrokerTrade(
                    account_id=ACCOUNT_ID, trade_id=f"T{i:08d}", order_id=oid, remark=cid, code="600000.SH",
                    side=Side.BUY, price=price, volume=100, amount=price * 100, commission=Decimal(5),
                    stamp_duty=Decimal(0), transfer_fee=Decimal("0.01"), time=at))))
    store.save(orders=sim_orders, trades=sim_trades)
    journal.close()
    store.close()


@contextmanager
def counted(worker: Worker, into: dict[str, tuple[int, int]], name: str) -> Iterator[None]:
    """Records decoded and SQLite VM steps on the journal's connection while the block runs."""
    steps = [0]

    def step() -> int:
        steps[0] += 1
        return 0

    db = worker.journal._db   # the journal's own connection
    decoded = worker.journal.decoded
    db.set_progress_handler(step, 1)
    try:
        yield
    finally:
        db.set_progress_handler(None, 1)
    into[name] = (worker.journal.decoded - decoded, steps[0])


async def work_with_history(tmp_path: Path, earlier: int) -> dict[str, tuple[int, int]]:
    clock = ManualClock(START)
    home = tmp_path / f"history-{earlier}"
    seed_history(home, earlier)
    worker = make_worker(CFG, home, clock)
    costs: dict[str, tuple[int, int]] = {}
    sock = Path(tempfile.mkdtemp(prefix="qmt-test-")) / "w.sock"
    async with serve_worker(worker, sock) as wc:
        q = (await wc.call("get_quote", {"codes": ["600000.SH"]}))["quotes"][0]
        for i, price in enumerate((q["ask_prices"][0], q["bid_prices"][4], q["ask_prices"][0])):  # fill, rest, fill
            await wc.call("place_order", {"account": "sim", "code": "600000.SH", "side": "buy", "volume": 100,
                                          "price": price, "client_order_id": f"today-{i}"})
        with counted(worker, costs, "reconcile"):
            await worker.reconciler.run("timer")
        with counted(worker, costs, "get_order by client_order_id"):
            got = await wc.call("get_order", {"account": "sim", "client_order_id": "old-7"})
        assert got["order"]["status"] == "succeeded" and got["events"]
        with counted(worker, costs, "get_order by order_id"):
            await wc.call("get_order", {"account": "sim", "order_id": 1000 + 7})
        with counted(worker, costs, "get_orders"):
            today = (await wc.call("get_orders", {"account": "sim"}))["orders"]
        assert sorted(o["client_order_id"] for o in today) == ["today-0", "today-1", "today-2"]
        with counted(worker, costs, "health"):
            await wc.call("health", {})
    await worker.close()
    return costs


async def test_reconciliation_and_order_reads_do_the_same_work_with_100_times_the_history(tmp_path: Path) -> None:
    short = await work_with_history(tmp_path, SHORT)
    long = await work_with_history(tmp_path, LONG)
    for what, (decoded, steps) in short.items():
        long_decoded, long_steps = long[what]
        assert long_decoded == decoded, (what, short, long)
        # An index is a little deeper in a bigger table; a scan would be ~100 times the steps.
        assert long_steps <= steps * 1.2 + 50, (what, short, long)
    assert short["reconcile"][0] <= 3 * 2   # today's orders (and what is open), not the history


async def test_the_simulated_counter_holds_today_and_what_is_open_not_its_whole_book(
    clock: ManualClock, tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    seed_history(home, LONG)
    worker = make_worker(CFG, home, clock)
    counter: Any = worker.broker.counter  # type: ignore[attr-defined]
    assert counter.orders == {} and counter.trades == []   # every seeded order is final and from before today
    assert await worker.broker.orders(ACCOUNT_ID) == [] and await worker.broker.trades(ACCOUNT_ID) == []
    await worker.close()
