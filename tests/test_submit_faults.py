"""A broker call that does not answer in time is SUBMIT_INDETERMINATE: never retried, never sent twice,
and the same client_order_id cannot place a second order while the outcome is unknown."""

from __future__ import annotations

from pathlib import Path

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
