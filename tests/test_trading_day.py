"""A whole trading day on the exchange clock, through the MCP client: refused before the open, the
opening call auction uncrossed at one price, continuous trading with T+1, the lunch break, the
closing auction, the day end, and Monday's unlock — with every status, fill and the cash to the fen."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from conftest import Session, SessionFactory

from qmt_mcp.domain.timeutil import CN_TZ

pytestmark = pytest.mark.anyio
FRIDAY, SATURDAY, MONDAY = date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 23)
CODE = "600000.SH"
EXCHANGE_DAY = {
    "sim": {"clock": "exchange"},
    "accounts": {"sim": {"account_id": "88000001", "positions": {CODE: 2000}}},
    "risk": {"enabled": False},
}


def fen(x: Decimal) -> Decimal:
    return x.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def fees(side: str, amount: Decimal) -> Decimal:
    """The default schedule written out: commission 0.025% (min 5), transfer 0.001%, stamp 0.05% on sells."""
    commission = max(fen(amount * Decimal("0.00025")), Decimal(5))
    stamp = fen(amount * Decimal("0.0005")) if side == "sell" else Decimal(0)
    return commission + fen(amount * Decimal("0.00001")) + stamp


async def go(s: Session, day: date, hh: int, mm: int, ss: int = 0) -> None:
    s.clock.set(datetime.combine(day, time(hh, mm, ss), CN_TZ))
    await s.worker.service.tick()


async def order(s: Session, cid: str, side: str, volume: int, price: float | None = None, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"account": "sim", "code": CODE, "side": side, "volume": volume,
                            "client_order_id": cid, **kw}
    if price is not None:
        args["price"] = price
    return (await s.ok("place_order", **args))["order"]


async def status(s: Session, cid: str) -> dict[str, Any]:
    return (await s.ok("get_order", account="sim", client_order_id=cid))["order"]


@pytest.mark.rule("OPENING_AUCTION_ONE_PRICE", "CLOSING_AUCTION_ONE_PRICE", "DAY_END_EXPIRES_ORDERS",
                  "DAY_ROLL_UNLOCKS_T1", "NO_CANCEL_0920_0925", "NO_CANCEL_CLOSING_AUCTION", "LUNCH_BREAK_CLOSED",
                  "CLOSED_OUTSIDE_SESSIONS", "MARKET_ORDERS_CONTINUOUS_ONLY", "HOLIDAYS_CLOSED", "T_PLUS_1")
async def test_a_scripted_exchange_trading_day(session_with: SessionFactory) -> None:
    async with session_with(**EXCHANGE_DAY) as s:
        await go(s, FRIDAY, 9, 10)
        health = await s.ok("health")
        assert health["market"] == {"clock": "exchange", "phase": "closed", "accepts_orders": False,
                                    "accepts_cancels": False}
        inst = await s.ok("get_instrument", code=CODE)
        up, down = inst["up_limit"], inst["down_limit"]
        err = await s.error("place_order", account="sim", code=CODE, side="buy", volume=100, price=up)
        assert err["code"] == "MARKET_CLOSED" and err["state_changed"] == "no"
        preview = await s.ok("preview_order", account="sim", code=CODE, side="buy", volume=100, price=up)
        assert not preview["would_accept"] and preview["checks"][0]["rule"] == "session"

        # 09:15 opening call auction: limit orders rest, market orders are refused, cancels are taken.
        await go(s, FRIDAY, 9, 16)
        assert (await order(s, "open-buy", "buy", 1000, up))["status"] == "reported"
        assert (await order(s, "low-buy", "buy", 100, down))["status"] == "reported"
        err = await s.error("place_order", account="sim", code=CODE, side="buy", volume=100, order_type="market")
        assert err["code"] == "ORDER_TYPE_UNSUPPORTED"
        await go(s, FRIDAY, 9, 18)
        assert (await s.ok("cancel_order", account="sim", order_id=(await status(s, "low-buy"))["order_id"]))
        assert (await status(s, "low-buy"))["status"] == "canceled"

        # 09:20–09:25: orders are taken, cancels are not.
        await go(s, FRIDAY, 9, 21)
        sell = await order(s, "open-sell", "sell", 500, down)
        err = await s.error("cancel_order", account="sim", order_id=sell["order_id"])
        assert err["code"] == "NOT_CANCELABLE"

        # 09:25 the auction uncrosses: both sides trade at the one opening price.
        await go(s, FRIDAY, 9, 25)
        open_price = (await s.ok("get_quote", codes=[CODE]))["quotes"][0]["last"]
        trades = (await s.ok("get_trades", account="sim"))["trades"]
        assert {(t["client_order_id"], t["price"]) for t in trades} == {("open-buy", open_price),
                                                                       ("open-sell", open_price)}
        assert (await status(s, "open-buy"))["status"] == "succeeded"
        assert (await status(s, "open-sell"))["status"] == "succeeded"

        # Continuous trading: a marketable buy fills; today's buys are not sellable (T+1).
        await go(s, FRIDAY, 10, 0)
        q = (await s.ok("get_quote", codes=[CODE]))["quotes"][0]
        assert (await order(s, "am-buy", "buy", 100, q["ask_prices"][0]))["status"] == "succeeded"
        positions = (await s.ok("get_positions", account="sim"))["positions"]
        assert [(p["volume"], p["can_use_volume"]) for p in positions] == [(2600, 1500)]
        err = await s.error("place_order", account="sim", code=CODE, side="sell", volume=1600, price=q["bid_prices"][0])
        assert err["code"] == "INSUFFICIENT_POSITION"

        # A buy rests below the market before lunch; at lunch neither orders nor cancels are taken.
        await go(s, FRIDAY, 11, 0)
        q = (await s.ok("get_quote", codes=[CODE]))["quotes"][0]
        resting = await order(s, "am-rest", "buy", 200, q["bid_prices"][4])
        await go(s, FRIDAY, 11, 45)
        err = await s.error("place_order", account="sim", code=CODE, side="buy", volume=100, price=q["bid_prices"][0])
        assert err["code"] == "MARKET_CLOSED"
        assert (await status(s, "am-rest"))["status"] == "reported", "the seed keeps 600000.SH above its 11:00 bid 5"
        err = await s.error("cancel_order", account="sim", order_id=resting["order_id"])
        assert err["code"] == "MARKET_CLOSED"
        await go(s, FRIDAY, 13, 5)
        q = (await s.ok("get_quote", codes=[CODE]))["quotes"][0]
        resting = await order(s, "pm-rest", "buy", 200, q["bid_prices"][4])

        # 14:57 closing call auction: new orders rest, nothing cancels; 15:00 one price, then the day ends.
        await go(s, FRIDAY, 14, 58)
        assert (await order(s, "close-buy", "buy", 300, up))["status"] == "reported"
        err = await s.error("cancel_order", account="sim", order_id=resting["order_id"])
        assert err["code"] == "NOT_CANCELABLE"
        await go(s, FRIDAY, 15, 0)
        close = (await s.ok("get_klines", code=CODE, period="1d", count=1))["bars"][-1]["close"]
        by_order: dict[str, list[dict[str, Any]]] = {}
        for t in (await s.ok("get_trades", account="sim"))["trades"]:
            by_order.setdefault(t["client_order_id"], []).append(t)
        assert {t["price"] for t in by_order["close-buy"]} == {close}
        statuses = {cid: (await status(s, cid))["status"] for cid in
                    ("open-buy", "low-buy", "open-sell", "am-buy", "am-rest", "pm-rest", "close-buy")}
        assert statuses == {"open-buy": "succeeded", "low-buy": "canceled", "open-sell": "succeeded",
                            "am-buy": "succeeded", "am-rest": "canceled", "pm-rest": "canceled",
                            "close-buy": "succeeded"}
        for cid in ("am-rest", "pm-rest"):
            assert (await status(s, cid))["status_msg"] == "expired at day end"
        assert (await s.ok("get_orders", account="sim", cancelable_only=True))["orders"] == []

        # The cash, to the fen: every order's traded amount and its fees, written out by hand.
        cash = Decimal(1_000_000)
        for trades_of in by_order.values():
            side = trades_of[0]["side"]
            amount = sum((Decimal(str(t["price"])) * t["volume"] for t in trades_of), Decimal(0))
            cash += -(amount + fees("buy", amount)) if side == "buy" else amount - fees("sell", amount)
        asset = (await s.ok("get_asset", account="sim"))
        assert Decimal(str(asset["cash"])) == cash and asset["frozen_cash"] == 0

        # Saturday: closed. Monday: Friday's buys are sellable.
        await go(s, SATURDAY, 10, 0)
        assert (await s.ok("health"))["market"]["phase"] == "closed"
        err = await s.error("place_order", account="sim", code=CODE, side="buy", volume=100, price=up)
        assert err["code"] == "MARKET_CLOSED"
        await go(s, MONDAY, 9, 31)
        positions = (await s.ok("get_positions", account="sim"))["positions"]
        assert positions[0]["can_use_volume"] == positions[0]["volume"]


async def test_get_trades_after_the_day_roll_lists_todays_and_a_range_still_has_the_earlier_days(
    session_with: SessionFactory,
) -> None:
    # xtquant answers today's trades only; the simulator's book kept earlier days' fills in memory
    # until a restart, so get_trades (no range) listed Friday's fills on Monday.
    async with session_with(**EXCHANGE_DAY) as s:
        await go(s, FRIDAY, 10, 0)
        ask = (await s.ok("get_quote", codes=[CODE]))["quotes"][0]["ask_prices"][0]
        assert (await order(s, "fri-buy", "buy", 100, ask))["status"] in ("succeeded", "part_succ")
        assert [t["client_order_id"] for t in (await s.ok("get_trades", account="sim"))["trades"]] == ["fri-buy"]
        await go(s, MONDAY, 10, 0)
        assert (await s.ok("get_trades", account="sim"))["trades"] == []
        earlier = await s.ok("get_trades", account="sim", start="20261120", end="20261123")
        assert [t["client_order_id"] for t in earlier["trades"]] == ["fri-buy"]
