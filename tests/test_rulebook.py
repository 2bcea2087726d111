"""The rule book, rule by rule, on the pure domain with the date injected; and the check that every
rule in the book has a test marked with its id."""

from __future__ import annotations

import ast
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path

import pytest

from qmt_mcp.domain.codes import Board, Exchange
from qmt_mcp.domain.fees import FeeSchedule, compute_fees
from qmt_mcp.domain.instruments import (
    LOT_RULES,
    MAX_ORDER_VOLUME,
    Instrument,
    cage_base,
    daily_limits,
    limit_ratio,
    price_cage,
    unlimited_days,
)
from qmt_mcp.domain.orders import parse_order_request
from qmt_mcp.domain.rulebook import BY_ID, RULES, in_force
from qmt_mcp.domain.sessions import Phase, phase_at
from qmt_mcp.domain.timeutil import CN_TZ
from qmt_mcp.domain.validation import AccountView, MarketState, estimate, first_failure, run_checks

D = date.fromisoformat
TODAY = D("2026-11-20")
rule = pytest.mark.rule


def test_every_rule_in_the_book_has_a_test_marked_with_its_id() -> None:
    marked: dict[str, list[str]] = {}
    for path in Path(__file__).parent.glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or not node.name.startswith("test_"):
                continue
            for deco in node.decorator_list:
                if isinstance(deco, ast.Call) and ast.unparse(deco.func) in ("rule", "pytest.mark.rule"):
                    for arg in deco.args:
                        assert isinstance(arg, ast.Constant), f"{path.name}:{node.name}: rule ids are literals"
                        marked.setdefault(str(arg.value), []).append(f"{path.name}::{node.name}")
    unknown = sorted(set(marked) - set(BY_ID))
    assert not unknown, f"tests name rules the book does not have: {unknown}"
    untested = [r.id for r in RULES if r.id not in marked]
    assert not untested, f"rules without a test: {untested}"


def test_rules_in_force_follow_their_dates() -> None:
    ids = {r.id for r in in_force(D("2026-07-05"))}
    assert "LIMIT_ST_MAIN_5" in ids and "LIMIT_ST_MAIN_10" not in ids
    ids = {r.id for r in in_force(D("2026-07-06"))}
    assert "LIMIT_ST_MAIN_10" in ids and "LIMIT_ST_MAIN_5" not in ids
    assert {"STAMP_DUTY_0_1"} <= {r.id for r in in_force(D("2023-08-27"))}
    assert "STAMP_DUTY_0_1" not in {r.id for r in in_force(D("2023-08-28"))}


# ----- helpers: an instrument and the checks an order meets


def inst(board: Board, pre: str = "10.00", *, limited: bool = True, suspended: bool = False) -> Instrument:
    tick = Decimal("0.001") if board is Board.FUND else Decimal("0.01")
    up, down = daily_limits(Decimal(pre), limit_ratio(board, False, TODAY), tick)
    code = {Board.SH_MAIN: "600000.SH", Board.SZ_MAIN: "000001.SZ", Board.CHINEXT: "300750.SZ",
            Board.STAR: "688981.SH", Board.BSE: "830799.BJ", Board.FUND: "510300.SH"}[board]
    return Instrument(code, "x", Exchange.SH, board, Decimal(pre), up if limited else None,
                      down if limited else None, tick, LOT_RULES[board], False, suspended, 1)


def checks(i: Instrument, side: str, volume: int, price: str | None, *, held: int = 0,
           phase: Phase = Phase.CONTINUOUS, bid: str = "9.99", ask: str = "10.00", order_type: str = "limit",
           cash: str = "10000000") -> dict[str, str | None]:
    args: dict[str, object] = {"account": "sim", "code": i.code, "side": side, "volume": volume,
                               "order_type": order_type}
    if price is not None:
        args["price"] = price
    req = parse_order_request(args)
    est = estimate(req, i, Decimal(ask), Decimal(bid), FeeSchedule(), TODAY)
    view = AccountView(Decimal(cash), {i.code: held}, {i.code: held})
    mkt = MarketState(phase, TODAY, Decimal(bid), Decimal(ask), Decimal(bid))
    result = run_checks(req, i, view, est, mkt)
    failure = first_failure(result)
    return {"code": None if failure is None else failure.code.value,
            "rule": None if failure is None else str(failure.details["rule"])}


# ----- lots, ticks, size


@rule("ODD_LOT_SELL_OUT_ONLY")
def test_odd_lot_sells_only_with_the_whole_remainder() -> None:
    main = inst(Board.SH_MAIN)
    assert checks(main, "sell", 50, "9.99", held=150)["code"] == "LOT_SIZE"
    assert checks(main, "sell", 150, "9.99", held=150)["code"] is None
    assert checks(main, "sell", 100, "9.99", held=150)["code"] is None


@rule("TICK_FUND")
def test_fund_prices_are_on_a_tenth_of_a_fen() -> None:
    etf = inst(Board.FUND, "4.100")
    assert checks(etf, "buy", 100, "4.1005", ask="4.101", bid="4.100")["code"] == "PRICE_TICK"
    assert checks(etf, "buy", 100, "4.101", ask="4.101", bid="4.100")["code"] is None


