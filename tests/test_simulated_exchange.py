"""The simulated counter as an exchange member sees it: call auctions, cancel windows, the day end,
T+0 funds, the held out-of-cage order and every market order type, driven by an injected clock."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from qmt_mcp.backends.port import BrokerEvent, CancelFailed, OrderFailed, OrderUpdated, TradeFilled
from qmt_mcp.backends.sim.broker import SimBroker
from qmt_mcp.backends.sim.paper import PaperAccount, SimOrder
from qmt_mcp.backends.sim.store import SimStore
from qmt_mcp.backends.xtq.constants import xt_price_type
from qmt_mcp.clock import ManualClock
from qmt_mcp.domain.codes import Board
from qmt_mcp.domain.errors import BrokerReject, ErrorCode, NotCancelable
from qmt_mcp.domain.fees import FeeSchedule
from qmt_mcp.domain.instruments import price_cage
from qmt_mcp.domain.market import Quote
from qmt_mcp.domain.money import round_fen
from qmt_mcp.domain.orders import MarketType, OrderRequest, OrderType, Side, parse_order_request
from qmt_mcp.domain.status import OrderStatus
from qmt_mcp.domain.timeutil import CN_TZ

FRIDAY = date(2026, 11, 20)
rule = pytest.mark.rule
S = OrderStatus


def at(hh: int, mm: int, ss: int = 0, day: date = FRIDAY) -> datetime:
    return datetime.combine(day, time(hh, mm, ss), CN_TZ)


class Sim:
    def __init__(self, start: datetime, mode: str = "exchange", positions: dict[str, int] | None = None) -> None:
        self.clock = ManualClock(start)
        self.broker = SimBroker(seed=42, clock=self.clock, fees=FeeSchedule(), state_path=None, clock_mode=mode,
                                accounts={"A": PaperAccount(Decimal(1_000_000), positions or {})})
        self.events: list[BrokerEvent] = []
        self.broker.set_sink(self.events.extend)
        self.counter = self.broker.counter

    def quote(self, code: str) -> Quote:
        return self.broker.market.quote(code, self.clock.now())

    def place(self, code: str, side: str, volume: int, price: Any = None, **kw: Any) -> SimOrder:
        args = {"account": "sim", "code": code, "side": side, "volume": volume, **kw}
        if price is not None:
            args["price"] = str(price)
        req = parse_order_request(args)
        inst = self.broker.market.instrument(code, self.broker.session_day())
        oid = self.counter.place("A", req, inst, f"r{len(self.counter.orders)}")
        return self.counter.orders[oid]

    def go(self, when: datetime) -> None:
        self.clock.set(when)
        self.counter.poll()

    def trades(self, o: SimOrder) -> list[TradeFilled]:
        return [e for e in self.events if isinstance(e, TradeFilled) and e.trade.order_id == o.order_id]

    def statuses(self, o: SimOrder) -> list[OrderStatus]:
        return [e.order.status for e in self.events
                if isinstance(e, OrderUpdated) and e.order.order_id == o.order_id]


# ----- call auctions and cancel windows


@rule("OPENING_AUCTION_ONE_PRICE")
def test_opening_auction_orders_trade_at_one_price_at_0925() -> None:
    sim = Sim(at(9, 16), positions={"600000.SH": 5000})
    inst = sim.broker.market.instrument("600000.SH", FRIDAY)
    assert inst.up_limit is not None and inst.down_limit is not None
    buy = sim.place("600000.SH", "buy", 1000, inst.up_limit)
    sell = sim.place("600000.SH", "sell", 1000, inst.down_limit)
    low = sim.place("600000.SH", "buy", 100, inst.down_limit)
    assert (buy.status, sell.status, buy.traded_volume) == (S.REPORTED, S.REPORTED, 0)   # resting in the auction
    sim.go(at(9, 24, 59))
    assert buy.traded_volume == 0
    sim.go(at(9, 25))
    open_price = sim.quote("600000.SH").last
    prices = {t.trade.price for t in sim.trades(buy) + sim.trades(sell)}
    assert prices == {open_price} == {sim.broker.market.day_bar("600000.SH", FRIDAY).open}
    assert (buy.status, sell.status, low.status) == (S.SUCCEEDED, S.SUCCEEDED, S.REPORTED)
    assert sim.statuses(buy) == [S.UNREPORTED, S.REPORTED, S.SUCCEEDED]
    sim.go(at(9, 29))   # 09:25–09:30 nothing matches
    assert low.status is S.REPORTED


@rule("CLOSING_AUCTION_ONE_PRICE")
def test_closing_auction_trades_resting_and_new_orders_at_the_close() -> None:
    sim = Sim(at(14, 50), positions={"600000.SH": 5000})
    q = sim.quote("600000.SH")
    assert q.down_limit is not None and q.up_limit is not None
    resting = sim.place("600000.SH", "sell", 500, q.asks[-1].price)  # above the market: rests
    sim.go(at(14, 58))
    late = sim.place("600000.SH", "buy", 800, q.up_limit)
    assert late.status is S.REPORTED and late.traded_volume == 0                # the auction does not match at once
    sim.go(at(14, 59, 59))
    assert late.traded_volume == 0
    sim.go(at(15, 0))
    close = sim.broker.market.day_bar("600000.SH", FRIDAY).close
    assert {t.trade.price for t in sim.trades(late)} == {close}
    if close >= resting.limit:
        assert {t.trade.price for t in sim.trades(resting)} == {close}
    assert late.status is S.SUCCEEDED


@rule("NO_CANCEL_0920_0925")
def test_cancels_are_refused_from_0920_to_0925_and_taken_before() -> None:
    sim = Sim(at(9, 16))
    pre = sim.broker.market.instrument("600000.SH", FRIDAY).pre_close
    early = sim.place("600000.SH", "buy", 100, pre - Decimal("0.20"))
    sim.counter.cancel("A", early.order_id)
    assert early.status is S.CANCELED
    sim.go(at(9, 21))
    later = sim.place("600000.SH", "buy", 100, pre - Decimal("0.20"))
    with pytest.raises(NotCancelable):
        sim.counter.cancel("A", later.order_id)
    assert later.status is S.REPORTED
    assert isinstance(sim.events[-1], CancelFailed) and sim.events[-1].order_id == later.order_id
    sim.go(at(9, 26))
    sim.counter.cancel("A", later.order_id)
    assert later.status is S.CANCELED


@rule("NO_CANCEL_CLOSING_AUCTION")
def test_cancels_are_refused_in_the_closing_auction() -> None:
    sim = Sim(at(14, 50))
    o = sim.place("600000.SH", "buy", 100, sim.quote("600000.SH").bids[-1].price)
    sim.go(at(14, 57, 30))
    with pytest.raises(NotCancelable):
        sim.counter.cancel("A", o.order_id)


@rule("DAY_END_EXPIRES_ORDERS")
@pytest.mark.parametrize("mode", ["exchange", "continuous"])
def test_orders_open_at_the_day_end_expire(mode: str) -> None:
    sim = Sim(at(10, 0), mode=mode)
    q = sim.quote("600000.SH")
    assert q.down_limit is not None
    o = sim.place("600000.SH", "buy", 100, q.down_limit + Decimal("0.01") if mode == "continuous" else
                  q.bids[-1].price)
    sim.go(at(15, 0) if mode == "exchange" else at(0, 0, 1, FRIDAY + timedelta(days=1)))
    if o.traded_volume == 0:
        assert o.status is S.CANCELED and o.status_msg == "expired at day end"


@rule("CLOSED_OUTSIDE_SESSIONS", "LUNCH_BREAK_CLOSED", "HOLIDAYS_CLOSED")
def test_the_counter_refuses_orders_when_the_exchange_is_closed() -> None:
    for when in (at(9, 0), at(12, 0), at(15, 1), at(10, 0, day=date(2026, 10, 5))):
        sim = Sim(when)
        o = sim.place("600000.SH", "buy", 100, "10.00")
        assert o.status is S.JUNK and "非交易时间" in o.status_msg
        assert any(isinstance(e, OrderFailed) and e.order_id == o.order_id for e in sim.events)


# ----- settlement


@rule("T_PLUS_0_FUNDS")
def test_a_t0_fund_can_be_sold_the_day_it_is_bought_and_a_t1_fund_cannot() -> None:
    sim = Sim(at(10, 0), mode="continuous")
    for code, sold in (("518880.SH", S.SUCCEEDED), ("510300.SH", S.JUNK)):
        ask = sim.quote(code).asks[0]
        buy = sim.place(code, "buy", 100, ask.price)
        assert buy.status is S.SUCCEEDED
        sell = sim.place(code, "sell", 100, sim.quote(code).bids[0].price)
        assert sell.status is sold, code


# ----- the price cage at the counter


@rule("PRICE_CAGE_MAIN_CHINEXT")
def test_an_out_of_cage_limit_order_is_held_unmatched_at_the_counter() -> None:
    sim = Sim(at(10, 0), mode="continuous")
    q = sim.quote("000001.SZ")
    assert q.up_limit is not None
    held = sim.place("000001.SZ", "buy", 100, q.up_limit)   # beyond max(102%, +10 ticks) of the best ask
    assert held.status is S.REPORTED and held.traded_volume == 0
    for minute in range(1, 6):
        sim.go(at(10, minute))
        ceiling = price_cage(Board.SZ_MAIN, True, sim.quote("000001.SZ").asks[0].price, Decimal("0.01"), FRIDAY)
        assert ceiling is not None and ceiling < q.up_limit
        assert held.traded_volume == 0 and held.status is S.REPORTED


# ----- market order types


def _book_total(q: Quote) -> int:
    return sum(lv.volume for lv in q.asks)


def price_type(o: SimOrder) -> int:
    """The order as xtquant numbers it: the counter keeps the domain's order and market type."""
    return xt_price_type(o.order_type, o.market_type, o.code)


