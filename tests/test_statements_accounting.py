"""The statement's accounting rules on their own (domain/statement.py): what a sell releases, what a
holding the trades do not explain becomes, what the first sight of a day undoes."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from qmt_mcp.domain.fees import Fees
from qmt_mcp.domain.orders import Side
from qmt_mcp.domain.statement import DayInput, Fill, Holding, Snapshot, fen_text, opening_from, run_days

D1, D2 = date(2026, 11, 16), date(2026, 11, 17)
CODE = "600000.SH"
NONE = Fees(Decimal(0), Decimal(0), Decimal(0))


def fill(side: Side, volume: int, price: str, fees: str = "0", day: date = D1) -> Fill:
    p = Decimal(price)
    return Fill(day, CODE, side, p, volume, p * volume, Fees(Decimal(fees), Decimal(0), Decimal(0)))


def snap(cash: str, volume: int = 0, cost: str = "0", price: str = "10") -> Snapshot:
    held = {CODE: Holding(volume, Decimal(cost))} if volume else {}
    return Snapshot(Decimal(cash), held, {CODE: Decimal(price)} if volume else {})


def test_three_sells_of_a_third_release_the_whole_cost_to_the_fen() -> None:
    """100.00 over 3 x 1 share: 33.33, then 33.34 (66.67 x 1/2 = 33.335), then the rest: nothing is lost."""
    fills = (fill(Side.BUY, 3, "33.00", "1.00"), fill(Side.SELL, 1, "34"), fill(Side.SELL, 1, "34"),
             fill(Side.SELL, 1, "34"))
    (day,) = run_days(None, [DayInput(D1, snap("1000"), snap("1003"), fills)])
    assert [fen_text(x) for x in (day.realized, day.unrealized)] == ["2.00", "0.00"]   # 102 - 100
    (line,) = day.codes
    assert (line.volume, line.cost, line.bought, line.sold) == (0, Decimal(0), Decimal(99), Decimal(102))


def test_a_holding_the_trades_do_not_explain_is_taken_as_the_broker_has_it() -> None:
    """200 shares at the next opening where the trades left 100 (bought by hand, unseen): the broker's."""
    day1 = DayInput(D1, snap("1000"), snap("0", 100, "1005", "10"), (fill(Side.BUY, 100, "10", "5"),))
    day2 = DayInput(D2, snap("0", 200, "2010", "10"), snap("0", 200, "2010", "11"), ())
    first, second = run_days(None, [day1, day2])
    assert second.opening_unrealized == Decimal(-10) and second.unrealized == Decimal(190)
    assert (second.codes[0].volume, second.codes[0].cost) == (200, Decimal(2010))
    assert first.unrealized == Decimal(-5)


def test_the_first_sight_of_a_day_after_its_fills_undoes_them() -> None:
    now = snap("8990", 100, "1010", "10.50")
    opened = opening_from(now, [fill(Side.BUY, 100, "10", "10", D2)], {CODE: Decimal("9.90")})
    assert opened.cash == Decimal(10000) and opened.holdings == {}
    sold = snap("11000", 0)
    opened = opening_from(sold, [fill(Side.SELL, 100, "10.05", "5", D2)], {CODE: Decimal("9.90")})
    assert opened.cash == Decimal(10000) and opened.holdings[CODE] == Holding(100, Decimal(990))
    assert opened.total_asset == Decimal(10990)   # at the previous close


def test_money_on_the_wire_is_a_fen_string_and_never_minus_zero() -> None:
    assert [fen_text(Decimal(x)) for x in ("-0.001", "1.005", "-2.5", "1000000")] == [
        "0.00", "1.01", "-2.50", "1000000.00"]
