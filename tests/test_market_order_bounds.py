"""A market order is costed, risk-checked and shown at the worst price the exchange lets it take, and
the simulator trades by the same rule: SH/BJ best-5 orders are bounded by their protective price;
own-best and counterparty-best take none (a price is refused rather than shown as a bound it is not)
and are costed at the daily limit; a price sent with a type that takes none bounds nothing at the
counter either."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from conftest import BACKENDS, START, Session, SessionFactory

from qmt_mcp.backends.sim.broker import SimBroker
from qmt_mcp.backends.sim.paper import PaperAccount
from qmt_mcp.clock import ManualClock
from qmt_mcp.config import Config
from qmt_mcp.domain.fees import FeeSchedule
from qmt_mcp.domain.orders import MarketType, OrderRequest, OrderType, Side
from qmt_mcp.domain.status import OrderStatus

pytestmark = pytest.mark.anyio
rule = pytest.mark.rule


@pytest.fixture(params=list(BACKENDS), ids=list(BACKENDS))
def cfg(request: pytest.FixtureRequest) -> Config:
    return BACKENDS[request.param]


def backend_sections(cfg: Config) -> dict[str, Any]:
    if cfg.worker.backend == "xtquant":
        return {"worker": {"backend": "xtquant"}, "xtquant": {"native": "sim"}}
    return {}


async def quote(s: Session, code: str) -> dict[str, Any]:
    return dict((await s.ok("get_quote", codes=[code]))["quotes"][0])


@rule("MARKET_PROTECTIVE_PRICE")
@pytest.mark.parametrize("market_type", ["counterparty_best", "own_best"])
@pytest.mark.parametrize("code", ["600000.SH", "830799.BJ"])
async def test_own_best_and_counterparty_best_refuse_a_protective_price_the_exchange_would_not_honour(
    session: Session, code: str, market_type: str,
) -> None:
    q = await quote(session, code)
    order = {"account": "sim", "code": code, "side": "buy", "volume": 100, "order_type": "market",
             "market_type": market_type, "price": q["bid_prices"][4]}
    for tool in ("preview_order", "place_order"):
        err = await session.error(tool, **order)
        assert err["code"] == "INVALID_ARGUMENT" and err["details"]["argument"] == "price", tool
        assert "best5" in err["hint"]
    assert session.counter.orders == {}
    assert (await session.ok("get_orders", account="sim"))["orders"] == []


@rule("MARKET_COUNTERPARTY_BEST")
async def test_a_counterparty_best_buy_is_costed_and_risk_checked_at_the_up_limit_it_may_reach(
    cfg: Config, session_with: SessionFactory,
) -> None:
    async with session_with(**backend_sections(cfg)) as s:   # max_order_value 100,000 yuan
        q = await quote(s, "600000.SH")
        ask, up = Decimal(str(q["ask_prices"][0])), Decimal(str(q["up_limit"]))
        volume = int(Decimal(100_000) / ((ask + up) / 2) / 100) * 100
        assert ask * volume < 100_000 < up * volume   # under the limit at the ask, over it at the up limit
        order = {"account": "sim", "code": "600000.SH", "side": "buy", "volume": volume, "order_type": "market",
                 "market_type": "counterparty_best"}
        p = await s.ok("preview_order", **order)
        assert Decimal(str(p["estimate"]["price"])) == up and p["would_accept"] is False
        assert [d["rule"] for d in p["risk"]["decisions"] if not d["ok"]] == ["MAX_ORDER_VALUE"]
        bound = next(c for c in p["checks"] if c["rule"] == "market_price")
        assert bound["ok"] and "up limit" in bound["message"] and str(up) in bound["message"]
        err = await s.error("place_order", **order)
        assert err["code"] == "RISK_REJECT" and err["details"]["rule"] == "MAX_ORDER_VALUE"
        assert s.counter.orders == {}


@rule("MARKET_PROTECTIVE_PRICE", "MARKET_BEST5_CANCEL")
async def test_an_sh_best5_order_trades_no_worse_than_its_protective_price_and_the_preview_says_so(
    cfg: Config, session_with: SessionFactory,
) -> None:
    async with session_with(risk={"enabled": False}, **backend_sections(cfg)) as s:
        q = await quote(s, "600000.SH")
        volume = q["ask_volumes"][0] + q["ask_volumes"][1] + 1000
        volume -= volume % 100
        order = {"account": "sim", "code": "600000.SH", "side": "buy", "volume": volume, "order_type": "market",
                 "market_type": "best5_cancel", "price": q["ask_prices"][1]}
        p = await s.ok("preview_order", **order)
        bound = next(c for c in p["checks"] if c["rule"] == "market_price")
        assert "protective price" in bound["message"] and p["estimate"]["price"] == q["ask_prices"][1]
        placed = (await s.ok("place_order", **order, client_order_id="b5-1", wait_seconds=5))["order"]
        assert placed["status"] == "part_cancel"
        assert placed["traded_volume"] == q["ask_volumes"][0] + q["ask_volumes"][1]
        prices = {t["price"] for t in (await s.ok("get_trades", account="sim"))["trades"]}
        assert prices <= {q["ask_prices"][0], q["ask_prices"][1]}


@rule("MARKET_PROTECTIVE_PRICE", "MARKET_SZ_IOC")
def test_the_counter_ignores_a_price_sent_with_a_market_type_that_takes_none() -> None:
    clock = ManualClock(datetime.combine(START.date(), START.time(), START.tzinfo))
    broker = SimBroker(seed=42, clock=clock, fees=FeeSchedule(), state_path=None, clock_mode="continuous",
                       accounts={"A": PaperAccount(Decimal(1_000_000))})
    q = broker.market.quote("000001.SZ", clock.now())
    inst = broker.market.instrument("000001.SZ", broker.session_day())
    # As a hand-typed order or another client might send it: Shenzhen IOC with a "price" under the ask.
    req = OrderRequest("", "000001.SZ", Side.BUY, q.asks[0].volume, OrderType.MARKET, q.bids[4].price,
                       MarketType.IOC)
    o = broker.counter.orders[broker.counter.place("A", req, inst, "by-hand")]
    assert o.limit == inst.up_limit
    assert o.traded_volume == q.asks[0].volume and o.status is OrderStatus.SUCCEEDED
