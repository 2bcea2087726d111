"""An agent's breaker reset on an account `[approval] human` covers is a request: it records an approval
and lifts nothing; the breaker lifts only when a person approves, and stays tripped when they deny or
nobody decides. A paper account under `human = "live"` resets as before. The worker runs in this
process behind the real server (a manual clock)."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Session, SessionFactory

from qmt_mcp.calls import DecideApprovalArgs, ListApprovalsArgs
from qmt_mcp.domain.errors import ErrorCode, QmtError
from qmt_mcp.operator_cli import _decided, _listed

pytestmark = pytest.mark.anyio
ACCOUNTS = {"sim": {"account_id": "88000001"}, "real": {"account_id": "99000002", "live": True}}
# Orders below 10M yuan go without a person here, so the breaker can be tripped by a plain buy.
CONFIG: dict[str, Any] = {"accounts": ACCOUNTS, "risk": {"max_daily_loss": 1},
                          "approval": {"human": "live", "above_value": 10_000_000, "timeout_s": 60}}


async def _trip(s: Session, account: str) -> dict[str, Any]:
    """A buy that loses more than the 1 yuan limit (fees, the spread): the breaker trips."""
    q = (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
    await s.ok("get_risk_status", account=account)   # today's baseline
    buy = {"account": account, "code": "600000.SH", "side": "buy", "volume": 1000, "price": q["ask_prices"][4]}
    token = (await s.ok("preview_order", **buy)).get("confirm_token")
    await s.ok("place_order", **buy, **({"confirm_token": token} if token else {}))
    assert await _tripped(s, account)
    return buy


async def _tripped(s: Session, account: str) -> bool:
    return bool((await s.ok("get_risk_status", account=account))["accounts"][account]["breaker"]["tripped"])


async def _agent_reset(s: Session, note: str) -> dict[str, Any]:
    token = (await s.error("reset_risk", account="real", note=note))["details"]["confirm_token"]
    return await s.ok("reset_risk", account="real", note=note, confirm_token=token)


async def _decide(s: Session, approval_id: str, decision: str, note: str | None = None) -> dict[str, Any]:
    return await s.worker.service.approvals.decide_approval(
        DecideApprovalArgs(approval_id=approval_id, decision=decision, note=note, channel="cli"))  # type: ignore[arg-type]


async def test_an_agents_live_reset_waits_for_a_person_and_approving_lifts_the_breaker(
        session_with: SessionFactory) -> None:
    async with session_with(**CONFIG) as s:
        buy = await _trip(s, "real")
        out = await _agent_reset(s, "the agent reviewed the loss")
        assert out["breaker"]["tripped"] is True and out.get("reset_at") is None
        approval = out["approval"]
        assert approval["approval_id"] in approval["hint"] and "qmt-mcp approve" in approval["hint"]
        assert approval["channels"] == ["console", "cli", "elicitation", "app"]
        assert await _tripped(s, "real")
        preview = await s.ok("preview_order", **{**buy, "volume": 100})
        breaker = next(d for d in preview["risk"]["decisions"] if d["rule"] == "DAILY_LOSS_BREAKER")
        assert breaker["ok"] is False and preview["would_accept"] is False

        listed = (await s.worker.service.approvals.list_approvals(ListApprovalsArgs()))["approvals"]
        assert [(a["approval_id"], a["kind"], a["account"], a["order"], a["reset"]) for a in listed] == [
            (approval["approval_id"], "reset_risk", "real", None, {"note": "the agent reviewed the loss"})]
        assert "reset the daily-loss breaker" in _listed({"approvals": listed})

        decided = await _decide(s, approval["approval_id"], "approve", "agreed on the phone")
        assert (decided["decision"], decided["kind"]) == ("approved", "reset_risk")
        assert decided["breaker"] == {"tripped": False}
        assert decided["reset_at"] and "not tripped" in _decided(decided)
        assert not await _tripped(s, "real")
        assert (await s.worker.service.approvals.list_approvals(ListApprovalsArgs()))["approvals"] == []

        events = (await s.ok("get_order_events", account="real"))["events"]
        requested = [e for e in events if e["type"] == "approval_requested"]
        assert [(e["approval_id"], e["kind"], e["client_order_id"]) for e in requested] == [
            (approval["approval_id"], "reset_risk", None)]
        (dec,) = [e for e in events if e["type"] == "approval_decided"]
        assert (dec["decision"], dec["channel"], dec["kind"]) == ("approved", "cli", "reset_risk")
        (reset,) = [e for e in events if e["type"] == "risk" and e.get("rule") == "RESET"]
        assert "the agent reviewed the loss" in reset["message"] and "agreed on the phone" in reset["message"]

        with pytest.raises(QmtError) as again:
            await _decide(s, approval["approval_id"], "deny")
        assert again.value.code is ErrorCode.INVALID_ARGUMENT and again.value.details["reason"] == "already_decided"


async def test_a_denied_or_expired_reset_leaves_the_breaker_tripped(session_with: SessionFactory) -> None:
    async with session_with(**CONFIG) as s:
        await _trip(s, "real")
        denied = (await _agent_reset(s, "please"))["approval"]
        out = await _decide(s, denied["approval_id"], "deny", "not today")
        assert (out["decision"], out["breaker"]["tripped"]) == ("denied", True)
        assert "still tripped" in _decided(out)
        assert await _tripped(s, "real")

        late = (await _agent_reset(s, "please again"))["approval"]
        s.clock.advance(61)
        assert await s.worker.service.approvals.expire() == [late["approval_id"]]
        assert await _tripped(s, "real")
        with pytest.raises(QmtError) as after:
            await _decide(s, late["approval_id"], "approve")
        assert after.value.details["reason"] == "already_decided"

        decided_late = (await _agent_reset(s, "third time"))["approval"]
        s.clock.advance(61)   # the periodic job has not run: the decision itself finds it expired
        with pytest.raises(QmtError) as expired:
            await _decide(s, decided_late["approval_id"], "approve")
        assert expired.value.details["reason"] == "expired"
        assert await _tripped(s, "real")
        events = (await s.ok("get_order_events", account="real"))["events"]
        assert [e["decision"] for e in events if e["type"] == "approval_decided"] == ["denied", "expired", "expired"]


async def test_a_paper_accounts_reset_under_human_live_lifts_the_breaker_at_once(session_with: SessionFactory) -> None:
    async with session_with(**CONFIG) as s:
        await _trip(s, "sim")
        out = await s.ok("reset_risk", account="sim", note="reviewed")
        assert out["breaker"] == {"tripped": False} and out["reset_at"] and out.get("approval") is None
        assert not await _tripped(s, "sim")
        assert (await s.worker.service.approvals.list_approvals(ListApprovalsArgs()))["approvals"] == []


async def test_under_human_all_a_paper_accounts_reset_is_a_request_too(session_with: SessionFactory) -> None:
    async with session_with(**{**CONFIG, "approval": {**CONFIG["approval"], "human": "all"}}) as s:
        await _trip(s, "sim")
        out = await s.ok("reset_risk", account="sim", note="reviewed")
        assert out["breaker"]["tripped"] is True and out["approval"]["approval_id"]
        assert await _tripped(s, "sim")
        await _decide(s, out["approval"]["approval_id"], "approve")
        assert not await _tripped(s, "sim")