@rule("MARKET_BEST5_LIMIT")
def test_sh_best5_then_limit_rests_the_remainder_at_the_last_fill_price() -> None:
    sim = Sim(at(10, 0), mode="continuous")
    q = sim.quote("600000.SH")
    o = sim.place("600000.SH", "buy", _book_total(q) + 1000, q.up_limit, order_type="market",
                  market_type="best5_limit")
    assert price_type(o) == 43 and o.traded_volume == _book_total(q)
    assert o.status is S.PART_SUCC and o.limit == q.asks[-1].price


@rule("MARKET_PROTECTIVE_PRICE", "MARKET_BEST5_CANCEL")
def test_sh_market_order_trades_no_worse_than_its_protective_price() -> None:
    sim = Sim(at(10, 0), mode="continuous")
    q = sim.quote("600000.SH")
    o = sim.place("600000.SH", "buy", _book_total(q), q.asks[1].price, order_type="market")
    assert price_type(o) == 42
    assert {t.trade.price for t in sim.trades(o)} <= {q.asks[0].price, q.asks[1].price}
    assert o.traded_volume == q.asks[0].volume + q.asks[1].volume and o.status is S.PART_CANCEL
    unbounded = sim.place("600000.SH", "buy", 100, None, order_type="market")
    assert unbounded.limit == q.up_limit


