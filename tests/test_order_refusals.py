"""Every bad-input class gets its typed error, and nothing reaches the broker or the journal."""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal
from typing import Any

import pytest
from conftest import BACKENDS, Session

from qmt_mcp.config import Config

pytestmark = pytest.mark.anyio


@pytest.fixture(params=list(BACKENDS), ids=list(BACKENDS))
def cfg(request: pytest.FixtureRequest) -> Config:
    return BACKENDS[request.param]


async def _quote(session: Session, code: str) -> dict[str, Any]:
    return (await session.ok("get_quote", codes=[code]))["quotes"][0]


async def _assert_nothing_placed(session: Session) -> None:
    assert (await session.ok("get_orders", account="sim"))["orders"] == []
    assert (await session.ok("get_order_events", account="sim"))["events"] == []
    assert session.counter.orders == {}


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ({"code": "60000X"}, "INVALID_ARGUMENT"),
        ({"code": "999999.SH"}, "UNKNOWN_INSTRUMENT"),
        ({"account": "nobody"}, "UNKNOWN_ACCOUNT"),
        ({"side": "short"}, "INVALID_ARGUMENT"),
        ({"volume": 0}, "INVALID_ARGUMENT"),
        ({"volume": -100}, "INVALID_ARGUMENT"),
        ({"price": None}, "INVALID_ARGUMENT"),
        ({"order_type": "market", "market_type": "ioc"}, "ORDER_TYPE_UNSUPPORTED"),
        ({"client_order_id": "has space"}, "INVALID_ARGUMENT"),
    ],
)
@pytest.mark.rule("MARKET_TYPE_PER_EXCHANGE")
async def test_malformed_order_is_refused_with_its_code(session: Session, args: dict[str, Any], code: str) -> None:
    base = {"account": "sim", "code": "600000.SH", "side": "buy", "volume": 100, "price": 10.0}
    base.update(args)
    if base["price"] is None:
        del base["price"]
    err = await session.error("place_order", **base)
    assert err["code"] == code
    assert err["state_changed"] == "no" and err["hint"]
    await _assert_nothing_placed(session)


@pytest.mark.rule("LOT_ROUND_100")
async def test_buy_not_a_multiple_of_100_is_refused_lot_size(session: Session) -> None:
    q = await _quote(session, "600000.SH")
    err = await session.error("place_order", account="sim", code="600000.SH", side="buy", volume=150,
                              price=q["ask_prices"][0])
    assert err["code"] == "LOT_SIZE"
    await _assert_nothing_placed(session)


@pytest.mark.rule("LOT_STAR_200_THEN_1")
async def test_star_buy_below_200_shares_is_refused_lot_size(session: Session) -> None:
    q = await _quote(session, "688981.SH")
    err = await session.error("place_order", account="sim", code="688981.SH", side="buy", volume=100,
                              price=q["ask_prices"][0])
    assert err["code"] == "LOT_SIZE"
    await _assert_nothing_placed(session)


async def test_price_off_the_tick_is_refused(session: Session) -> None:
    q = await _quote(session, "600000.SH")
    err = await session.error("place_order", account="sim", code="600000.SH", side="buy", volume=100,
                              price=round(q["ask_prices"][0] + 0.005, 3))
    assert err["code"] == "PRICE_TICK"
    await _assert_nothing_placed(session)


async def test_price_beyond_the_daily_limit_is_refused(session: Session) -> None:
    q = await _quote(session, "600000.SH")
    err = await session.error("place_order", account="sim", code="600000.SH", side="buy", volume=100,
                              price=round(q["up_limit"] + 0.01, 2))
    assert err["code"] == "PRICE_LIMIT"
    err = await session.error("place_order", account="sim", code="600000.SH", side="buy", volume=100,
                              price=round(q["down_limit"] - 0.01, 2))
    assert err["code"] == "PRICE_LIMIT"
    await _assert_nothing_placed(session)


async def test_buy_beyond_available_cash_is_refused(session: Session) -> None:
    q = await _quote(session, "600519.SH")
    err = await session.error("place_order", account="sim", code="600519.SH", side="buy", volume=1000,
                              price=q["ask_prices"][0])
    assert err["code"] == "INSUFFICIENT_CASH"
    await _assert_nothing_placed(session)


