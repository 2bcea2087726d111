"""Orders through the real server and worker: fills, resting orders, cancels, events in seq order,
idempotency, fees to the fen."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from conftest import BACKENDS, Session, SessionFactory

from qmt_mcp.config import Config

pytestmark = pytest.mark.anyio


@pytest.fixture(params=list(BACKENDS), ids=list(BACKENDS))
def cfg(request: pytest.FixtureRequest) -> Config:
    return BACKENDS[request.param]


async def _quote(session: Session, code: str) -> dict[str, Any]:
    return (await session.ok("get_quote", codes=[code]))["quotes"][0]


def _statuses(events: list[dict[str, Any]], order_id: int) -> list[str]:
    return [e["status"] for e in events if e["type"] == "order_status" and e.get("order_id") == order_id]


@pytest.mark.rule("LIMIT_CROSSES_LEVELS_AND_RESTS", "STATUS_PATH", "PUSH_ORDER")
async def test_marketable_buy_fills_level_by_level_and_reports_in_xtquant_order(session: Session) -> None:
    q = await _quote(session, "600000.SH")
    volume = q["ask_volumes"][0] + 100  # more than level 1 holds: must take level 2 too
    volume -= volume % 100
    res = await session.ok("place_order", account="sim", code="600000.SH", side="buy", volume=volume,
                           price=q["ask_prices"][1], client_order_id="fill-1")
    order = res["order"]
    assert order["status"] == "succeeded" and order["traded_volume"] == volume
    trades = (await session.ok("get_trades", account="sim"))["trades"]
    assert [t["price"] for t in trades] == q["ask_prices"][:2]
    assert sum(t["volume"] for t in trades) == volume
    events = (await session.ok("get_order_events", account="sim"))["events"]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert _statuses(events, order["order_id"]) == ["unreported", "reported", "part_succ", "succeeded"]
    assert [e["type"] for e in events].count("trade") == 2


async def test_fill_costs_cash_exactly_to_the_fen(session: Session) -> None:
    q = await _quote(session, "600000.SH")
    price = Decimal(str(q["ask_prices"][0]))
    await session.ok("place_order", account="sim", code="600000.SH", side="buy", volume=100,
                     price=float(price))
    amount = price * 100
    commission = max((amount * Decimal("0.00025")).quantize(Decimal("0.01")), Decimal(5))
    transfer = (amount * Decimal("0.00001")).quantize(Decimal("0.01"))
    asset = await session.ok("get_asset", account="sim")
    assert Decimal(str(asset["cash"])) == Decimal(1_000_000) - amount - commission - transfer
    trade = (await session.ok("get_trades", account="sim"))["trades"][0]
    assert Decimal(str(trade["commission"])) == commission and Decimal(str(trade["transfer_fee"])) == transfer
    assert Decimal(str(trade["fees"])) == commission + transfer


async def test_sell_pays_stamp_duty(session: Session) -> None:
    q = await _quote(session, "000001.SZ")
    await session.ok("place_order", account="sim", code="000001.SZ", side="buy", volume=1000, price=q["ask_prices"][4])
    await session.advance(24 * 3600)
    cash_before = Decimal(str((await session.ok("get_asset", account="sim"))["cash"]))
    q = await _quote(session, "000001.SZ")
    await session.ok("place_order", account="sim", code="000001.SZ", side="sell", volume=1000,
                     price=q["bid_prices"][4], client_order_id="sell-1")
    trades = [t for t in (await session.ok("get_trades", account="sim"))["trades"] if t["client_order_id"] == "sell-1"]
    amount = sum(Decimal(str(t["price"])) * t["volume"] for t in trades)
    fees = max((amount * Decimal("0.00025")).quantize(Decimal("0.01")), Decimal(5)) + \
        (amount * Decimal("0.0005")).quantize(Decimal("0.01")) + (amount * Decimal("0.00001")).quantize(Decimal("0.01"))
    cash_after = Decimal(str((await session.ok("get_asset", account="sim"))["cash"]))
    assert cash_after - cash_before == amount - fees


@pytest.mark.rule("LIMIT_CROSSES_LEVELS_AND_RESTS")
async def test_resting_order_fills_when_a_later_quote_crosses_it(session: Session) -> None:
    q = await _quote(session, "600000.SH")
    price = q["bid_prices"][0]
    res = await session.ok("place_order", account="sim", code="600000.SH", side="buy", volume=100, price=price,
                           client_order_id="rest-1")
    assert res["order"]["status"] == "reported"
    frozen = (await session.ok("get_asset", account="sim"))["frozen_cash"]
    assert frozen >= price * 100
    journal = session.worker.journal
    for _ in range(3000):  # quotes every 3 s; the seeded market crosses well within this bound
        await session.advance(3)
        rec = journal.order_by_client_id("sim", "rest-1")
        if rec is not None and rec.status.value == "succeeded":
            break
    order = (await session.ok("get_order", account="sim", client_order_id="rest-1"))["order"]
    assert order["status"] == "succeeded" and order["traded_price"] <= price
    assert (await session.ok("get_asset", account="sim"))["frozen_cash"] == 0


@pytest.mark.rule("STATUS_PATH")
async def test_cancel_moves_a_resting_order_to_canceled_and_is_idempotent(session: Session) -> None:
    q = await _quote(session, "600000.SH")
    res = await session.ok("place_order", account="sim", code="600000.SH", side="buy", volume=200,
                           price=q["bid_prices"][4])
    oid = res["order"]["order_id"]
    c = await session.ok("cancel_order", account="sim", order_id=oid)
    assert c["order"]["status"] == "canceled" and c["cancel_requested"] is True
    again = await session.ok("cancel_order", account="sim", order_id=oid)
    assert again["cancel_requested"] is False and again["order"]["status"] == "canceled"
    detail = await session.ok("get_order", account="sim", order_id=oid)
    assert [e["status"] for e in detail["events"]] == ["unreported", "reported", "reported_cancel", "canceled"]
    assert (await session.ok("get_orders", account="sim", cancelable_only=True))["orders"] == []


async def test_cancel_of_a_filled_order_is_not_cancelable(session: Session) -> None:
    q = await _quote(session, "600000.SH")
    oid = (await session.ok("place_order", account="sim", code="600000.SH", side="buy", volume=100,
                            price=q["ask_prices"][0]))["order"]["order_id"]
    err = await session.error("cancel_order", account="sim", order_id=oid)
    assert err["code"] == "NOT_CANCELABLE"
    err = await session.error("cancel_order", account="sim", order_id=42)
    assert err["code"] == "ORDER_NOT_FOUND"


async def test_same_client_order_id_replays_and_never_places_twice(session: Session) -> None:
    q = await _quote(session, "600000.SH")
    args = {"account": "sim", "code": "600000.SH", "side": "buy", "volume": 100, "price": q["ask_prices"][0],
            "client_order_id": "once-1"}
    first = await session.ok("place_order", **args)
    second = await session.ok("place_order", **args)
    assert first["idempotent_replay"] is False and second["idempotent_replay"] is True
    assert second["order"]["order_id"] == first["order"]["order_id"]
    assert len(session.counter.orders) == 1
    err = await session.error("place_order", **{**args, "volume": 200})
    assert err["code"] == "IDEMPOTENCY_CONFLICT"
    assert len(session.counter.orders) == 1


@pytest.mark.rule("MARKET_BEST5_CANCEL")
async def test_market_order_best5_cancel_fills_what_the_book_has(session_with: SessionFactory) -> None:
    async with session_with(risk={"enabled": False}) as session:
        q = await _quote(session, "600000.SH")
        total = sum(q["ask_volumes"])
        res = await session.ok("place_order", account="sim", code="600000.SH", side="buy", volume=total + 10_000,
                               order_type="market", price=q["up_limit"])
        order = res["order"]
        assert order["price_type"] == 42
        assert order["status"] == "part_cancel" and order["traded_volume"] == total


async def test_get_order_waits_for_a_final_status_and_events_long_poll(session: Session) -> None:
    q = await _quote(session, "600000.SH")
    res = await session.ok("place_order", account="sim", code="600000.SH", side="buy", volume=100,
                           price=q["ask_prices"][0], wait_seconds=5)
    assert res["order"]["status"] == "succeeded"
    got = await session.ok("get_order_events", account="sim", after_seq=0, limit=2)
    assert len(got["events"]) == 2 and got["next_seq"] == got["events"][-1]["seq"]
    rest = await session.ok("get_order_events", account="sim", after_seq=got["next_seq"])
    assert all(e["seq"] > got["next_seq"] for e in rest["events"])
    # Nothing new: a short long-poll returns empty with next_seq unchanged.
    idle = await session.ok("get_order_events", account="sim", after_seq=rest["next_seq"], wait_seconds=0.05)
    assert idle["events"] == [] and idle["next_seq"] == rest["next_seq"]


async def test_order_resource_shows_the_order_and_its_fill(session: Session) -> None:
    import json

    q = await _quote(session, "600000.SH")
    oid = (await session.ok("place_order", account="sim", code="600000.SH", side="buy", volume=100,
                            price=q["ask_prices"][0]))["order"]["order_id"]
    body = await session.client.read_resource(f"qmt://accounts/sim/orders/{oid}")
    data = json.loads(body.contents[0].text)  # type: ignore[union-attr]
    assert data["order"]["status"] == "succeeded"
    assert any(e["type"] == "trade" for e in data["events"])
    pos = json.loads((await session.client.read_resource("qmt://accounts/sim/positions")).contents[0].text)  # type: ignore[union-attr]
    assert pos["positions"][0]["volume"] == 100


async def test_concurrent_requests_with_one_client_order_id_place_one_order(session: Session) -> None:
    import anyio

    q = await _quote(session, "600000.SH")
    args = {"account": "sim", "code": "600000.SH", "side": "buy", "volume": 100, "price": q["bid_prices"][4],
            "client_order_id": "twin-1"}
    results: list[dict[str, Any]] = []

    async def send() -> None:
        results.append(await session.call("place_order", **args))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(send)
    assert all(r["ok"] for r in results)
    assert sorted(r["idempotent_replay"] for r in results) == [False, True, True, True, True]
    assert len({r["order"]["order_id"] for r in results}) == 1
    assert len(session.counter.orders) == 1


async def test_impossible_broker_transition_is_refused_and_the_order_keeps_its_state(session: Session) -> None:
    from dataclasses import replace

    from qmt_mcp.domain.status import OrderStatus

    q = await _quote(session, "600000.SH")
    placed = (await session.ok("place_order", account="sim", code="600000.SH", side="buy", volume=100,
                               price=q["ask_prices"][0]))["order"]
    assert placed["status"] == "succeeded"
    before = (await session.ok("get_order_events", account="sim"))["next_seq"]
    broker_order = session.counter.orders[placed["order_id"]].to_broker()
    stale = replace(broker_order, status=OrderStatus.REPORTED, traded_volume=0)
    assert session.worker.service.pushes.apply_broker_order("sim", stale) is False
    after = await session.ok("get_order", account="sim", order_id=placed["order_id"])
    assert after["order"]["status"] == "succeeded" and after["order"]["traded_volume"] == 100
    assert (await session.ok("get_order_events", account="sim"))["next_seq"] == before
