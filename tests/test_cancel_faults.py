"""A cancel whose outcome cannot be written keeps the paper counter and the journal telling the same
story, and answers a typed error: a full disk (a real tmpfs filled to its last byte, see
test_storage_faults.py) refuses the cancel before anything changes, on both backends; a broker book
that cannot be written changes nothing; a journal that cannot be written lets the cancel through,
says so, and catches up once it can."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import Session, make_worker, on_backend, open_session
from test_storage_faults import _fill, _tiny_tmpfs

from qmt_mcp.clock import ManualClock
from qmt_mcp.config import Config

pytestmark = pytest.mark.anyio


def config(backend: str) -> Config:
    return on_backend(backend, {"risk": {"enabled": False}})


@asynccontextmanager
async def worker_session(backend: str, home: Path, clock: ManualClock) -> AsyncIterator[Session]:
    worker = make_worker(config(backend), home, clock)
    try:
        async with open_session(worker, clock) as s:
            yield s
    finally:
        await worker.close()


async def resting_buy(s: Session, cid: str) -> dict[str, Any]:
    q = (await s.ok("get_quote", codes=["000001.SZ"]))["quotes"][0]
    order = (await s.ok("place_order", account="sim", code="000001.SZ", side="buy", volume=100,
                        price=q["bid_prices"][4], client_order_id=cid))["order"]
    assert order["status"] == "reported"
    return dict(order)


async def frozen(s: Session) -> float:
    return float((await s.ok("get_asset", account="sim"))["frozen_cash"])


async def status(s: Session, order_id: int) -> str:
    return str((await s.ok("get_order", account="sim", order_id=order_id))["order"]["status"])


def counter_status(s: Session, order_id: int) -> str:
    return str(s.counter.orders[order_id].to_broker().status.value)


async def test_a_cancel_on_a_full_disk_changes_nothing_and_the_order_cancels_after_a_restart(
    backend: str, clock: ManualClock, tmp_path: Path,
) -> None:
    with _tiny_tmpfs(tmp_path / "disk", 4096) as disk:
        home = disk / "home"
        async with worker_session(backend, home, clock) as s:
            order = await resting_buy(s, "rest-1")
            held = await frozen(s)
            assert held > 0
            # Emptied WALs must grow for the next write, so that write meets the full disk.
            s.worker.audit.flush()   # nothing left for the flusher to anchor meanwhile
            s.worker.journal.checkpoint()
            s.counter.store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            filler = _fill(disk)
            err = await s.error("cancel_order", account="sim", order_id=order["order_id"])
            assert err["code"] == "STATE_UNWRITABLE" and err["state_changed"] == "no"
            assert counter_status(s, order["order_id"]) == "reported"   # not canceled in memory only
            assert await status(s, order["order_id"]) == "reported" and await frozen(s) == held
            filler.unlink()
        # After a restart the counter's book and the journal still agree: open, and it cancels.
        async with worker_session(backend, home, clock) as s:
            assert counter_status(s, order["order_id"]) == "reported" and await frozen(s) == held
            assert await status(s, order["order_id"]) == "reported"
            done = await s.ok("cancel_order", account="sim", order_id=order["order_id"])
            assert done["cancel_requested"] is True
            await s.ok("get_order", account="sim", order_id=order["order_id"], wait_seconds=5)
            assert await status(s, order["order_id"]) == "canceled" and await frozen(s) == 0


async def test_a_cancel_the_counter_cannot_write_to_its_book_changes_nothing_and_can_be_sent_again(
    clock: ManualClock, tmp_path: Path,
) -> None:
    async with worker_session("sim", tmp_path / "home", clock) as s:
        order = await resting_buy(s, "rest-1")
        held = await frozen(s)
        seq = (await s.ok("get_order_events", account="sim", limit=1000))["next_seq"]
        book = s.counter.store._db
        book.execute("PRAGMA query_only = ON")
        err = await s.error("cancel_order", account="sim", order_id=order["order_id"])
        assert err["code"] == "STATE_UNWRITABLE" and err["state_changed"] == "no" and err["retryable"] is True
        assert counter_status(s, order["order_id"]) == "reported" and await frozen(s) == held
        assert await status(s, order["order_id"]) == "reported"
        assert (await s.ok("get_order_events", account="sim", after_seq=seq))["events"] == []  # nothing pushed
        book.execute("PRAGMA query_only = OFF")
        assert (await s.ok("cancel_order", account="sim", order_id=order["order_id"]))["cancel_requested"] is True
        assert await status(s, order["order_id"]) == "canceled" and await frozen(s) == 0


async def test_a_cancel_the_journal_cannot_record_goes_through_says_so_and_catches_up(
    backend: str, clock: ManualClock, tmp_path: Path,
) -> None:
    async with worker_session(backend, tmp_path / "home", clock) as s:
        order = await resting_buy(s, "rest-1")
        journal = s.worker.journal._db
        journal.execute("PRAGMA query_only = ON")
        err = await s.error("cancel_order", account="sim", order_id=order["order_id"])
        assert err["code"] == "STATE_UNWRITABLE" and err["state_changed"] == "yes" and err["retryable"] is False
        assert err["details"]["cancel_requested"] is True
        assert counter_status(s, order["order_id"]) == "canceled" and await frozen(s) == 0
        again = await s.error("cancel_order", account="sim", order_id=order["order_id"])
        assert again["code"] == "STATE_UNWRITABLE" and again["state_changed"] == "no"
        journal.execute("PRAGMA query_only = OFF")
        # Asked again once the journal is writable, the cancel is found done at the broker: no second one.
        done = await s.ok("cancel_order", account="sim", order_id=order["order_id"])
        assert done["cancel_requested"] is False and done["order"]["status"] == "canceled"
        assert await status(s, order["order_id"]) == "canceled"
