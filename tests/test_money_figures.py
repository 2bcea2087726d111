"""Money as a reader sees it: P&L from the exact cost (not from a rounded price), fees itemized on
trades as in the preview, on both backends; and money written for people one way."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import BACKENDS, Session, SessionFactory, make_worker, open_session

from qmt_mcp.clock import ManualClock
from qmt_mcp.config import Config
from qmt_mcp.domain.errors import InvalidArgument
from qmt_mcp.domain.money import yuan_text

pytestmark = pytest.mark.anyio
HOLDING = {"accounts": {"sim": {"account_id": "88000001", "positions": {"600000.SH": 1000}}}}
XTQUANT = {"worker": {"backend": "xtquant"}, "xtquant": {"native": "sim"}}
FEN = Decimal("0.01")


def d(x: Any) -> Decimal:
    return Decimal(str(x))


@pytest.fixture(params=list(BACKENDS), ids=list(BACKENDS))
async def holder(request: pytest.FixtureRequest, session_with: SessionFactory) -> AsyncIterator[Session]:
    """A session on either backend whose paper account holds 1000 shares of 600000.SH from before today."""
    sections = {**HOLDING, **(XTQUANT if request.param == "xtquant" else {})}
    async with session_with(**sections) as s:
        yield s


async def test_unrealized_pnl_is_market_value_less_the_exact_cost_with_buy_fees(holder: Session) -> None:
    s = holder
    q = (await s.ok("get_quote", codes=["000001.SZ"]))["quotes"][0]
    # 500 shares on one level: the fees (5 yuan minimum commission, transfer fee) are not a whole
    # number of li per share, so a cost rebuilt from a rounded price is off by some fen.
    assert q["ask_volumes"][0] >= 500
    await s.ok("place_order", account="sim", code="000001.SZ", side="buy", volume=500, price=q["ask_prices"][0])
    trades = (await s.ok("get_trades", account="sim"))["trades"]
    paid = sum(d(t["amount"]) for t in trades)
    fees = sum(d(t["fees"]) for t in trades)
    pos = {p["code"]: p for p in (await s.ok("get_positions", account="sim"))["positions"]}["000001.SZ"]
    assert d(pos["avg_price"]) == (paid / 500).quantize(Decimal("0.001"))       # fees excluded
    assert d(pos["cost_basis"]) == paid + fees                                    # fees included, to the fen
    assert d(pos["cost_price"]) == ((paid + fees) / 500).quantize(Decimal("0.001"))
    assert d(pos["market_value"]) == (d(pos["last_price"]) * 500).quantize(FEN)
    assert d(pos["unrealized_pnl"]) == d(pos["market_value"]) - (paid + fees)
    # Held from before today at the previous close, with no fees: both prices are that close.
    seeded = {p["code"]: p for p in (await s.ok("get_positions", account="sim"))["positions"]}["600000.SH"]
    assert seeded["avg_price"] == seeded["cost_price"] and d(seeded["cost_basis"]) == d(seeded["avg_price"]) * 1000


async def test_a_sell_releases_cost_at_the_average_and_what_stays_is_exact_to_the_fen(
    session_with: SessionFactory,
) -> None:
    async with session_with() as s:
        q = (await s.ok("get_quote", codes=["000001.SZ"]))["quotes"][0]
        await s.ok("place_order", account="sim", code="000001.SZ", side="buy", volume=300, price=q["ask_prices"][4])
        before = (await s.ok("get_positions", account="sim"))["positions"][0]
        await s.advance(24 * 3600)   # T+1
        q = (await s.ok("get_quote", codes=["000001.SZ"]))["quotes"][0]
        await s.ok("place_order", account="sim", code="000001.SZ", side="sell", volume=100, price=q["bid_prices"][4])
        after = (await s.ok("get_positions", account="sim"))["positions"][0]
        cost = d(before["cost_basis"])
        assert d(after["cost_basis"]) == cost - (cost / 3).quantize(FEN)
        assert after["avg_price"] == before["avg_price"] and after["cost_price"] == before["cost_price"]


async def test_a_trade_itemizes_commission_stamp_duty_and_transfer_fee_like_the_preview(holder: Session) -> None:
    s = holder
    q = (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
    volume = min(1000, q["bid_volumes"][0] - q["bid_volumes"][0] % 100)   # one fill at the limit price
    order = {"account": "sim", "code": "600000.SH", "side": "sell", "volume": volume, "price": q["bid_prices"][0]}
    est = (await s.ok("preview_order", **order))["estimate"]
    await s.ok("place_order", **order, client_order_id="sell-1")
    [trade] = (await s.ok("get_trades", account="sim"))["trades"]
    items = ("commission", "stamp_duty", "transfer_fee")
    assert {k: d(trade[k]) for k in items} == {k: d(est[k]) for k in items}
    assert d(trade["stamp_duty"]) > 0 and d(trade["fees"]) == sum(d(est[k]) for k in items)
    assert trade["fee_detail"] == ("derived" if s.worker.broker.name == "xtquant" else "itemized")
    [event] = [e for e in (await s.ok("get_order_events", account="sim"))["events"] if e["type"] == "trade"]
    assert d(event["fees"]) == d(trade["fees"]) and d(event["commission"]) == d(trade["commission"])


def test_money_for_people_is_written_one_way() -> None:
    assert yuan_text(994884.95) == "994,884.95 yuan"
    assert yuan_text(Decimal("994884.950")) == "994,884.95 yuan"
    assert yuan_text(1425.0) == yuan_text(1425) == "1,425.00 yuan"
    assert yuan_text(Decimal("-10.045")) == "-10.05 yuan"   # half-up, as fees and limits round
    assert yuan_text(Decimal("-0.001")) == "0.00 yuan"
    with pytest.raises(InvalidArgument):
        yuan_text(float("nan"))


def test_the_demo_writes_money_one_way_and_leaves_no_temporary_dir(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    env.pop("QMT_MCP_CONFIG", None)
    res = subprocess.run([sys.executable, "-m", "qmt_mcp", "demo"], env=env, capture_output=True, text=True,
                         timeout=180, check=False)
    assert res.returncode == 0, res.stderr
    assert not list(tmp_path.glob("qmt-mcp-demo-*"))
    people = [line for line in res.stdout.splitlines() if line.startswith("  = ")]
    written = re.findall(r"(-?[\d.,]+) yuan", "\n".join(people))
    assert len(written) >= 8   # positions, asset, trades
    assert all(re.fullmatch(r"-?\d{1,3}(,\d{3})*\.\d{2}", w) for w in written), written


async def test_a_paper_book_from_before_itemized_fees_opens_with_its_fees_split(
    clock: ManualClock, tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    worker = make_worker(Config(), home, clock)
    async with open_session(worker, clock) as s:
        q = (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
        await s.ok("place_order", account="sim", code="600000.SH", side="buy", volume=500, price=q["ask_prices"][4])
        [was] = (await s.ok("get_trades", account="sim"))["trades"]
    await worker.close()
    # Rewrite the book as the previous version kept it: one fee total per trade and per order, no fill cost.
    db = sqlite3.connect(home / "sim.sqlite")
    with db:
        for table, key in (("trades", "seq"), ("orders", "order_id")):
            for rowid, data in db.execute(f"SELECT {key}, data FROM {table}").fetchall():  # noqa: S608 - ours
                r = json.loads(data)
                if table == "trades":
                    r["commission"] = str(Decimal(r["commission"]) + Decimal(r.pop("stamp_duty"))
                                          + Decimal(r.pop("transfer_fee")))
                    r.pop("fee_detail")
                else:
                    del r["commission_charged"], r["stamp_duty_charged"]
                db.execute(f"UPDATE {table} SET data=? WHERE {key}=?", (json.dumps(r), rowid))  # noqa: S608
        db.execute("ALTER TABLE positions DROP COLUMN fill_cost")
    db.close()
    worker = make_worker(Config(), home, clock)
    async with open_session(worker, clock) as s:
        [now] = (await s.ok("get_trades", account="sim"))["trades"]
        assert {k: now[k] for k in ("commission", "stamp_duty", "transfer_fee", "fees")} == {
            k: was[k] for k in ("commission", "stamp_duty", "transfer_fee", "fees")}
        assert now["fee_detail"] == "derived"
        [pos] = (await s.ok("get_positions", account="sim"))["positions"]
        # Only the cost basis was kept: it stands in for the fill cost too, and P&L stays exact.
        assert pos["avg_price"] == pos["cost_price"] and d(pos["cost_basis"]) == d(was["amount"]) + d(was["fees"])
    await worker.close()