@rule("TICK_STOCK")
def test_stock_prices_are_on_a_fen() -> None:
    assert checks(inst(Board.SZ_MAIN), "buy", 100, "10.005")["code"] == "PRICE_TICK"


@rule("MAX_ORDER_VOLUME")
@pytest.mark.parametrize(("board", "limit_cap", "market_cap"),
                         [(Board.CHINEXT, 300_000, 150_000), (Board.STAR, 100_000, 50_000),
                          (Board.SH_MAIN, 1_000_000, 1_000_000)])
def test_one_order_above_the_boards_maximum_is_refused(board: Board, limit_cap: int, market_cap: int) -> None:
    assert MAX_ORDER_VOLUME[board] == (limit_cap, market_cap)
    i = inst(board)
    assert checks(i, "buy", limit_cap, "10.00")["rule"] != "max_order_volume"
    assert checks(i, "buy", limit_cap + 100, "10.00") == {"code": "LOT_SIZE", "rule": "max_order_volume"}
    over = checks(i, "buy", market_cap + 100, None, order_type="market")
    assert over == {"code": "LOT_SIZE", "rule": "max_order_volume"}


# ----- daily limits


@rule("LIMIT_MAIN_10", "LIMIT_STAR_20", "LIMIT_BSE_30")
@pytest.mark.parametrize(("board", "up", "down"), [(Board.SH_MAIN, "11.00", "9.00"), (Board.SZ_MAIN, "11.00", "9.00"),
                                                    (Board.STAR, "12.00", "8.00"), (Board.BSE, "13.00", "7.00")])
def test_daily_limit_by_board(board: Board, up: str, down: str) -> None:
    i = inst(board)
    assert (i.up_limit, i.down_limit) == (Decimal(up), Decimal(down))
    assert checks(i, "buy", 200, str(Decimal(up) + Decimal("0.01")), ask=up)["code"] == "PRICE_LIMIT"


@rule("LIMIT_CHINEXT_20")
def test_chinext_limit_is_20_percent_from_2020_08_24_and_10_before() -> None:
    assert limit_ratio(Board.CHINEXT, False, D("2020-08-21")) == Decimal("0.10")
    assert limit_ratio(Board.CHINEXT, False, D("2020-08-24")) == Decimal("0.20")


@rule("NEW_LISTING_NO_LIMIT")
def test_new_listings_trade_without_a_limit_in_their_first_days() -> None:
    assert unlimited_days(Board.STAR, D("2026-11-16")) == 5
    assert unlimited_days(Board.CHINEXT, D("2021-03-01")) == 5
    assert unlimited_days(Board.SH_MAIN, D("2023-04-10")) == 5
    assert unlimited_days(Board.SH_MAIN, D("2023-04-07")) == 0     # before main-board registration
    assert unlimited_days(Board.BSE, D("2024-01-05")) == 1
    assert unlimited_days(Board.SH_MAIN, None) == 0
    free = inst(Board.STAR, limited=False)
    assert checks(free, "buy", 200, "30.00", ask="29.90", bid="29.80")["code"] is None   # far above any 20%


# ----- price cage


@rule("PRICE_CAGE_MAIN_CHINEXT")
def test_main_board_cage_is_2_percent_or_10_ticks_whichever_is_wider() -> None:
    # Cheap stock: 10 ticks (0.10) is wider than 2% of 3.00 (0.06).
    assert price_cage(Board.SH_MAIN, True, Decimal("3.00"), Decimal("0.01"), TODAY) == Decimal("3.10")
    assert price_cage(Board.SH_MAIN, False, Decimal("3.00"), Decimal("0.01"), TODAY) == Decimal("2.90")
    # Dear stock: 2% wins; the ceiling is floored to the tick, the floor is raised to it.
    assert price_cage(Board.CHINEXT, True, Decimal("260.33"), Decimal("0.01"), TODAY) == Decimal("265.53")
    assert price_cage(Board.CHINEXT, False, Decimal("260.33"), Decimal("0.01"), TODAY) == Decimal("255.13")
    # Before main-board registration there was no cage there.
    assert price_cage(Board.SZ_MAIN, True, Decimal("3.00"), Decimal("0.01"), D("2023-04-07")) is None
    i = inst(Board.SH_MAIN)
    assert checks(i, "buy", 100, "10.20", ask="10.00") == {"code": None, "rule": None}
    assert checks(i, "buy", 100, "10.21", ask="10.00") == {"code": "PRICE_CAGE", "rule": "price_cage"}
    assert checks(i, "sell", 100, "9.78", held=100, bid="9.99") == {"code": "PRICE_CAGE", "rule": "price_cage"}


@rule("PRICE_CAGE_STAR")
def test_star_cage_is_2_percent_without_the_tick_allowance() -> None:
    assert price_cage(Board.STAR, True, Decimal("3.00"), Decimal("0.01"), TODAY) == Decimal("3.06")
    assert price_cage(Board.STAR, False, Decimal("3.00"), Decimal("0.01"), TODAY) == Decimal("2.94")


