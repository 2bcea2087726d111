"""A person confirms live orders through MCP elicitation, on both protocol eras; declining stops the
order; under `required` a client that cannot ask fails closed; paper orders are never put to a person."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import Session, make_worker, open_session
from mcp.types import ElicitResult

from qmt_mcp.clock import ManualClock
from qmt_mcp.config import parse_config

pytestmark = pytest.mark.anyio
LIVE = parse_config({"accounts": {"sim": {"account_id": "88000001"},
                                  "real": {"account_id": "99000002", "live": True}}})
ERAS = ["auto", "legacy"]  # 2026-07-28 (input_required rounds) and 2025-11-25 (elicitation/create)


class Person:
    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.asked: list[str] = []

    async def __call__(self, context: Any, params: Any) -> ElicitResult:
        self.asked.append(params.message)
        if self.answer == "accept":
            return ElicitResult(action="accept", content={"confirm": True})
        if self.answer == "say_no":
            return ElicitResult(action="accept", content={"confirm": False})
        return ElicitResult(action=self.answer)  # decline | cancel


async def _previewed(s: Session, account: str = "real") -> dict[str, Any]:
    q = (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
    order = {"account": account, "code": "600000.SH", "side": "buy", "volume": 100, "price": q["ask_prices"][0]}
    p = await s.ok("preview_order", **order)
    return {**order, "confirm_token": p.get("confirm_token")} if p.get("confirm_token") else order


@pytest.mark.parametrize("mode", ERAS)
async def test_person_who_accepts_lets_the_live_order_through(clock: ManualClock, tmp_path: Path, mode: str) -> None:
    person = Person("accept")
    worker = make_worker(LIVE, tmp_path / "h", clock)
    async with open_session(worker, clock, "if_supported", mode=mode, elicitation_callback=person) as s:
        order = await _previewed(s)
        placed = await s.ok("place_order", **order)
        assert placed["order"]["live"] is True
        assert len(person.asked) == 1
        msg = person.asked[0]
        assert "LIVE" in msg and "BUY 100 shares of 600000.SH" in msg and "commission" in msg and "total" in msg
    await worker.close()


@pytest.mark.parametrize("mode", ERAS)
@pytest.mark.parametrize("answer", ["decline", "cancel", "say_no"])
async def test_person_who_declines_stops_the_order(clock: ManualClock, tmp_path: Path, mode: str, answer: str) -> None:
    person = Person(answer)
    worker = make_worker(LIVE, tmp_path / "h", clock)
    async with open_session(worker, clock, "if_supported", mode=mode, elicitation_callback=person) as s:
        order = await _previewed(s)
        err = await s.error("place_order", **order)
        assert err["code"] == "CONFIRM_DECLINED" and err["state_changed"] == "no"
        assert (await s.ok("get_orders", account="real"))["orders"] == []
        assert worker.broker.counter.orders == {}  # type: ignore[attr-defined]
    await worker.close()


@pytest.mark.parametrize("mode", ERAS)
async def test_client_without_elicitation_fails_closed_when_a_person_is_required(
    clock: ManualClock, tmp_path: Path, mode: str,
) -> None:
    worker = make_worker(LIVE, tmp_path / "h", clock)
    async with open_session(worker, clock, "required", mode=mode) as s:
        order = await _previewed(s)
        err = await s.error("place_order", **order)
        assert err["code"] == "CONFIRM_DECLINED" and err["details"]["reason"] == "client_cannot_ask"
        assert worker.broker.counter.orders == {}  # type: ignore[attr-defined]
    await worker.close()


async def test_client_without_elicitation_relies_on_the_token_when_asking_is_optional(
    clock: ManualClock, tmp_path: Path,
) -> None:
    worker = make_worker(LIVE, tmp_path / "h", clock)
    async with open_session(worker, clock, "if_supported") as s:
        order = await _previewed(s)
        assert (await s.ok("place_order", **order))["order"]["live"] is True
    await worker.close()


async def test_paper_orders_are_never_put_to_a_person(clock: ManualClock, tmp_path: Path) -> None:
    person = Person("decline")
    worker = make_worker(LIVE, tmp_path / "h", clock)
    async with open_session(worker, clock, "required", elicitation_callback=person) as s:
        order = await _previewed(s, account="sim")
        await s.ok("place_order", **order)
        assert person.asked == []
    await worker.close()


async def test_live_order_without_token_is_refused_before_anyone_is_asked(clock: ManualClock, tmp_path: Path) -> None:
    person = Person("accept")
    worker = make_worker(LIVE, tmp_path / "h", clock)
    async with open_session(worker, clock, "required", elicitation_callback=person) as s:
        order = await _previewed(s)
        order.pop("confirm_token")
        assert (await s.error("place_order", **order))["code"] == "CONFIRM_REQUIRED"
        assert person.asked == []
    await worker.close()
