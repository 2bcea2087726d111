"""A person confirms live orders through MCP elicitation, on both protocol eras; declining stops the
order; under `required` a client that cannot ask fails closed; paper orders are never put to a person."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import Session, make_worker, open_session
from mcp.types import ElicitResult

from qmt_mcp.clock import ManualClock
from qmt_mcp.config import ApprovalConfig, parse_config
from qmt_mcp.domain.errors import ErrorCode, QmtError
from qmt_mcp.server.app import build_server

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


REQUIRED_LIVE = parse_config({
    "server": {"confirm_human": "required"},
    "accounts": {"real": {"account_id": "99000002", "live": True}},
    "risk": {"max_order_value": 10_000_000, "max_daily_turnover": 100_000_000, "max_position_pct": 100},
})


@pytest.mark.parametrize("mode", ERAS)
@pytest.mark.parametrize("bad", ["forged", "mismatched", "used"])
async def test_a_bad_token_is_refused_before_the_person_is_asked(
    clock: ManualClock, tmp_path: Path, mode: str, bad: str,
) -> None:
    person = Person("accept")
    worker = make_worker(LIVE, tmp_path / "h", clock)
    async with open_session(worker, clock, "required", mode=mode, elicitation_callback=person) as s:
        order = await _previewed(s)
        if bad == "forged":
            order["confirm_token"] = order["confirm_token"][:-4] + "AAAA"
        elif bad == "mismatched":
            order["volume"] = 200
        else:
            await s.ok("place_order", **order)
            person.asked.clear()
        err = await s.error("place_order", **order)
        expected = {"forged": "CONFIRM_INVALID", "mismatched": "CONFIRM_MISMATCH", "used": "CONFIRM_USED"}
        assert err["code"] == expected[bad]
        assert person.asked == []
    await worker.close()


@pytest.mark.parametrize("mode", ERAS)
async def test_an_order_refused_at_the_look_is_answered_and_never_sent_unasked(
    clock: ManualClock, tmp_path: Path, mode: str,
) -> None:
    """The race an agent can run: freeze the cash with a resting order, send the live order, free the
    cash a moment later. The refusal is the answer; nothing reaches the broker without the person."""
    person = Person("accept")
    worker = make_worker(REQUIRED_LIVE, tmp_path / "h", clock)
    async with open_session(worker, clock, "required", mode=mode, elicitation_callback=person) as s:
        q = (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
        buy = {"account": "real", "code": "600000.SH", "side": "buy", "volume": 1000, "price": q["ask_prices"][0]}
        token = (await s.ok("preview_order", **buy))["confirm_token"]  # while the cash is free
        low = round(q["down_limit"] + 0.01, 2)
        rest = {"account": "real", "code": "600000.SH", "side": "buy", "price": low,
                "volume": int(995_000 / low / 100) * 100}
        resting = await s.ok("place_order", **rest,
                             confirm_token=(await s.ok("preview_order", **rest))["confirm_token"])
        assert len(person.asked) == 1
        err = await s.error("place_order", **buy, confirm_token=token)
        assert err["code"] == "INSUFFICIENT_CASH" and err["state_changed"] == "no"
        assert len(person.asked) == 1  # nobody is asked about an order that would not go
        await s.ok("cancel_order", account="real", order_id=resting["order"]["order_id"])
        assert len(worker.broker.counter.orders) == 1  # type: ignore[attr-defined]
        placed = await s.ok("place_order", **buy, confirm_token=token)  # now it would go: now they are asked
        assert placed["order"]["live"] is True and len(person.asked) == 2
    await worker.close()


async def test_the_worker_refuses_a_live_order_that_carries_no_persons_confirmation(
    clock: ManualClock, tmp_path: Path,
) -> None:
    """A front that skips the question (a bug, or an old server) cannot send: the worker itself
    demands the person's proof, bound to the token, under the order lock."""
    worker = make_worker(REQUIRED_LIVE, tmp_path / "h", clock)
    async with open_session(worker, clock, "off") as s:
        order = await _previewed(s)
        err = await s.error("place_order", **order)
        assert err["code"] == "CONFIRM_DECLINED" and err["details"]["reason"] == "no_person_confirmation"
        wc = s.server.deps.client
        with pytest.raises(QmtError) as refused:
            await wc.call("place_order", {**order, "person": "ask"})
        assert refused.value.code is ErrorCode.CONFIRM_DECLINED
        # A proof issued for one order does not carry another, even with that order's own token.
        proof = (await wc.call("check_order", {**order, "person": "ask"}))["person"]["proof"]
        other = {**order, "volume": 200}
        other["confirm_token"] = (await s.ok("preview_order", **{k: v for k, v in other.items()
                                                                 if k != "confirm_token"}))["confirm_token"]
        with pytest.raises(QmtError) as mismatched:
            await wc.call("place_order", {**other, "person": "ask", "person_proof": proof})
        assert mismatched.value.details["reason"] == "person_confirmation_invalid"
        assert worker.broker.counter.orders == {}  # type: ignore[attr-defined]
        placed = await wc.call("place_order", {**order, "person": "ask", "person_proof": proof})
        assert placed["order"]["live"] is True
        with pytest.raises(QmtError) as again:
            await wc.call("place_order", {**order, "client_order_id": "again1", "person": "ask",
                                          "person_proof": proof})
        assert again.value.code is ErrorCode.CONFIRM_USED
        assert len(worker.broker.counter.orders) == 1  # type: ignore[attr-defined]
    await worker.close()


