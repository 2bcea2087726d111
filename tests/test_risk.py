"""Risk rules deny with their own code, in the fixed order; the breaker persists and lets sells through."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from conftest import SessionFactory, make_worker, open_session

from qmt_mcp.clock import ManualClock
from qmt_mcp.config import parse_config
from qmt_mcp.domain.orders import parse_order_request
from qmt_mcp.domain.risk import RULES, RiskContext, RiskLimits, RiskUsage, evaluate, first_denial

pytestmark = pytest.mark.anyio


def _ctx(**kw: object) -> RiskContext:
    base: dict[str, object] = {
        "order": parse_order_request({"account": "sim", "code": "600000.SH", "side": "buy", "volume": 1000,
                                      "price": "10"}),
        "order_value": Decimal(10000), "limits": RiskLimits(), "usage": RiskUsage(), "breaker_tripped": False,
        "baseline_total_asset": Decimal(1_000_000), "total_asset": Decimal(1_000_000),
    }
    base.update(kw)
    return RiskContext(**base)  # type: ignore[arg-type]


def test_rules_run_in_the_contract_order() -> None:
    assert [r.name for r in RULES] == [
        "KILL_SWITCH", "DAILY_LOSS_BREAKER", "BASELINE_PENDING", "SYMBOL_BLOCKED", "MAX_ORDER_VALUE",
        "MAX_DAILY_TURNOVER", "MAX_ORDERS_PER_MINUTE", "MAX_DAILY_ORDERS", "MAX_POSITIONS", "MAX_POSITION_PCT",
    ]


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"limits": RiskLimits(kill_switch=True)}, "KILL_SWITCH"),
        ({"breaker_tripped": True}, "DAILY_LOSS_BREAKER"),
        ({"baseline_total_asset": None}, "BASELINE_PENDING"),
        ({"limits": RiskLimits(blocked_codes=frozenset({"600000.SH"}))}, "SYMBOL_BLOCKED"),
        ({"order_value": Decimal(100_001)}, "MAX_ORDER_VALUE"),
        ({"usage": RiskUsage(turnover_today=Decimal(495_000))}, "MAX_DAILY_TURNOVER"),
        ({"usage": RiskUsage(orders_last_minute=10)}, "MAX_ORDERS_PER_MINUTE"),
        ({"usage": RiskUsage(orders_today=100)}, "MAX_DAILY_ORDERS"),
        ({"usage": RiskUsage(position_codes=frozenset(f"{i:06d}.SZ" for i in range(10)))}, "MAX_POSITIONS"),
        ({"order_value": Decimal(90_000), "total_asset": Decimal(200_000)}, "MAX_POSITION_PCT"),
    ],
)
def test_each_rule_denies_with_its_own_code(changes: dict[str, object], rule: str) -> None:
    denial = first_denial(evaluate(_ctx(**changes)))
    assert denial is not None and denial.code.value == "RISK_REJECT" and denial.details["rule"] == rule


def test_the_first_rule_in_order_wins_when_several_deny() -> None:
    ctx = _ctx(limits=RiskLimits(kill_switch=True, max_order_value=Decimal(1)), breaker_tripped=True)
    denial = first_denial(evaluate(ctx))
    assert denial is not None and denial.details["rule"] == "KILL_SWITCH"


def test_kill_switch_and_breaker_let_position_reducing_sells_through() -> None:
    sell = parse_order_request({"account": "sim", "code": "600000.SH", "side": "sell", "volume": 100, "price": "10"})
    assert first_denial(evaluate(_ctx(order=sell, limits=RiskLimits(kill_switch=True), breaker_tripped=True))) is None


async def test_order_over_max_value_is_refused_through_the_server(session_with: SessionFactory) -> None:
    async with session_with(risk={"max_order_value": 1000}) as s:
        q = (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
        err = await s.error("place_order", account="sim", code="600000.SH", side="buy", volume=200,
                            price=q["ask_prices"][0])
        assert err["code"] == "RISK_REJECT" and err["details"]["rule"] == "MAX_ORDER_VALUE"
        p = await s.ok("preview_order", account="sim", code="600000.SH", side="buy", volume=200,
                       price=q["ask_prices"][0])
        denied = [d["rule"] for d in p["risk"]["decisions"] if not d["ok"]]
        assert denied == ["MAX_ORDER_VALUE"] and p["would_accept"] is False


async def test_per_account_override_applies_to_that_account_only(session_with: SessionFactory) -> None:
    cfg = {"accounts": {"sim": {"account_id": "88000001"},
                        "small": {"account_id": "88000002", "risk": {"max_order_value": 500}}}}
    async with session_with(**cfg) as s:
        q = (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
        args = {"code": "600000.SH", "side": "buy", "volume": 100, "price": q["ask_prices"][0]}
        assert (await s.error("place_order", account="small", **args))["details"]["rule"] == "MAX_ORDER_VALUE"
        await s.ok("place_order", account="sim", **args)


async def test_tripped_breaker_survives_restart_and_reset_needs_a_note(clock: ManualClock, tmp_path: Path) -> None:
    cfg = parse_config({"risk": {"max_daily_loss": 1}})
    home = tmp_path / "home"
    worker = make_worker(cfg, home, clock)
    async with open_session(worker, clock) as s:
        q = (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
        await s.ok("get_risk_status", account="sim")  # captures today's baseline
        # Buying costs fees and crosses the spread: total asset drops by more than 1 yuan.
        await s.ok("place_order", account="sim", code="600000.SH", side="buy", volume=1000, price=q["ask_prices"][4])
        status = (await s.ok("get_risk_status", account="sim"))["accounts"]["sim"]
        assert status["breaker"]["tripped"] is True and status["daily_pnl"] < -1
    await worker.close()
    worker = make_worker(cfg, home, clock)
    async with open_session(worker, clock) as s:
        assert (await s.ok("health"))["accounts"]["sim"]["risk_breaker"] == "tripped"
        q = (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
        err = await s.error("place_order", account="sim", code="600000.SH", side="buy", volume=100,
                            price=q["ask_prices"][0])
        assert err["details"]["rule"] == "DAILY_LOSS_BREAKER"
        assert (await s.error("reset_risk", account="sim", note=""))["code"] == "INVALID_ARGUMENT"
        await s.ok("reset_risk", account="sim", note="reviewed the loss with the owner")
        events = (await s.ok("get_order_events", account="sim"))["events"]
        assert any(e["type"] == "risk" and e.get("message") == "reviewed the loss with the owner" for e in events)
    await worker.close()


async def test_open_buys_count_toward_the_position_limit(session_with: SessionFactory) -> None:
    """Resting buys grow a position as surely as fills: two buys of 20% each must not make 40%
    against a 30% limit just because the first has not traded yet."""
    risk = {"max_order_value": 10_000_000, "max_daily_turnover": 100_000_000, "max_position_pct": 30}
    async with session_with(risk=risk) as s:
        q = (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
        low = round(q["down_limit"] + 0.01, 2)
        volume = int(200_000 / low / 100) * 100  # about 20% of the 1,000,000 yuan account
        await s.ok("place_order", account="sim", code="600000.SH", side="buy", volume=volume, price=low)
        preview = await s.ok("preview_order", account="sim", code="600000.SH", side="buy", volume=volume, price=low)
        pct = next(d for d in preview["risk"]["decisions"] if d["rule"] == "MAX_POSITION_PCT")
        assert pct["ok"] is False and "open buys" in pct["message"]
        err = await s.error("place_order", account="sim", code="600000.SH", side="buy", volume=volume, price=low)
        assert err["code"] == "RISK_REJECT" and err["details"]["rule"] == "MAX_POSITION_PCT"
        # Another code is a position of its own.
        await s.ok("preview_order", account="sim", code="000001.SZ", side="buy", volume=100, price=10)


async def test_a_reset_breaker_stays_reset_until_a_further_loss_of_the_limit(session_with: SessionFactory) -> None:
    """The breaker once tripped again at the very next look, because the day was still down: a
    person's reset lifted nothing. Now the loss that trips it again is counted from the reset."""
    async with session_with(risk={"max_daily_loss": 1}) as s:
        q = (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
        await s.ok("get_risk_status", account="sim")  # today's baseline
        buy = {"account": "sim", "code": "600000.SH", "side": "buy", "volume": 1000, "price": q["ask_prices"][4]}
        await s.ok("place_order", **buy)               # fees and the spread: more than 1 yuan down
        assert (await s.ok("get_risk_status", account="sim"))["accounts"]["sim"]["breaker"]["tripped"] is True
        await s.ok("reset_risk", account="sim", note="reviewed with the owner")
        status = (await s.ok("get_risk_status", account="sim"))["accounts"]["sim"]
        assert status["breaker"]["tripped"] is False and status["daily_pnl"] < -1  # still down on the day
        q = (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
        await s.ok("place_order", **{**buy, "price": q["ask_prices"][4]})   # loses more than 1 yuan again
        assert (await s.ok("get_risk_status", account="sim"))["accounts"]["sim"]["breaker"]["tripped"] is True


def test_the_kill_switch_holds_even_where_the_risk_limits_are_off() -> None:
    ctx = _ctx(limits=RiskLimits(enabled=False, kill_switch=True))
    denial = first_denial(evaluate(ctx))
    assert denial is not None and denial.details["rule"] == "KILL_SWITCH"
    assert first_denial(evaluate(_ctx(limits=RiskLimits(enabled=False, max_order_value=Decimal(1))))) is None
