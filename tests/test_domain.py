"""Pure domain behaviour: code forms, boards, limits by date, lots, fees to the fen, the status table."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from qmt_mcp.domain.codes import Board, board_of, normalize_code
from qmt_mcp.domain.errors import ErrorCode, InternalError, InvalidArgument, OrderRefused, QmtError, class_of
from qmt_mcp.domain.fees import FeeSchedule, compute_fees
from qmt_mcp.domain.instruments import LOT_RULES, daily_limits, limit_ratio
from qmt_mcp.domain.status import IllegalTransition, OrderStatus, advance


@pytest.mark.parametrize(
    ("raw", "canon"),
    [("600000.SH", "600000.SH"), ("600000.sh", "600000.SH"), ("sh600000", "600000.SH"), ("SZ000001", "000001.SZ"),
     ("000001", "000001.SZ"), ("300750", "300750.SZ"), ("688981", "688981.SH"), ("510300", "510300.SH"),
     ("830799", "830799.BJ"), ("920001", "920001.BJ"), (" 600519 ", "600519.SH")],
)
def test_every_accepted_code_form_normalizes_to_canonical(raw: str, canon: str) -> None:
    assert normalize_code(raw) == canon


@pytest.mark.parametrize("raw", ["60000", "6000000", "abc", "600000.HK", "", "123456"])
def test_bad_codes_are_invalid_argument(raw: str) -> None:
    with pytest.raises(InvalidArgument):
        normalize_code(raw)


@pytest.mark.rule("BOARD_BY_PREFIX")
def test_boards_by_prefix() -> None:
    assert board_of("600000.SH") is Board.SH_MAIN
    assert board_of("000001.SZ") is Board.SZ_MAIN
    assert board_of("300750.SZ") is Board.CHINEXT
    assert board_of("688981.SH") is Board.STAR
    assert board_of("830799.BJ") is Board.BSE
    assert board_of("510300.SH") is Board.FUND


@pytest.mark.rule("LIMIT_ST_MAIN_5", "LIMIT_ST_MAIN_10")
def test_st_main_board_limit_widens_from_5_to_10_percent_on_2026_07_06() -> None:
    assert limit_ratio(Board.SH_MAIN, True, date(2026, 7, 5)) == Decimal("0.05")
    assert limit_ratio(Board.SH_MAIN, True, date(2026, 7, 6)) == Decimal("0.10")
    assert limit_ratio(Board.CHINEXT, True, date(2026, 7, 5)) == Decimal("0.20")


@pytest.mark.rule("LIMIT_ROUNDING")
def test_daily_limits_round_half_up_to_the_tick() -> None:
    assert daily_limits(Decimal("10.05"), Decimal("0.10"), Decimal("0.01")) == (Decimal("11.06"), Decimal("9.05"))
    assert daily_limits(Decimal("4.132"), Decimal("0.10"), Decimal("0.001")) == (Decimal("4.545"), Decimal("3.719"))


@pytest.mark.rule("LOT_STAR_200_THEN_1", "LOT_BSE_100_THEN_1")
def test_star_lot_is_200_then_steps_of_1_and_bse_100_then_1() -> None:
    star, bse, main = LOT_RULES[Board.STAR], LOT_RULES[Board.BSE], LOT_RULES[Board.SH_MAIN]
    assert not star.allows_buy(199) and star.allows_buy(200) and star.allows_buy(201)
    assert not bse.allows_buy(99) and bse.allows_buy(101)
    assert main.allows_buy(300) and not main.allows_buy(250)


@pytest.mark.rule("TRANSFER_FEE", "COMMISSION_MIN")
def test_fees_to_the_fen_with_minimum_commission_and_sell_side_stamp_duty() -> None:
    sched = FeeSchedule()
    buy = compute_fees(sched, Board.SH_MAIN, "buy", Decimal("10000.00"), date(2026, 11, 20))
    assert (buy.commission, buy.stamp_duty, buy.transfer_fee) == (Decimal(5), Decimal(0), Decimal("0.10"))
    sell = compute_fees(sched, Board.SH_MAIN, "sell", Decimal("100000.00"), date(2026, 11, 20))
    expected = (Decimal("25.00"), Decimal("50.00"), Decimal("1.00"))
    assert (sell.commission, sell.stamp_duty, sell.transfer_fee) == expected
    old = compute_fees(sched, Board.SH_MAIN, "sell", Decimal("100000.00"), date(2023, 8, 27))
    assert old.stamp_duty == Decimal("100.00")
    etf = compute_fees(sched, Board.FUND, "sell", Decimal("100000.00"), date(2026, 11, 20))
    assert (etf.stamp_duty, etf.transfer_fee) == (Decimal(0), Decimal(0))


def test_impossible_transition_is_refused_and_a_repeat_is_a_no_op() -> None:
    assert advance(OrderStatus.REPORTED, OrderStatus.PART_SUCC) is OrderStatus.PART_SUCC
    assert advance(OrderStatus.SUCCEEDED, OrderStatus.SUCCEEDED) is OrderStatus.SUCCEEDED
    with pytest.raises(IllegalTransition):
        advance(OrderStatus.SUCCEEDED, OrderStatus.REPORTED)
    with pytest.raises(IllegalTransition):
        advance(OrderStatus.CANCELED, OrderStatus.PART_SUCC)


def test_errors_carry_code_retryable_and_state_changed() -> None:
    err = QmtError("x", code=ErrorCode.TIMEOUT)
    assert err.retryable and err.state_changed == "no" and err.hint
    back = QmtError.from_dict(err.to_dict())
    assert back.code is ErrorCode.TIMEOUT and back.retryable


def test_the_error_tree_in_the_docstring_covers_every_contract_code() -> None:
    import qmt_mcp.domain.errors as errors_module

    tree = errors_module.__doc__ or ""
    for code in ErrorCode:
        assert code.value in tree, code
        cls = class_of(code)
        assert issubclass(cls, QmtError) and cls.__name__ in tree, code


def test_an_error_keeps_its_class_and_fields_across_the_wire() -> None:
    for code in ErrorCode:
        sent = class_of(code)("m", code=code, hint="h", state_changed="yes", details={"rule": "X"})
        got = QmtError.from_dict(sent.to_dict())
        assert type(got) is type(sent) and got.to_dict() == sent.to_dict(), code
    assert isinstance(QmtError.from_dict({"code": "PRICE_TICK", "message": "m"}), OrderRefused)
    assert type(QmtError.from_dict({"code": "NO_SUCH_CODE", "message": "m"})) is InternalError
