"""Live accounts take orders and risk resets only with a worker-issued, bound, single-use token."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import START, Session, SessionFactory, make_worker, open_session

from qmt_mcp.clock import ManualClock
from qmt_mcp.config import parse_config

pytestmark = pytest.mark.anyio

LIVE = {"accounts": {"sim": {"account_id": "88000001"}, "real": {"account_id": "99000002", "live": True}}}


async def _order(s: Session) -> dict[str, Any]:
    q = (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
    return {"account": "real", "code": "600000.SH", "side": "buy", "volume": 100, "price": q["ask_prices"][0]}


async def test_live_order_without_token_is_refused(session_with: SessionFactory) -> None:
    async with session_with(**LIVE) as s:
        err = await s.error("place_order", **await _order(s))
        assert err["code"] == "CONFIRM_REQUIRED" and err["state_changed"] == "no"
        assert (await s.ok("get_orders", account="real"))["orders"] == []


async def test_previewed_token_places_once_then_is_used(session_with: SessionFactory) -> None:
    async with session_with(**LIVE) as s:
        order = await _order(s)
        p = await s.ok("preview_order", **order)
        assert p["live"] is True and p["confirm_token"] and p["confirm_expires_at"]
        placed = await s.ok("place_order", **order, confirm_token=p["confirm_token"])
        assert placed["order"]["live"] is True
        err = await s.error("place_order", **order, confirm_token=p["confirm_token"])
        assert err["code"] == "CONFIRM_USED"
        assert len((await s.ok("get_orders", account="real"))["orders"]) == 1


@pytest.mark.parametrize("field", ["volume", "price", "code", "order_type"])
async def test_token_for_another_order_is_a_mismatch(session_with: SessionFactory, field: str) -> None:
    async with session_with(**LIVE) as s:
        order = await _order(s)
        token = (await s.ok("preview_order", **order))["confirm_token"]
        changed = dict(order)
        if field == "volume":
            changed["volume"] = 200
        elif field == "price":
            changed["price"] = round(order["price"] + 0.01, 2)
        elif field == "code":
            other = (await s.ok("get_quote", codes=["000001.SZ"]))["quotes"][0]
            changed.update(code="000001.SZ", price=other["ask_prices"][0])
        else:
            del changed["price"]
            changed["order_type"] = "market"
        err = await s.error("place_order", **changed, confirm_token=token)
        assert err["code"] == "CONFIRM_MISMATCH"
        assert (await s.ok("get_orders", account="real"))["orders"] == []


async def test_forged_token_is_refused(session_with: SessionFactory) -> None:
    async with session_with(**LIVE) as s:
        order = await _order(s)
        err = await s.error("place_order", **order, confirm_token="abc.def")
        assert err["code"] == "CONFIRM_INVALID"
        token = (await s.ok("preview_order", **order))["confirm_token"]
        payload, mac = token.split(".")
        tampered = mac[:-2] + ("AA" if not mac.endswith("AA") else "BB")
        err = await s.error("place_order", **order, confirm_token=f"{payload}.{tampered}")
        assert err["code"] == "CONFIRM_INVALID"
        assert (await s.ok("get_orders", account="real"))["orders"] == []


async def test_expired_token_is_refused(session_with: SessionFactory) -> None:
    async with session_with(**LIVE) as s:
        order = await _order(s)
        token = (await s.ok("preview_order", **order))["confirm_token"]
        s.clock.advance(121)  # the default ttl is 120 s
        err = await s.error("place_order", **order, confirm_token=token)
        assert err["code"] == "CONFIRM_EXPIRED"


async def test_token_from_one_account_does_not_work_on_another(session_with: SessionFactory) -> None:
    cfg = {"accounts": {"real": {"account_id": "99000002", "live": True},
                        "real2": {"account_id": "99000003", "live": True}}}
    async with session_with(**cfg) as s:
        order = await _order(s)
        token = (await s.ok("preview_order", **order))["confirm_token"]
        err = await s.error("place_order", **{**order, "account": "real2"}, confirm_token=token)
        assert err["code"] == "CONFIRM_MISMATCH"


async def test_live_risk_reset_needs_a_token(session_with: SessionFactory) -> None:
    async with session_with(**LIVE) as s:
        err = await s.error("reset_risk", account="real", note="checked with the desk")
        assert err["code"] == "CONFIRM_REQUIRED"
        token = err["details"]["confirm_token"]
        done = await s.ok("reset_risk", account="real", note="checked with the desk", confirm_token=token)
        assert done["breaker"] == {"tripped": False}
        err = await s.error("reset_risk", account="real", note="again", confirm_token=token)
        assert err["code"] == "CONFIRM_USED"


async def test_token_for_a_buy_does_not_place_a_sell(session_with: SessionFactory) -> None:
    async with session_with(**LIVE) as s:
        q = (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
        buy = {"account": "real", "code": "600000.SH", "side": "buy", "volume": 200, "price": q["ask_prices"][2]}
        await s.ok("place_order", **buy, confirm_token=(await s.ok("preview_order", **buy))["confirm_token"])
        await s.advance(24 * 3600)  # T+1: the shares are sellable now
        q = (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
        another_buy = {**buy, "volume": 100, "price": q["bid_prices"][0]}
        token = (await s.ok("preview_order", **another_buy))["confirm_token"]
        err = await s.error("place_order", **{**another_buy, "side": "sell"}, confirm_token=token)
        assert err["code"] == "CONFIRM_MISMATCH"
        assert (await s.ok("get_orders", account="real"))["orders"] == []  # nothing today (the buy was yesterday)


async def test_token_for_one_market_type_does_not_place_another(session_with: SessionFactory) -> None:
    async with session_with(**LIVE) as s:
        q = (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
        order = {"account": "real", "code": "600000.SH", "side": "buy", "volume": 100, "order_type": "market",
                 "market_type": "best5_cancel", "price": q["ask_prices"][4]}
        token = (await s.ok("preview_order", **order))["confirm_token"]
        err = await s.error("place_order", **{**order, "market_type": "best5_limit"}, confirm_token=token)
        assert err["code"] == "CONFIRM_MISMATCH"
        assert (await s.ok("get_orders", account="real"))["orders"] == []


class _RehearsalClock(ManualClock):
    """Simulated time (`sim.start_at`) that starts over at each start, while real time runs on."""

    def __init__(self, start: datetime, wall_at_start: float) -> None:
        super().__init__(start)
        self._start, self._wall0 = start, wall_at_start

    def wall(self) -> float:
        return self._wall0 + (self.now() - self._start).total_seconds()


async def test_an_expired_token_stays_expired_after_a_restart_that_sends_simulated_time_back(
    tmp_path: Path,
) -> None:
    cfg = parse_config(LIVE)
    first = _RehearsalClock(START, 1_900_000_000.0)
    worker = make_worker(cfg, tmp_path / "h", first)
    async with open_session(worker, first) as s:
        order = await _order(s)
        token = (await s.ok("preview_order", **order))["confirm_token"]
        first.advance(cfg.confirm.ttl_s + 60)
        assert (await s.error("place_order", **order, confirm_token=token))["code"] == "CONFIRM_EXPIRED"
    await worker.close()
    # The worker restarts: simulated time is back at START, real time has moved on.
    again = _RehearsalClock(START, 1_900_000_000.0 + cfg.confirm.ttl_s + 90)
    worker = make_worker(cfg, tmp_path / "h", again)
    async with open_session(worker, again) as s:
        assert (await s.error("place_order", **order, confirm_token=token))["code"] == "CONFIRM_EXPIRED"
        assert worker.broker.counter.orders == {}  # type: ignore[attr-defined]
    await worker.close()