@rule("MARKET_COUNTERPARTY_BEST")
def test_counterparty_best_takes_the_opposite_best_and_is_refused_without_one() -> None:
    sim = Sim(at(10, 0), mode="continuous")
    q = sim.quote("000001.SZ")
    o = sim.place("000001.SZ", "buy", 100, None, order_type="market", market_type="counterparty_best")
    assert price_type(o) == 44 and o.status is S.SUCCEEDED and sim.trades(o)[0].trade.price == q.asks[0].price
    sealed = _sealed_limit_up(sim)
    refused = sim.place("002888.SZ", "buy", 100, None, order_type="market", market_type="counterparty_best")
    assert sealed and refused.status is S.JUNK


@rule("MARKET_OWN_BEST")
def test_own_best_joins_the_own_side_and_is_refused_without_one() -> None:
    sim = Sim(at(10, 0), mode="continuous", positions={"002888.SZ": 1000})
    q = sim.quote("000001.SZ")
    o = sim.place("000001.SZ", "buy", 100, None, order_type="market", market_type="own_best")
    assert price_type(o) == 45 and o.status is S.REPORTED and o.limit == q.bids[0].price
    assert _sealed_limit_up(sim)
    refused = sim.place("002888.SZ", "sell", 100, None, order_type="market", market_type="own_best")
    assert refused.status is S.JUNK   # at the up limit nobody offers: the seller's own side is empty


@rule("MARKET_SZ_IOC")
def test_sz_ioc_takes_every_level_it_reaches_and_cancels_the_rest() -> None:
    sim = Sim(at(10, 0), mode="continuous")
    q = sim.quote("000001.SZ")
    o = sim.place("000001.SZ", "buy", _book_total(q) + 500, None, order_type="market", market_type="ioc")
    assert price_type(o) == 46 and o.traded_volume == _book_total(q) and o.status is S.PART_CANCEL


@rule("MARKET_SZ_FOK")
def test_sz_fok_fills_whole_or_not_at_all() -> None:
    sim = Sim(at(10, 0), mode="continuous")
    q = sim.quote("000001.SZ")
    whole = sim.place("000001.SZ", "buy", q.asks[0].volume, None, order_type="market", market_type="fok")
    assert price_type(whole) == 48 and whole.status is S.SUCCEEDED
    sim.go(at(10, 0, 3))
    q = sim.quote("000001.SZ")
    none = sim.place("000001.SZ", "buy", _book_total(q) + 100, None, order_type="market", market_type="fok")
    assert none.traded_volume == 0 and none.status is S.CANCELED


