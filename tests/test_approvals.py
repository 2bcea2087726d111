"""Orders that wait for a person: with `[approval]` asking for one, an agent's order passes every check,
waits `pending_approval` with nothing at the broker, and goes only when a person approves it (the
checks run again then); denied or expired, it ends `denied` and nothing was sent. A decision is made
once. These run the worker in this process behind the real server (a manual clock); the CLI and
kill -9 ones run real processes."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from conftest import Session, SessionFactory

from qmt_mcp.calls import BlockCodeArgs, DecideApprovalArgs, ListApprovalsArgs
from qmt_mcp.domain.errors import ErrorCode, QmtError
from qmt_mcp.domain.status import TRANSITIONS, OrderStatus
from qmt_mcp.worker.operator import OperatorCalls

pytestmark = pytest.mark.anyio
ALL = {"human": "all"}


async def _decide(s: Session, approval_id: str, decision: str, note: str | None = None) -> dict[str, Any]:
    """A person's decision, through the worker's operator handler (the CLI's path, minus the socket)."""
    return await s.worker.service.approvals.decide_approval(
        DecideApprovalArgs(approval_id=approval_id, decision=decision, note=note, channel="cli"))  # type: ignore[arg-type]


async def _pending(s: Session, cid: str) -> dict[str, Any]:
    placed = await s.ok("place_order", **await s.marketable_buy(cid))
    order = placed["order"]
    assert order["status"] == "pending_approval" and placed["idempotent_replay"] is False
    return order


def test_pending_approval_leaves_only_by_a_decision() -> None:
    assert TRANSITIONS[OrderStatus.PENDING_APPROVAL] == {OrderStatus.PENDING_SUBMIT, OrderStatus.DENIED}
    assert TRANSITIONS[OrderStatus.DENIED] == frozenset()
    others = [nxt for st, nxt in TRANSITIONS.items() if st is not OrderStatus.PENDING_APPROVAL]
    assert all(OrderStatus.DENIED not in nxt for nxt in others)


async def test_an_agents_order_waits_for_a_person_and_nothing_reaches_the_broker(session_with: SessionFactory) -> None:
    async with session_with(approval=ALL) as s:
        order = await _pending(s, "wait-1")
        approval = order["approval"]
        assert approval["approval_id"] in approval["hint"] and "qmt-mcp approve" in approval["hint"]
        assert approval["channels"] == ["console", "cli", "elicitation", "app"]
        assert order["order_id"] is None and len(s.counter.orders) == 0
        listed = (await s.worker.service.approvals.list_approvals(ListApprovalsArgs()))["approvals"]
        assert [(a["approval_id"], a["order"]["client_order_id"]) for a in listed] == [
            (approval["approval_id"], "wait-1")]
        events = (await s.ok("get_order_events", account="sim"))["events"]
        requested = [e for e in events if e["type"] == "approval_requested"]
        assert [(e["client_order_id"], e["approval_id"]) for e in requested] == [("wait-1", approval["approval_id"])]


async def test_an_approved_order_is_sent_and_fills(session_with: SessionFactory) -> None:
    async with session_with(approval=ALL) as s:
        order = await _pending(s, "ok-1")
        out = await _decide(s, order["approval"]["approval_id"], "approve", "looks right")
        assert out["decision"] == "approved" and out["order"]["status"] == "succeeded"
        assert len(s.counter.orders) == 1
        events = (await s.ok("get_order_events", account="sim"))["events"]
        (decided,) = [e for e in events if e["type"] == "approval_decided"]
        assert (decided["decision"], decided["channel"], decided["note"]) == ("approved", "cli", "looks right")


async def test_a_denial_with_a_note_ends_the_order_denied_and_nothing_is_sent(session_with: SessionFactory) -> None:
    async with session_with(approval=ALL) as s:
        order = await _pending(s, "no-1")
        out = await _decide(s, order["approval"]["approval_id"], "deny", "not today")
        assert out["order"]["status"] == "denied" and "not today" in out["order"]["status_msg"]
        got = (await s.ok("get_order", account="sim", client_order_id="no-1"))["order"]
        assert got["status"] == "denied" and got["order_id"] is None
        assert len(s.counter.orders) == 0


async def test_an_expired_approval_sends_nothing(session_with: SessionFactory) -> None:
    async with session_with(approval={"human": "all", "timeout_s": 60}) as s:
        order = await _pending(s, "late-1")
        s.clock.advance(61)
        assert await s.worker.service.approvals.expire() == [order["approval"]["approval_id"]]
        got = (await s.ok("get_order", account="sim", client_order_id="late-1"))["order"]
        assert (got["status"], got["status_msg"]) == ("denied", "expired")
        with pytest.raises(QmtError) as late:
            await _decide(s, order["approval"]["approval_id"], "approve")
        assert late.value.code is ErrorCode.INVALID_ARGUMENT and late.value.details["reason"] == "already_decided"
        assert len(s.counter.orders) == 0


async def test_an_approval_decided_after_its_time_is_expired_not_approved(session_with: SessionFactory) -> None:
    async with session_with(approval={"human": "all", "timeout_s": 60}) as s:
        order = await _pending(s, "late-2")
        s.clock.advance(61)   # the periodic job has not run yet: the decision itself finds it expired
        with pytest.raises(QmtError) as late:
            await _decide(s, order["approval"]["approval_id"], "approve")
        assert late.value.code is ErrorCode.INVALID_ARGUMENT and late.value.details["reason"] == "expired"
        got = (await s.ok("get_order", account="sim", client_order_id="late-2"))["order"]
        assert (got["status"], got["status_msg"]) == ("denied", "expired") and len(s.counter.orders) == 0


async def test_a_second_decision_is_refused_and_concurrent_ones_decide_once(session_with: SessionFactory) -> None:
    async with session_with(approval=ALL) as s:
        first = await _pending(s, "twice-1")
        await _decide(s, first["approval"]["approval_id"], "deny")
        with pytest.raises(QmtError) as again:
            await _decide(s, first["approval"]["approval_id"], "approve")
        assert again.value.code is ErrorCode.INVALID_ARGUMENT and again.value.details["reason"] == "already_decided"

        second = await _pending(s, "race-1")
        outcomes: list[str] = []

        async def one(decision: str) -> None:
            try:
                outcomes.append((await _decide(s, second["approval"]["approval_id"], decision))["decision"])
            except QmtError as exc:
                outcomes.append(exc.details["reason"])

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(one, "approve")
                tg.start_soon(one, "deny")
        assert sorted(outcomes) in (["already_decided", "approved"], ["already_decided", "denied"])
        assert len(s.counter.orders) == (1 if "approved" in outcomes else 0)


async def test_the_same_client_order_id_while_pending_replays_the_pending_record(session_with: SessionFactory) -> None:
    async with session_with(approval=ALL) as s:
        order = await _pending(s, "again-1")
        replay = await s.ok("place_order", **{**await s.marketable_buy("again-1"), "price": order["price"]})
        assert replay["idempotent_replay"] is True and replay["order"] == order
        listed = (await s.worker.service.approvals.list_approvals(ListApprovalsArgs()))["approvals"]
        assert len(listed) == 1


async def test_a_pending_buy_counts_toward_risk_usage_but_not_against_itself_once_approved(
    session_with: SessionFactory,
) -> None:
    async with session_with(approval=ALL, risk={"max_daily_orders": 1}) as s:
        order = await _pending(s, "count-1")
        usage = (await s.ok("get_risk_status", account="sim"))["accounts"]["sim"]["usage"]
        assert usage["orders_today"] == 1 and usage["turnover_today"] > 0 and usage["positions"] == 1
        refused = await s.error("place_order", **await s.marketable_buy("count-2"))
        assert refused["code"] == "RISK_REJECT" and refused["details"]["rule"] == "MAX_DAILY_ORDERS"
        out = await _decide(s, order["approval"]["approval_id"], "approve")
        assert out["order"]["status"] == "succeeded"


async def test_a_refusal_at_the_second_check_leaves_the_approved_order_denied(session_with: SessionFactory) -> None:
    async with session_with(approval=ALL) as s:
        order = await _pending(s, "recheck-1")
        # A person blocks the code while the order waits.
        await OperatorCalls(s.worker.service).set_blocked_code(
            BlockCodeArgs(account="sim", code="600000.SH", blocked=True, note="hold on"))
        out = await _decide(s, order["approval"]["approval_id"], "approve")
        assert out["decision"] == "approved" and out["refused"]["code"] == "RISK_REJECT"
        assert out["order"]["status"] == "denied" and "RISK_REJECT" in out["order"]["status_msg"]
        assert len(s.counter.orders) == 0


async def test_only_the_orders_approval_asks_for_wait(session_with: SessionFactory) -> None:
    accounts = {"sim": {"account_id": "88000001"}, "real": {"account_id": "99000002", "live": True}}
    async with session_with(accounts=accounts, approval={"human": "live"}) as s:
        assert (await s.ok("place_order", **await s.marketable_buy("paper-1")))["order"]["status"] == "succeeded"
        live = {**await s.marketable_buy("live-1"), "account": "real"}
        preview = await s.ok("preview_order", **{k: v for k, v in live.items() if k != "client_order_id"})
        placed = await s.ok("place_order", **live, confirm_token=preview["confirm_token"])
        assert placed["order"]["status"] == "pending_approval"
    async with session_with(approval={"human": "all", "above_value": 1_000_000}) as s:
        assert (await s.ok("place_order", **await s.marketable_buy("small-1")))["order"]["status"] == "succeeded"


async def test_a_waiting_place_order_says_where_to_decide_and_returns_the_filled_order(
    session_with: SessionFactory,
) -> None:
    async with session_with(approval=ALL) as s:
        progress: list[str] = []
        asked = anyio.Event()

        async def on_progress(p: float, total: float | None, message: str | None) -> None:
            progress.append(message or "")
            if progress[-1].startswith("waiting for a person"):
                asked.set()

        out: dict[str, Any] = {}

        async def place() -> None:
            res = await s.client.call_tool("place_order", {**await s.marketable_buy("waits-1"), "wait_seconds": 30},
                                           progress_callback=on_progress)
            out.update(res.structured_content or {})

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(place)
                await asked.wait()
                rec = s.worker.journal.order_by_client_id("sim", "waits-1")
                assert rec is not None and rec.approval is not None
                assert f"qmt-mcp approve {rec.approval['approval_id']}" in progress[0]
                await _decide(s, rec.approval["approval_id"], "approve")
        assert out["ok"] and out["order"]["status"] == "succeeded"
