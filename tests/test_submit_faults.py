"""A broker call that does not answer in time is SUBMIT_INDETERMINATE: never retried, never sent twice,
and the same client_order_id cannot place a second order while the outcome is unknown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import FAST_SUBMIT, faulty_worker, open_session

from qmt_mcp.clock import ManualClock

pytestmark = pytest.mark.anyio


async def test_order_call_that_never_answers_is_indeterminate_and_not_resent(
    clock: ManualClock, tmp_path: Path,
) -> None:
    worker, broker = faulty_worker(FAST_SUBMIT, tmp_path / "home", clock)
    async with open_session(worker, clock) as s:
        order = await s.marketable_buy("lost-1")
        broker.script("place_order", "hang_before_send")
        err = await s.error("place_order", **order)
        assert err["code"] == "SUBMIT_INDETERMINATE" and err["state_changed"] == "unknown"
        assert err["retryable"] is False
        rec = (await s.ok("get_order", account="sim", client_order_id="lost-1"))["order"]
        assert rec["status"] == "indeterminate"
        again = await s.error("place_order", **order)
        assert again["code"] == "SUBMIT_INDETERMINATE"
        assert broker.calls["place_order"] == 1
        assert broker.counter.orders == {}  # the broker never saw it; nothing was sent twice
    await worker.close()


async def test_lost_answer_after_the_broker_took_the_order_places_it_once(clock: ManualClock, tmp_path: Path) -> None:
    worker, broker = faulty_worker(FAST_SUBMIT, tmp_path / "home", clock)
    async with open_session(worker, clock) as s:
        order = await s.marketable_buy("late-1")
        broker.script("place_order", "hang_after_send")
        err = await s.error("place_order", **order)
        assert err["code"] == "SUBMIT_INDETERMINATE" and err["state_changed"] == "unknown"
        # The broker's own pushes, carrying the client_order_id as remark, tell what happened.
        rec = (await s.ok("get_order", account="sim", client_order_id="late-1"))["order"]
        assert rec["status"] == "succeeded"
        replay = await s.ok("place_order", **order)
        assert replay["idempotent_replay"] is True
        assert len(broker.counter.orders) == 1 and broker.calls["place_order"] == 1
    await worker.close()


async def test_a_waiting_order_answers_only_once_its_late_trade_is_recorded(clock: ManualClock, tmp_path: Path) -> None:
    """A fill whose trade push comes after the order's final status, in a later batch: the waiting
    place_order reports the trade in its progress before it answers."""
    worker, broker = faulty_worker(FAST_SUBMIT, tmp_path / "home", clock)
    progress: list[str] = []
    out: dict[str, Any] = {}

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        progress.append(message or "")

    async with open_session(worker, clock) as s:
        order = await s.marketable_buy("late-1")
        broker.hold_trades()

        async def place() -> None:
            res = await s.client.call_tool("place_order", {**order, "wait_seconds": 20}, progress_callback=on_progress)
            out.update(res.structured_content or {})

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(place)
                await broker.trade_held.wait()
                rec = worker.journal.order_by_client_id("sim", "late-1")
                assert rec is not None and rec.status.value == "succeeded" and out == {}
                broker.release_trades()
    assert out["order"]["status"] == "succeeded"
    assert any(m.startswith("trade:") for m in progress), progress
    await worker.close()