def _sealed_limit_up(sim: Sim) -> bool:
    """Move the clock to the afternoon of a day 002888.SZ closes sealed at its up limit."""
    market = sim.broker.market
    for back in range(10):
        d = FRIDAY - timedelta(days=back)
        if market.day_bar("002888.SZ", d).close == market.instrument("002888.SZ", d).up_limit:
            sim.go(at(20, 0, day=d))
            q = sim.quote("002888.SZ")
            return q.asks == () and q.last == q.up_limit
    return False


# ----- ST limits each side of the change, in the simulated data


@rule("LIMIT_ST_MAIN_5", "LIMIT_ST_MAIN_10")
def test_the_simulated_st_stock_moves_5_percent_before_2026_07_06_and_10_from_then() -> None:
    sim = Sim(at(10, 0, day=date(2026, 7, 3)))
    before = sim.broker.market.instrument("600898.SH", date(2026, 7, 3))
    after = sim.broker.market.instrument("600898.SH", date(2026, 7, 6))
    assert before.st and before.up_limit == (before.pre_close * Decimal("1.05")).quantize(Decimal("0.01"))
    assert after.up_limit == (after.pre_close * Decimal("1.10")).quantize(Decimal("0.01"))



def test_a_market_type_the_exchange_lacks_is_refused_before_it_reaches_the_book() -> None:
    sim = Sim(at(10, 0), mode="continuous")
    req = OrderRequest("", "000001.SZ", Side.BUY, 100, OrderType.MARKET, None, MarketType.BEST5_LIMIT)
    inst = sim.broker.market.instrument("000001.SZ", FRIDAY)
    with pytest.raises(BrokerReject) as refused:
        sim.counter.place("A", req, inst, "by-hand")   # typed at the counter: no parser refused it first
    assert refused.value.code is ErrorCode.ORDER_TYPE_UNSUPPORTED
    assert sim.counter.orders == {} and sim.events == []


# ----- the book


def test_a_book_written_with_xtquant_codes_opens_with_its_orders_read_in_the_domains_terms(tmp_path: Path) -> None:
    """The counter once kept xtquant's price type and status code in its book; such a book still opens,
    an order it left open is found (by its old code) and expires at the day end like any other, and
    what is written back is in the domain's terms."""
    clock = ManualClock(at(10, 0))
    path = tmp_path / "sim.sqlite"

    def open_book() -> SimBroker:
        return SimBroker(seed=42, clock=clock, fees=FeeSchedule(), state_path=path, clock_mode="continuous",
                         accounts={"A": PaperAccount(Decimal(1_000_000))})

    first = open_book()
    q = first.market.quote("600000.SH", clock.now())
    req = parse_order_request({"account": "sim", "code": "600000.SH", "side": "buy", "volume": 100,
                               "price": str(q.bids[-1].price - Decimal("0.05"))})
    oid = first.counter.place("A", req, first.market.instrument("600000.SH", FRIDAY), "old")
    assert first.counter.orders[oid].status is S.REPORTED
    row = first.counter.orders[oid].to_row()
    first.store.close()
    del row["order_type"]
    row.update(price_type=11, status=50)   # FIX_PRICE, ORDER_REPORTED: the old form
    old = SimStore(path)
    old.save(orders=[(oid, "A", row)])
    old.close()

    clock.set(at(10, 0, day=FRIDAY + timedelta(days=3)))   # Monday: Friday's order is found by its status only
    again = open_book()
    o = again.counter.orders[oid]
    assert (o.order_type, o.market_type, o.status) == (OrderType.LIMIT, None, S.REPORTED)
    assert oid in again.counter.open
    again.counter.poll()
    assert (o.status, o.status_msg) == (S.CANCELED, "expired at day end")
    stored = again.store.load_orders()
    assert [(r["order_type"], r["status"]) for r in stored] == [("limit", "canceled")]
    again.store.close()


def test_the_asset_prices_positions_as_the_position_list_does() -> None:
    """The counter's asset sums its positions' market values without listing them: the same sum, to the
    fen, as the list gives, a sold-out position counting for nothing."""
    sim = Sim(at(10, 0), positions={"600000.SH": 5000, "000001.SZ": 300, "600519.SH": 100})
    sell = sim.place("600519.SH", "sell", 100, sim.quote("600519.SH").bids[0].price)
    assert sell.status is S.SUCCEEDED
    for when in (at(10, 0, 3), at(10, 7, 30), at(14, 0)):
        sim.go(when)
        listed = sim.counter.position_list("A")
        assert {p.code for p in listed} == {"600000.SH", "000001.SZ"}
        a = sim.counter.asset("A")
        assert a.market_value == round_fen(sum((p.market_value for p in listed), Decimal(0))) > 0
        assert a.total_asset == sim.counter.cash["A"] + a.market_value
