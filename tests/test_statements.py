"""Statements across days: a scripted week on the simulator (replayed prices, the exchange clock, the
default fees) checked figure by figure against a table worked out by hand below; the same week with a
real worker process in the middle; the days beyond retain_days folded with nothing changed; orders
and trades over a range; bad dates refused with a hint."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import Session, make_worker, on_backend, open_session
from workerproc import WorkerProcess

from qmt_mcp.clock import ManualClock
from qmt_mcp.domain.events import TradeEvent
from qmt_mcp.domain.orders import Side, parse_order_request
from qmt_mcp.domain.timeutil import CN_TZ

pytestmark = pytest.mark.anyio
MON, TUE, WED, THU, FRI = (date(2026, 11, d) for d in (16, 17, 18, 19, 20))
A, B = "600000.SH", "000001.SZ"

# The week's prices: (last at 09:30:03, close at 15:00). Book: bid1 = last, ask1 = last + 0.01, deep.
PRICES = {
    A: {MON: ("10.00", "10.20"), TUE: ("10.30", "10.40"), WED: ("10.30", "10.10"), THU: ("10.50", "10.60"),
        FRI: ("10.60", "10.60")},
    B: {MON: ("12.00", "12.00"), TUE: ("12.00", "11.90"), WED: ("12.00", "12.10"), THU: ("12.30", "12.40"),
        FRI: ("12.20", "12.00")},
}
# What is done each day at 10:00: (client_order_id, code, side, volume), buys at the ask, sells at the bid.
SCRIPT = {
    MON: [("mon-a", A, "buy", 1000)],                              # A 1000 @ 10.01
    TUE: [("tue-a", A, "sell", 400), ("tue-b", B, "buy", 2000)],   # A 400 @ 10.30, B 2000 @ 12.01
    WED: [],                                                       # a day without trades
    THU: [("thu-a", A, "sell", 600), ("thu-b", B, "sell", 500)],   # A 600 @ 10.50 (all), B 500 @ 12.30
    FRI: [("fri-b", B, "buy", 300)],                               # B 300 @ 12.21
}
# Worked out by hand. Fees: commission 0.025% min 5.00, transfer fee 0.001%, stamp duty 0.05% on sells,
# each rounded half-up to the fen. Cost includes fees; a sell releases round_fen(cost × sold / held).
#   Mon buy A 10010.00: commission 5.00 (2.50 < 5), transfer 0.10 -> cost A 10015.10; cash 989984.90
#   Tue sell A 4120.00: 5.00 + stamp 2.06 + transfer 0.04 = 7.10, net 4112.90; releases 10015.10*400/1000
#       = 4006.04 -> realized 106.86, A 600 cost 6009.06. Buy B 24020.00: commission 6.01 (6.005 half-up),
#       transfer 0.24 -> cost B 24026.25. Cash 989984.90 + 4112.90 - 24026.25 = 970071.55
#   Thu sell A 6300.00: 5.00 + 3.15 + 0.06 = 8.21, net 6291.79, releases all 6009.06 -> realized 282.73.
#       Sell B 6150.00: 5.00 + 3.08 (3.075 half-up) + 0.06 = 8.14, net 6141.86; releases 24026.25*500/2000
#       = 6006.56 (6006.5625) -> realized 135.30, B 1500 cost 18019.69. Cash 982505.20
#   Fri buy B 3663.00: 5.00 + 0.04 = 5.04 -> B 1800 cost 21687.73. Cash 978837.16
# Each day: (opening, closing, cash, market value, realized, unrealized, commission, stamp duty,
# transfer fee, fees, turnover, trades); and before fees: (realized, unrealized), fill prices only.
TABLE = {
    MON: ("1000000.00", "1000184.90", "989984.90", "10200.00", "0.00", "184.90",
          "5.00", "0.00", "0.10", "5.10", "10010.00", 1, ("0.00", "190.00")),
    TUE: ("1000184.90", "1000111.55", "970071.55", "30040.00", "106.86", "4.69",      # A 230.94, B -226.25
          "11.01", "2.06", "0.28", "13.35", "28140.00", 2, ("116.00", "14.00")),
    WED: ("1000111.55", "1000331.55", "970071.55", "30260.00", "0.00", "224.69",      # A 50.94, B 173.75
          "0.00", "0.00", "0.00", "0.00", "0.00", 0, ("0.00", "234.00")),
    THU: ("1000331.55", "1001105.20", "982505.20", "18600.00", "418.03", "580.31",
          "10.00", "6.23", "0.12", "16.35", "12450.00", 2, ("439.00", "585.00")),
    FRI: ("1001105.20", "1000437.16", "978837.16", "21600.00", "0.00", "-87.73",
          "5.00", "0.00", "0.04", "5.04", "3663.00", 1, ("0.00", "-78.00")),
}
TOTALS = {"days": 5, "opening_total_asset": "1000000.00", "closing_total_asset": "1000437.16",
          "realized_pnl": "524.89", "unrealized_pnl": "-87.73", "pnl": "437.16",
          "fees": {"commission": "31.01", "stamp_duty": "8.29", "transfer_fee": "0.54", "total": "39.84"},
          "turnover": "54263.00", "trades": 6}
PNL = [
    {"code": B, "bought": "27683.00", "bought_volume": 2300, "sold": "6150.00", "sold_volume": 500,
     "realized_pnl": "135.30", "fees": {"commission": "16.01", "stamp_duty": "3.08", "transfer_fee": "0.34",
                                        "total": "19.43"},
     "position": 1800, "cost_price": "12.049", "cost_basis": "21687.73", "price": "12.000",
     "market_value": "21600.00", "unrealized_pnl": "-87.73"},
    {"code": A, "bought": "10010.00", "bought_volume": 1000, "sold": "10420.00", "sold_volume": 1000,
     "realized_pnl": "389.59", "fees": {"commission": "15.00", "stamp_duty": "5.21", "transfer_fee": "0.20",
                                        "total": "20.41"},
     "position": 0, "cost_price": "0.000", "cost_basis": "0.00", "price": "0.000", "market_value": "0.00",
     "unrealized_pnl": "0.00"},
]


def expected_day(d: date) -> dict[str, Any]:
    o, c, cash, mv, real, unreal, comm, stamp, transfer, fees, turnover, trades, _ = TABLE[d]
    prev = [k for k in TABLE if k < d]
    opening_unrealized = TABLE[prev[-1]][5] if prev else "0.00"
    return {"date": d.isoformat(), "opening_total_asset": o, "closing_total_asset": c, "cash": cash,
            "market_value": mv, "realized_pnl": real, "unrealized_pnl": unreal,
            "opening_unrealized_pnl": opening_unrealized, "pnl": str(Decimal(c) - Decimal(o)),
            "fees": {"commission": comm, "stamp_duty": stamp, "transfer_fee": transfer, "total": fees},
            "turnover": turnover, "trades": trades}


def write_replay(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    head = "time,last,volume,amount,bid1,bid1_volume,ask1,ask1_volume\n"
    for code, days in PRICES.items():
        rows = []
        for d, (last, close) in days.items():
            for at, price, vol in (("09:30:03", last, 1000), ("15:00:00", close, 2000)):
                p = Decimal(price)
                rows.append(f"{d.isoformat()} {at},{p},{vol},{p * vol},{p},500000,{p + Decimal('0.01')},500000\n")
        (folder / f"{code}.csv").write_text(head + "".join(rows), encoding="utf-8")
    return folder


def sections(replay: Path, **worker: Any) -> dict[str, Any]:
    return {"sim": {"replay_dir": str(replay), "clock": "exchange"}, "risk": {"enabled": False},
            "worker": worker}


def at(d: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(d, time(hh, mm), CN_TZ)


@asynccontextmanager
async def week_session(home: Path, clock: ManualClock, backend: str = "sim", **worker: Any) -> AsyncIterator[Session]:
    w = make_worker(on_backend(backend, sections(home.parent / "replay", **worker)), home, clock)
    try:
        async with open_session(w, clock) as s:
            yield s
    finally:
        await w.close()


async def trade_day(s: Session, d: date, seen_first: bool = True) -> None:
    """The day's script at 10:00, then past the close; every order fills at once. `seen_first`: the
    worker ticks before the orders (the day's first sight); else its first sight is after them."""
    if seen_first:
        s.clock.set(at(d, 9, 0))
        await s.worker.service.tick()   # the day's first sight: yesterday closes, today opens
    s.clock.set(at(d, 10, 0))
    if seen_first:
        await s.worker.service.tick()
    else:
        await s.worker.broker.poll()    # the counter's day rolls (T+1 unlocks); the worker's history sees nothing
    for cid, code, side, volume in SCRIPT[d]:
        q = (await s.ok("get_quote", codes=[code]))["quotes"][0]
        price = q["ask_prices"][0] if side == "buy" else q["bid_prices"][0]
        order = (await s.ok("place_order", account="sim", code=code, side=side, volume=volume, price=price,
                            client_order_id=cid))["order"]
        assert order["status"] == "succeeded", order
    s.clock.set(at(d, 15, 30))
    await s.worker.service.tick()


async def check_week(s: Session) -> None:
    got = await s.ok("get_statement", account="sim", start="20261116", end="20261120")
    assert got["days"] == [expected_day(d) for d in TABLE]
    assert got["totals"] == TOTALS
    pnl = await s.ok("get_pnl", account="sim", start="20261116", end="2026-11-20")
    assert pnl["codes"] == sorted(PNL, key=lambda x: x["code"])
    only_b = await s.ok("get_pnl", account="sim", start="20261116", end="20261120", code="000001")
    assert only_b["codes"] == [PNL[0]]


def test_the_hand_table_adds_up_both_ways() -> None:
    """closing - opening = realized + Δunrealized (fees inside cost and proceeds), and = realized +
    Δunrealized - fees with both taken before fees; the table above is checked against itself here, the
    tool against the table below."""
    prev_unreal, prev_gross = Decimal(0), Decimal(0)
    for row in TABLE.values():
        o, c, real, unreal, fees, (g_real, g_unreal) = (Decimal(row[0]), Decimal(row[1]), Decimal(row[4]),
                                                        Decimal(row[5]), Decimal(row[9]), row[12])
        assert c - o == real + unreal - prev_unreal
        assert c - o == Decimal(g_real) + Decimal(g_unreal) - prev_gross - fees
        prev_unreal, prev_gross = unreal, Decimal(g_unreal)


@pytest.mark.parametrize("seen_first", [True, False], ids=["seen-before-orders", "seen-after-orders"])
async def test_a_scripted_week_statement_and_pnl_match_the_hand_table(tmp_path: Path, seen_first: bool) -> None:
    """Each day seen first before its orders, or only after them (its fills are undone to open it)."""
    clock = ManualClock(at(MON, 9))   # the worker is made on Monday morning, as the week starts
    write_replay(tmp_path / "replay")
    async with week_session(tmp_path / "home", clock) as s:
        for d in TABLE:
            await trade_day(s, d, seen_first)
        await check_week(s)
        for d in TABLE:   # each day's closing - opening is what it earned
            day = expected_day(d)
            assert Decimal(day["pnl"]) == (Decimal(day["realized_pnl"]) + Decimal(day["unrealized_pnl"])
                                           - Decimal(day["opening_unrealized_pnl"]))
        # One day's statement: the default range is today; the text carries it as a table.
        res = await s.client.call_tool("get_statement", {"account": "sim"})
        assert res.structured_content is not None and res.structured_content["days"] == [expected_day(FRI)]
        text = res.content[0].text   # type: ignore[union-attr]
        assert "Statement of sim, 2026-11-20 to 2026-11-20" in text and "1000437.16" in text.splitlines()[3]
        # The resource is the same day's statement.
        read = await s.client.read_resource("qmt://accounts/sim/statement/20261117")
        body = json.loads(read.contents[0].text)   # type: ignore[union-attr]
        assert body["days"] == [expected_day(TUE)]
        health = (await s.ok("health"))["worker"]["journal"]
        assert health["oldest_day"] == "2026-11-16" and health["oldest_detail_day"] == "2026-11-16"
        assert health["size_bytes"] > 0 and health["retain_days"] == 400


async def test_the_week_is_the_same_on_the_xtquant_backend(tmp_path: Path) -> None:
    """xtquant's own layer over the simulated counter: its fills report one fee total, itemized here."""
    clock = ManualClock(at(MON, 9))
    write_replay(tmp_path / "replay")
    async with week_session(tmp_path / "home", clock, backend="xtquant") as s:
        for d in TABLE:
            await trade_day(s, d)
        await check_week(s)


async def test_a_restart_in_the_middle_of_the_week_changes_nothing(tmp_path: Path) -> None:
    """Mon-Tue in this process, Wednesday's first sight by a real `qmt-mcp worker` process on the
    same state dir, the rest in this process again: the same statement, figure by figure."""
    replay = write_replay(tmp_path / "replay")
    home = tmp_path / "home"
    clock = ManualClock(at(MON, 9))
    async with week_session(home, clock) as s:
        for d in (MON, TUE):
            await trade_day(s, d)
    # Before Wednesday's open the replayed market stands still; the process's clock barely moves.
    (home / "config.toml").write_text(
        f'[sim]\nreplay_dir = "{replay.as_posix()}"\nclock = "exchange"\nstart_at = "2026-11-18T09:00:00+08:00"\n'
        'speed = 0.01\n[risk]\nenabled = false\n', encoding="utf-8")
    proc = WorkerProcess(home, 1)
    try:
        await proc.ready()
        got = await proc.client.call("get_statement", {"account": "sim", "start": "20261116", "end": "20261118"})
        assert got["days"][:2] == [expected_day(MON), expected_day(TUE)]
        assert got["days"][2]["opening_total_asset"] == TABLE[WED][0]
        orders = await proc.client.call("get_orders", {"account": "sim", "start": "20261116", "end": "20261117"})
        assert [o["client_order_id"] for o in orders["orders"]] == ["mon-a", "tue-a", "tue-b"]
    finally:
        await proc.stop()
    (home / "config.toml").unlink()
    clock.set(at(WED, 10))
    async with week_session(home, clock) as s:
        for d in (WED, THU, FRI):
            await trade_day(s, d)
        await check_week(s)


async def test_days_beyond_retain_days_are_folded_and_nothing_changes(tmp_path: Path) -> None:
    clock = ManualClock(at(MON, 9))   # the worker is made on Monday morning, as the week starts
    write_replay(tmp_path / "replay")
    home = tmp_path / "home"
    async with week_session(home, clock) as s:
        for d in TABLE:
            await trade_day(s, d)
        assert len((await s.ok("get_trades", account="sim", start="20261116", end="20261116"))["trades"]) == 1
        before = s.worker.journal.query("SELECT COUNT(*) FROM events", ())[0][0]
    # The same state dir with two days of detail: Monday and Tuesday go into summaries.
    async with week_session(home, clock, retain_days=2) as s:
        await s.worker.service.tick()
        await check_week(s)
        journal = (await s.ok("health"))["worker"]["journal"]
        assert journal["oldest_day"] == "2026-11-16" and journal["oldest_detail_day"] == "2026-11-18"
        assert (await s.ok("get_trades", account="sim", start="20261116", end="20261117"))["trades"] == []
        assert (await s.ok("get_orders", account="sim", start="20261116", end="20261117"))["orders"] == []
        thu = (await s.ok("get_orders", account="sim", start="20261119", end="20261119"))["orders"]
        assert [o["client_order_id"] for o in thu] == ["thu-a", "thu-b"]
        after = s.worker.journal.query("SELECT COUNT(*) FROM events", ())[0][0]
        assert after < before


async def test_a_client_order_id_of_a_folded_day_is_free_again_in_the_running_worker(tmp_path: Path) -> None:
    # Folding deletes the finished orders of the days it folds; the worker that folded them must not
    # still answer an old id from the records it keeps decoded (as a replay of Monday's order).
    clock = ManualClock(at(MON, 9))
    write_replay(tmp_path / "replay")
    async with week_session(tmp_path / "home", clock, retain_days=2) as s:
        for d in TABLE:
            await trade_day(s, d)
        assert (await s.ok("get_orders", account="sim", start="20261116", end="20261116"))["orders"] == []
        s.clock.set(at(FRI, 10, 30))
        q = (await s.ok("get_quote", codes=[A]))["quotes"][0]
        again = await s.ok("place_order", account="sim", code=A, side="buy", volume=100, price=q["ask_prices"][0],
                           client_order_id="mon-a")
        assert again["idempotent_replay"] is False and again["order"]["time"].startswith("2026-11-20")


async def test_orders_and_trades_over_a_range_through_the_client(tmp_path: Path) -> None:
    clock = ManualClock(at(MON, 9))   # the worker is made on Monday morning, as the week starts
    write_replay(tmp_path / "replay")
    async with week_session(tmp_path / "home", clock) as s:
        for d in (MON, TUE, WED, THU):
            await trade_day(s, d)
        week = await s.ok("get_trades", account="sim", start="20261116", end="20261119")
        assert [(t["client_order_id"], t["price"], t["volume"]) for t in week["trades"]] == [
            ("mon-a", 10.01, 1000), ("tue-a", 10.3, 400), ("tue-b", 12.01, 2000), ("thu-a", 10.5, 600),
            ("thu-b", 12.3, 500)]
        assert week["trades"][1]["stamp_duty"] == 2.06 and week["trades"][1]["fees"] == 7.1
        today = await s.ok("get_trades", account="sim", start="20261119", end="20261119")
        assert [t["client_order_id"] for t in today["trades"]] == ["thu-a", "thu-b"]   # today's: the broker's
        orders = await s.ok("get_orders", account="sim", start="20261117", end="20261118")
        assert [o["client_order_id"] for o in orders["orders"]] == ["tue-a", "tue-b"]
        no_range = await s.ok("get_orders", account="sim")
        assert [o["client_order_id"] for o in no_range["orders"]] == ["thu-a", "thu-b"]
        assert (await s.ok("get_orders", account="sim", start="20261118", end="20261118"))["orders"] == []


async def test_an_order_placed_by_hand_is_in_the_history(tmp_path: Path) -> None:
    """Typed at the counter, not through us: imported as external from its pushes, and counted."""
    clock = ManualClock(at(MON, 9))
    write_replay(tmp_path / "replay")
    async with week_session(tmp_path / "home", clock) as s:
        await trade_day(s, MON)
        s.clock.set(at(MON, 10, 30))
        req = parse_order_request({"account": "sim", "code": A, "side": "buy", "volume": 100, "price": "10.01"})
        inst = s.worker.broker.market.instrument(A, MON)   # type: ignore[attr-defined]
        oid = s.counter.place("88000001", req, inst, "")
        await trade_day(s, TUE)
        orders = (await s.ok("get_orders", account="sim", start="20261116", end="20261116"))["orders"]
        assert [(o["client_order_id"], o["status"]) for o in orders] == [("mon-a", "succeeded"),
                                                                         (f"ext-{oid}", "succeeded")]
        trades = (await s.ok("get_trades", account="sim", start="20261116", end="20261116"))["trades"]
        assert [(t["client_order_id"], t["volume"], t["fees"]) for t in trades] == [
            ("mon-a", 1000, 5.1), (f"ext-{oid}", 100, 5.01)]   # 1001.00: commission 5.00, transfer 0.01
        mon = (await s.ok("get_statement", account="sim", start="20261116", end="20261116"))["days"][0]
        assert (mon["trades"], mon["turnover"], mon["fees"]["total"]) == (2, "11011.00", "10.11")
        # 1100 shares at cost 10015.10 + 1006.01; the close 10.20: 11220.00 - 11021.11
        assert (mon["cash"], mon["unrealized_pnl"]) == ("988978.89", "198.89")


async def test_a_fill_journaled_late_for_an_earlier_day_is_counted_there(tmp_path: Path) -> None:
    """Closed days are computed once and kept; a trade that lands in one afterwards is not missed."""
    clock = ManualClock(at(MON, 9))
    write_replay(tmp_path / "replay")
    async with week_session(tmp_path / "home", clock) as s:
        for d in (MON, TUE, WED):
            await trade_day(s, d)
        args = {"account": "sim", "start": "20261116", "end": "20261118"}
        assert [d["trades"] for d in (await s.ok("get_statement", **args))["days"]] == [1, 2, 0]
        s.worker.journal.append(TradeEvent(
            account="sim", order_id=1, client_order_id="late-1", code=B, side=Side.BUY, trade_id="late-1",
            price=Decimal("12.01"), volume=100, amount=Decimal("1201.00"), commission=Decimal(5),
            stamp_duty=Decimal(0), transfer_fee=Decimal("0.01"), fees=Decimal("5.01"), fee_detail="itemized"),
            at(TUE, 14))
        tue = (await s.ok("get_statement", **args))["days"][1]
        assert (tue["trades"], tue["turnover"], tue["fees"]["total"]) == (3, "29341.00", "18.36")


@pytest.mark.parametrize(("args", "argument"), [
    ({"start": "2026-13-01"}, "start"), ({"end": "yesterday"}, "end"),
    ({"start": "20261120", "end": "20261116"}, "end"), ({"start": "2026111"}, "start"),
])
async def test_bad_dates_are_refused_with_a_hint(session: Session, args: dict[str, str], argument: str) -> None:
    for tool in ("get_statement", "get_pnl", "get_orders", "get_trades"):
        err = await session.error(tool, account="sim", **args)
        assert err["code"] == "INVALID_ARGUMENT", (tool, err)
        assert err["details"]["argument"] == argument and "YYYYMMDD" in err["hint"], (tool, err)