@rule("PRICE_CAGE_BSE")
def test_bse_cage_is_5_percent_or_ten_fen() -> None:
    assert price_cage(Board.BSE, True, Decimal("28.00"), Decimal("0.01"), TODAY) == Decimal("29.40")
    assert price_cage(Board.BSE, True, Decimal("1.00"), Decimal("0.01"), TODAY) == Decimal("1.10")
    assert price_cage(Board.BSE, False, Decimal("1.00"), Decimal("0.01"), TODAY) == Decimal("0.90")


@rule("PRICE_CAGE_BASE")
def test_cage_base_falls_back_from_the_opposite_best_and_skips_auctions() -> None:
    d = Decimal
    assert cage_base(True, d("9.99"), d("10.01"), d("10.00"), d("9.50")) == d("10.01")
    assert cage_base(True, d("9.99"), None, d("10.00"), d("9.50")) == d("9.99")
    assert cage_base(True, None, None, d("10.00"), d("9.50")) == d("10.00")
    assert cage_base(False, None, None, None, d("9.50")) == d("9.50")
    assert cage_base(False, d("9.99"), d("10.01"), None, d("9.50")) == d("9.99")
    i = inst(Board.SH_MAIN)
    # The same far-off buy is fine in the opening call auction, where no cage applies.
    assert checks(i, "buy", 100, "10.50", phase=Phase.OPENING_AUCTION)["code"] is None
    assert checks(i, "buy", 100, "10.50", phase=Phase.CONTINUOUS)["code"] == "PRICE_CAGE"
    assert price_cage(Board.FUND, True, d("4.100"), d("0.001"), TODAY) is None


# ----- fees


@rule("STAMP_DUTY_0_1", "STAMP_DUTY_0_05")
def test_stamp_duty_halves_on_2023_08_28() -> None:
    amount = Decimal("100000")
    before = compute_fees(FeeSchedule(), Board.SH_MAIN, "sell", amount, D("2023-08-25"))
    after = compute_fees(FeeSchedule(), Board.SH_MAIN, "sell", amount, D("2023-08-28"))
    assert (before.stamp_duty, after.stamp_duty) == (Decimal("100.00"), Decimal("50.00"))
    assert compute_fees(FeeSchedule(), Board.SH_MAIN, "buy", amount, D("2023-08-25")).stamp_duty == 0


@rule("FUNDS_NO_STAMP_OR_TRANSFER")
def test_funds_pay_commission_only() -> None:
    fees = compute_fees(FeeSchedule(), Board.FUND, "sell", Decimal("100000"), TODAY)
    assert (fees.stamp_duty, fees.transfer_fee, fees.commission) == (0, 0, Decimal("25.00"))


# ----- sessions and calendar


def _at(day: str, hh: int, mm: int) -> datetime:
    return datetime.combine(D(day), time(hh, mm), CN_TZ)


@rule("CLOSED_OUTSIDE_SESSIONS", "LUNCH_BREAK_CLOSED", "HOLIDAYS_CLOSED")
def test_phases_of_a_day_and_of_the_calendar() -> None:
    day = "2026-11-20"
    expected = [((9, 0), Phase.CLOSED), ((9, 15), Phase.OPENING_AUCTION), ((9, 20), Phase.OPENING_AUCTION_NO_CANCEL),
                ((9, 25), Phase.PRE_OPEN_HOLD), ((9, 30), Phase.CONTINUOUS), ((11, 29), Phase.CONTINUOUS),
                ((11, 30), Phase.LUNCH_BREAK), ((13, 0), Phase.CONTINUOUS), ((14, 57), Phase.CLOSING_AUCTION),
                ((15, 0), Phase.CLOSED)]
    assert [phase_at(_at(day, *hm)) for hm, _ in expected] == [p for _, p in expected]
    assert phase_at(_at("2026-11-21", 10, 0)) is Phase.CLOSED          # Saturday
    assert phase_at(_at("2026-10-05", 10, 0)) is Phase.CLOSED          # National Day closure, a Monday
    assert phase_at(_at("2026-02-24", 10, 0)) is Phase.CONTINUOUS      # first day after Spring Festival
    i = inst(Board.SH_MAIN)
    for closed in (Phase.CLOSED, Phase.LUNCH_BREAK):
        assert checks(i, "buy", 100, "10.00", phase=closed) == {"code": "MARKET_CLOSED", "rule": "session"}


@rule("MARKET_ORDERS_CONTINUOUS_ONLY")
def test_market_orders_are_refused_in_call_auctions() -> None:
    i = inst(Board.SH_MAIN)
    for phase in (Phase.OPENING_AUCTION, Phase.PRE_OPEN_HOLD, Phase.CLOSING_AUCTION):
        result = checks(i, "buy", 100, None, phase=phase, order_type="market")
        assert result == {"code": "ORDER_TYPE_UNSUPPORTED", "rule": "order_type"}
    assert checks(i, "buy", 100, None, order_type="market")["code"] is None
