"""Elicitation as an approval channel: where an order would wait for a person and the MCP client can
ask, place_order asks them; their yes approves it in the same call (approval_decided, channel
"elicitation") and it is sent; a no sends nothing; a client that cannot ask leaves it pending as
before; without "elicitation" in `approval.channels` nobody is asked. Real clients, both eras."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import make_worker, open_session
from test_human_confirm import ERAS, Person, _previewed

from qmt_mcp.clock import ManualClock
from qmt_mcp.config import parse_config
from qmt_mcp.domain.errors import ErrorCode, QmtError

pytestmark = pytest.mark.anyio
ACCOUNTS = {"sim": {"account_id": "88000001"}, "real": {"account_id": "99000002", "live": True}}


def _cfg(human: str = "live", channels: list[str] | None = None) -> Any:
    approval: dict[str, Any] = {"human": human}
    if channels is not None:
        approval["channels"] = channels
    return parse_config({"accounts": ACCOUNTS, "approval": approval})


def _decided(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["decision"], e["channel"]) for e in events if e["type"] == "approval_decided"]


@pytest.mark.parametrize("mode", ERAS)
@pytest.mark.parametrize("confirm_human", ["off", "if_supported"])
async def test_a_person_who_accepts_in_the_client_approves_and_the_order_is_sent(
    clock: ManualClock, tmp_path: Path, mode: str, confirm_human: str,
) -> None:
    person = Person("accept")
    worker = make_worker(_cfg(), tmp_path / "h", clock)
    async with open_session(worker, clock, confirm_human, mode=mode, elicitation_callback=person) as s:
        placed = await s.ok("place_order", **await _previewed(s), client_order_id="el-ok-1")
        assert placed["order"]["status"] == "succeeded" and placed["order"]["order_id"] is not None
        assert placed["order"]["approval"]["approval_id"]
        assert len(person.asked) == 1 and "LIVE order" in person.asked[0]   # one question, both purposes
        events = (await s.ok("get_order_events", account="real"))["events"]
        assert _decided(events) == [("approved", "elicitation")]
        assert len(worker.broker.counter.orders) == 1  # type: ignore[attr-defined]
    await worker.close()


@pytest.mark.parametrize("mode", ERAS)
@pytest.mark.parametrize("answer", ["decline", "say_no"])
async def test_a_person_who_declines_in_the_client_stops_the_order(
    clock: ManualClock, tmp_path: Path, mode: str, answer: str,
) -> None:
    person = Person(answer)
    worker = make_worker(_cfg(), tmp_path / "h", clock)
    async with open_session(worker, clock, "off", mode=mode, elicitation_callback=person) as s:
        err = await s.error("place_order", **await _previewed(s))
        assert err["code"] == "CONFIRM_DECLINED" and err["state_changed"] == "no"
        assert (await s.ok("get_orders", account="real"))["orders"] == []
        assert worker.broker.counter.orders == {}  # type: ignore[attr-defined]
    await worker.close()


async def test_a_client_without_elicitation_leaves_the_order_pending(clock: ManualClock, tmp_path: Path) -> None:
    worker = make_worker(_cfg(), tmp_path / "h", clock)
    async with open_session(worker, clock, "if_supported") as s:
        placed = await s.ok("place_order", **await _previewed(s))
        assert placed["order"]["status"] == "pending_approval"
        assert worker.broker.counter.orders == {}  # type: ignore[attr-defined]
    await worker.close()


async def test_without_the_elicitation_channel_nobody_is_asked_and_the_order_waits(
    clock: ManualClock, tmp_path: Path,
) -> None:
    person = Person("accept")
    worker = make_worker(_cfg(channels=["cli"]), tmp_path / "h", clock)
    async with open_session(worker, clock, "off", elicitation_callback=person) as s:
        placed = await s.ok("place_order", **await _previewed(s))
        assert placed["order"]["status"] == "pending_approval" and person.asked == []
    await worker.close()


async def test_a_paper_order_under_human_all_is_asked_as_a_paper_order(clock: ManualClock, tmp_path: Path) -> None:
    person = Person("accept")
    worker = make_worker(_cfg(human="all"), tmp_path / "h", clock)
    async with open_session(worker, clock, "off", elicitation_callback=person) as s:
        placed = await s.ok("place_order", **await _previewed(s, "sim"))
        assert placed["order"]["status"] == "succeeded"
        assert len(person.asked) == 1 and "paper account" in person.asked[0] and "LIVE" not in person.asked[0]
        assert _decided((await s.ok("get_order_events", account="sim"))["events"]) == [("approved", "elicitation")]
    await worker.close()


async def test_a_paper_order_needing_no_approval_asks_nobody(clock: ManualClock, tmp_path: Path) -> None:
    person = Person("accept")
    worker = make_worker(_cfg(), tmp_path / "h", clock)
    async with open_session(worker, clock, "if_supported", elicitation_callback=person) as s:
        placed = await s.ok("place_order", **await _previewed(s, "sim"))
        assert placed["order"]["status"] == "succeeded" and person.asked == []
    await worker.close()


async def test_a_paper_orders_elicited_approval_works_once(clock: ManualClock, tmp_path: Path) -> None:
    """A paper order has no confirm token for the person's yes to be spent with: the yes is spent
    itself, so it can never approve a second order (even one the server sent under another id)."""
    worker = make_worker(_cfg("all"), tmp_path / "h", clock)
    async with open_session(worker, clock, "off") as s:
        q = (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
        order = {"account": "sim", "code": "600000.SH", "side": "buy", "volume": 100, "price": q["ask_prices"][0]}
        wc = s.server.deps.client
        proof = (await wc.call("check_order", {**order, "person_approval": "ask"}))["person"]["approval_proof"]
        first = await wc.call("place_order", {**order, "client_order_id": "once-1", "approval_proof": proof})
        assert first["order"]["status"] == "succeeded"
        with pytest.raises(QmtError) as again:
            await wc.call("place_order", {**order, "client_order_id": "once-2", "approval_proof": proof})
        assert again.value.code is ErrorCode.CONFIRM_USED
        assert len(worker.broker.counter.orders) == 1  # type: ignore[attr-defined]
    await worker.close()