async def _tripped(s: Session) -> None:
    q = (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
    await s.ok("get_risk_status", account="real")  # today's baseline
    buy = {"account": "real", "code": "600000.SH", "side": "buy", "volume": 1000, "price": q["ask_prices"][4]}
    # Set up behind the agent's back, as a person at the terminal would: straight to the worker.
    buy["confirm_token"] = (await s.ok("preview_order", **buy))["confirm_token"]
    wc = s.server.deps.client
    proof = (await wc.call("check_order", {**buy, "person": "ask"}))["person"]["proof"]
    await wc.call("place_order", {**buy, "person": "ask", "person_proof": proof})
    assert (await s.ok("get_risk_status", account="real"))["accounts"]["real"]["breaker"]["tripped"] is True


BREAKER_LIVE = parse_config({
    "server": {"confirm_human": "required"},
    "accounts": {"real": {"account_id": "99000002", "live": True}}, "risk": {"max_daily_loss": 1},
})


@pytest.mark.parametrize("mode", ERAS)
@pytest.mark.parametrize("answer", ["accept", "decline", "cannot_ask"])
async def test_an_agent_cannot_lift_its_own_breaker_without_the_person(
    clock: ManualClock, tmp_path: Path, mode: str, answer: str,
) -> None:
    person = Person("accept")
    worker = make_worker(BREAKER_LIVE, tmp_path / "h", clock)
    kw: dict[str, Any] = {} if answer == "cannot_ask" else {"elicitation_callback": person}
    async with open_session(worker, clock, "required", mode=mode, **kw) as s:
        await _tripped(s)
        person.answer = answer
        person.asked.clear()
        token = (await s.error("reset_risk", account="real", note="let me trade"))["details"]["confirm_token"]
        res = await s.call("reset_risk", account="real", note="let me trade", confirm_token=token)
        events = (await s.ok("get_order_events", account="real"))["events"]
        resets = [e for e in events if e["type"] == "risk" and e.get("rule") == "RESET"]
        if answer == "accept":
            assert res["ok"] and len(resets) == 1 and len(person.asked) == 1 and "breaker" in person.asked[0]
        else:
            assert res["error"]["code"] == "CONFIRM_DECLINED" and resets == []
    await worker.close()


@pytest.mark.parametrize("mode", ERAS)
async def test_the_person_is_told_how_far_a_live_market_buy_may_trade(
    clock: ManualClock, tmp_path: Path, mode: str,
) -> None:
    person = Person("accept")
    worker = make_worker(REQUIRED_LIVE, tmp_path / "h", clock)
    async with open_session(worker, clock, "required", mode=mode, elicitation_callback=person) as s:
        q = (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
        order = {"account": "real", "code": "600000.SH", "side": "buy", "volume": 100, "order_type": "market",
                 "market_type": "counterparty_best"}
        token = (await s.ok("preview_order", **order))["confirm_token"]
        await s.ok("place_order", **order, confirm_token=token)
        assert len(person.asked) == 1
        assert f"up to {q['up_limit']} yuan per share (today's limit)" in person.asked[0], person.asked[0]
    await worker.close()


async def test_a_server_that_never_asks_registers_its_gated_tools_without_resolvers() -> None:
    """With confirm_human "off" and no approval by elicitation nobody can be asked, so place_order and
    reset_risk go without the SDK's resolver round (server/human.py without_asking); the tools the
    client sees are the same either way, and a server that may ask keeps both resolvers."""
    @asynccontextmanager
    async def no_deps() -> Any:
        yield None

    asking = {"if_supported": build_server(no_deps, "if_supported"),
              "by elicitation": build_server(no_deps, "off", ApprovalConfig(human="live",
                                                                             channels=["cli", "elicitation"]))}
    quiet = build_server(no_deps, "off")
    for name in ("place_order", "reset_risk"):
        assert not quiet._tool_manager.get_tool(name).resolved_params, name
        for server in asking.values():
            assert set(server._tool_manager.get_tool(name).resolved_params) == {"gate", "person"}, name
    listed = {t.name: t for t in await quiet.list_tools()}
    for server in asking.values():
        for t in await server.list_tools():
            assert (t.input_schema, t.output_schema) == (listed[t.name].input_schema, listed[t.name].output_schema)
