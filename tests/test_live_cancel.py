"""On a live account the agent cancels its own orders as before, and an order a person typed by hand
(imported as external) only with a confirm token that the first cancel_order issues: bound to the
account and the order, used once. Both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from conftest import Session, make_worker, on_backend, open_session

from qmt_mcp.clock import ManualClock
from qmt_mcp.domain.orders import parse_order_request

pytestmark = pytest.mark.anyio
LIVE_ID = "99000002"


@asynccontextmanager
async def live_session(backend: str, clock: ManualClock, home: Path) -> AsyncIterator[Session]:
    sections = {"accounts": {"sim": {"account_id": "88000001"}, "real": {"account_id": LIVE_ID, "live": True}}}
    worker = make_worker(on_backend(backend, sections), home, clock)
    try:
        async with open_session(worker, clock) as s:
            yield s
    finally:
        await worker.close()


async def typed_by_hand(s: Session, account: str = "real", account_id: str = LIVE_ID) -> int:
    """A resting buy typed in QMT's own window; its order id, once the worker has imported it."""
    await s.ok("get_asset", account=account)   # the xtquant adapter has subscribed the account: pushes flow
    q = (await s.ok("get_quote", codes=["000001.SZ"]))["quotes"][0]
    req = parse_order_request({"account": account, "code": "000001.SZ", "side": "buy", "volume": 100,
                               "price": str(q["bid_prices"][4])})
    counter = s.counter
    oid = int(counter.place(account_id, req, counter.market.instrument("000001.SZ", counter._today()), ""))
    with anyio.fail_after(5):
        while True:
            changed = s.worker.service.next_change()
            orders = (await s.ok("get_orders", account=account))["orders"]
            if any(o["order_id"] == oid for o in orders):
                return oid
            await changed.wait()


def at_counter(s: Session, order_id: int) -> str:
    return str(s.counter.orders[order_id].to_broker().status.value)


async def test_cancelling_a_hand_typed_order_on_a_live_account_needs_the_token_the_first_call_issues(
    backend: str, clock: ManualClock, tmp_path: Path,
) -> None:
    async with live_session(backend, clock, tmp_path / "home") as s:
        oid = await typed_by_hand(s)
        err = await s.error("cancel_order", account="real", order_id=oid)
        assert err["code"] == "CONFIRM_REQUIRED" and err["state_changed"] == "no"
        token = err["details"]["confirm_token"]
        assert token and err["details"]["confirm_expires_at"]
        assert err["details"]["order"]["client_order_id"] == f"ext-{oid}"
        assert at_counter(s, oid) == "reported"   # nothing was sent
        assert (await s.error("cancel_order", account="real", order_id=oid,
                              confirm_token="abc.def"))["code"] == "CONFIRM_INVALID"
        done = await s.ok("cancel_order", account="real", order_id=oid, confirm_token=token)
        assert done["cancel_requested"] is True
        await s.ok("get_order", account="real", order_id=oid, wait_seconds=5)
        assert at_counter(s, oid) == "canceled"


async def test_a_cancel_token_is_bound_to_its_order_and_works_once(clock: ManualClock, tmp_path: Path) -> None:
    async with live_session("sim", clock, tmp_path / "home") as s:
        first, second = await typed_by_hand(s), await typed_by_hand(s)
        token = (await s.error("cancel_order", account="real", order_id=first))["details"]["confirm_token"]
        err = await s.error("cancel_order", account="real", order_id=second, confirm_token=token)
        assert err["code"] == "CONFIRM_MISMATCH" and at_counter(s, second) == "reported"
        # Spent by the attempt even when the broker's book cannot take the cancel: a new one is needed.
        book = s.counter.store._db
        book.execute("PRAGMA query_only = ON")
        assert (await s.error("cancel_order", account="real", order_id=first,
                              confirm_token=token))["code"] == "STATE_UNWRITABLE"
        book.execute("PRAGMA query_only = OFF")
        err = await s.error("cancel_order", account="real", order_id=first, confirm_token=token)
        assert err["code"] == "CONFIRM_USED" and at_counter(s, first) == "reported"
        fresh = (await s.error("cancel_order", account="real", order_id=first))["details"]["confirm_token"]
        assert (await s.ok("cancel_order", account="real", order_id=first, confirm_token=fresh))["cancel_requested"]
        assert at_counter(s, first) == "canceled"


async def test_the_agent_cancels_its_own_live_order_and_any_paper_order_without_a_token(
    backend: str, clock: ManualClock, tmp_path: Path,
) -> None:
    async with live_session(backend, clock, tmp_path / "home") as s:
        q = (await s.ok("get_quote", codes=["000001.SZ"]))["quotes"][0]
        order = {"account": "real", "code": "000001.SZ", "side": "buy", "volume": 100, "price": q["bid_prices"][4]}
        token = (await s.ok("preview_order", **order))["confirm_token"]
        mine = (await s.ok("place_order", **order, confirm_token=token, client_order_id="mine-1"))["order"]
        done = await s.ok("cancel_order", account="real", order_id=mine["order_id"])
        assert done["cancel_requested"] is True
        paper = await typed_by_hand(s, account="sim", account_id="88000001")
        assert (await s.ok("cancel_order", account="sim", order_id=paper))["cancel_requested"] is True