async def test_selling_what_is_not_held_is_refused(session: Session) -> None:
    q = await _quote(session, "000001.SZ")
    err = await session.error("place_order", account="sim", code="000001.SZ", side="sell", volume=100,
                              price=q["bid_prices"][0])
    assert err["code"] == "INSUFFICIENT_POSITION"
    await _assert_nothing_placed(session)


@pytest.mark.rule("SUSPENDED")
async def test_suspended_stock_is_refused(session: Session) -> None:
    q = await _quote(session, "000029.SZ")
    assert q["status"] == "suspended"
    err = await session.error("place_order", account="sim", code="000029.SZ", side="buy", volume=100,
                              price=q["pre_close"])
    assert err["code"] == "SUSPENDED"
    await _assert_nothing_placed(session)


@pytest.mark.rule("T_PLUS_1", "DAY_ROLL_UNLOCKS_T1")
async def test_selling_todays_buy_is_refused_t_plus_1_and_allowed_next_day(session: Session) -> None:
    q = await _quote(session, "600000.SH")
    await session.ok("place_order", account="sim", code="600000.SH", side="buy", volume=300, price=q["ask_prices"][2])
    pos = (await session.ok("get_positions", account="sim"))["positions"][0]
    assert pos["volume"] == 300 and pos["can_use_volume"] == 0
    before = len(session.counter.orders)
    err = await session.error("place_order", account="sim", code="600000.SH", side="sell", volume=300,
                              price=q["bid_prices"][0])
    assert err["code"] == "INSUFFICIENT_POSITION" and "T+1" in err["message"]
    assert len(session.counter.orders) == before
    await session.advance(24 * 3600)  # the next trading day
    pos = (await session.ok("get_positions", account="sim"))["positions"][0]
    assert pos["can_use_volume"] == 300
    q = await _quote(session, "600000.SH")
    sold = await session.ok("place_order", account="sim", code="600000.SH", side="sell", volume=300,
                            price=q["bid_prices"][4])
    assert sold["order"]["status"] == "succeeded"


async def test_preview_of_a_bad_order_shows_the_failed_check_and_places_nothing(session: Session) -> None:
    q = await _quote(session, "600000.SH")
    p = await session.ok("preview_order", account="sim", code="600000.SH", side="buy", volume=150,
                         price=q["ask_prices"][0])
    assert p["would_accept"] is False
    failed = [c["rule"] for c in p["checks"] if not c["ok"]]
    assert failed == ["lot_size"]
    assert "confirm_token" not in p
    await _assert_nothing_placed(session)


@pytest.mark.rule("PRICE_CAGE_MAIN_CHINEXT")
async def test_limit_buy_above_the_price_cage_is_refused_price_cage(session: Session) -> None:
    q = await _quote(session, "300750.SZ")
    ceiling = max(Decimal(str(q["ask_prices"][0])) * Decimal("1.02"),
                  Decimal(str(q["ask_prices"][0])) + Decimal("0.10")).quantize(Decimal("0.01"), rounding=ROUND_FLOOR)
    err = await session.error("place_order", account="sim", code="300750.SZ", side="buy", volume=100,
                              price=float(ceiling + Decimal("0.01")))
    assert err["code"] == "PRICE_CAGE" and err["details"]["rule"] == "price_cage"
    await _assert_nothing_placed(session)
    preview = await session.ok("preview_order", account="sim", code="300750.SZ", side="buy", volume=100,
                               price=float(ceiling))
    assert preview["would_accept"], preview["checks"]


@pytest.mark.rule("NEW_LISTING_NO_LIMIT")
async def test_a_new_listing_shows_no_daily_limit_and_takes_orders_by_the_cage_alone(session: Session) -> None:
    inst = await session.ok("get_instrument", code="688799.SH")
    assert inst["price_limited"] is False and inst["listed"] == "2026-11-16"
    assert "up_limit" not in inst and "down_limit" not in inst
    q = await _quote(session, "688799.SH")
    assert q["up_limit"] is None and q["down_limit"] is None
    preview = await session.ok("preview_order", account="sim", code="688799.SH", side="buy", volume=200,
                               price=q["ask_prices"][0])
    limit_check = next(c for c in preview["checks"] if c["rule"] == "price_limit")
    assert preview["would_accept"] and "no daily limit" in limit_check["message"]
