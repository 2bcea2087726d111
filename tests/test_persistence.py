"""State survives a worker restart: paper account, orders, risk state; event seq is never reused."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import make_worker, open_session

from qmt_mcp.clock import ManualClock
from qmt_mcp.config import Config
from qmt_mcp.domain.events import RiskEvent
from qmt_mcp.domain.orders import OrderRecord, OrderType, Side
from qmt_mcp.domain.status import OrderStatus
from qmt_mcp.worker.journal import Journal

pytestmark = pytest.mark.anyio


async def test_paper_account_orders_and_events_survive_a_restart(clock: ManualClock, tmp_path: Path) -> None:
    home = tmp_path / "home"
    worker = make_worker(Config(), home, clock)
    async with open_session(worker, clock) as s:
        q = (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
        await s.ok("place_order", account="sim", code="600000.SH", side="buy", volume=200,
                   price=q["ask_prices"][1], client_order_id="keep-1")
        rest = await s.ok("place_order", account="sim", code="600000.SH", side="buy", volume=100,
                          price=q["bid_prices"][4], client_order_id="keep-2")
        before_asset = await s.ok("get_asset", account="sim")
        before_seq = (await s.ok("get_order_events", account="sim"))["next_seq"]
    await worker.close()

    clock.advance(1)
    worker = make_worker(Config(), home, clock)
    async with open_session(worker, clock) as s:
        assert await s.ok("get_asset", account="sim") == before_asset
        pos = (await s.ok("get_positions", account="sim"))["positions"]
        assert [(p["code"], p["volume"]) for p in pos] == [("600000.SH", 200)]
        orders = {o["client_order_id"]: o for o in (await s.ok("get_orders", account="sim"))["orders"]}
        assert orders["keep-1"]["status"] == "succeeded" and orders["keep-2"]["status"] == "reported"
        # The replay still works after the restart: no second order.
        again = await s.ok("place_order", account="sim", code="600000.SH", side="buy", volume=200,
                           price=q["ask_prices"][1], client_order_id="keep-1")
        assert again["idempotent_replay"] is True
        # The resting order is still open at the counter and can be canceled.
        c = await s.ok("cancel_order", account="sim", order_id=rest["order"]["order_id"])
        assert c["order"]["status"] == "canceled"
        after = (await s.ok("get_order_events", account="sim", after_seq=before_seq))["events"]
        assert after and all(e["seq"] > before_seq for e in after)
    await worker.close()


async def test_event_seq_is_never_reused_after_restart(clock: ManualClock, tmp_path: Path) -> None:
    home = tmp_path / "home"
    worker = make_worker(Config(), home, clock)
    worker.journal.append(RiskEvent(account="sim", rule="RESET", message="a"), clock.now())
    last = worker.journal.append(RiskEvent(account="sim", rule="RESET", message="b"), clock.now())["seq"]
    # Deleting rows must not let a number come back (AUTOINCREMENT).
    worker.journal._db.execute("DELETE FROM events")
    worker.journal._db.commit()
    await worker.close()
    worker = make_worker(Config(), home, clock)
    nxt = worker.journal.append(RiskEvent(account="sim", rule="RESET", message="c"), clock.now())["seq"]
    assert nxt == last + 1
    await worker.close()


def test_a_journal_from_before_the_breaker_rearm_opens_and_keeps_its_risk_state(tmp_path: Path) -> None:
    import sqlite3
    from decimal import Decimal

    from qmt_mcp.worker.journal import Journal

    path = tmp_path / "worker.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE risk_state (account TEXT PRIMARY KEY, day TEXT NOT NULL, baseline TEXT, "
                   "tripped INTEGER NOT NULL DEFAULT 0, reason TEXT NOT NULL DEFAULT '', tripped_at TEXT, "
                   "reset_at TEXT, reset_note TEXT)")
        db.execute("INSERT INTO risk_state VALUES ('sim', '2026-11-20', '1000000', 1, 'loss', 't', NULL, NULL)")
    journal = Journal(path)
    state = journal.risk_state("sim")
    assert state is not None and state["tripped"] and state["rearm_total"] is None
    journal.put_risk_state("sim", {**state, "tripped": False, "rearm_total": Decimal("999000.5")})
    assert journal.risk_state("sim")["rearm_total"] == Decimal("999000.5")  # type: ignore[index]
    journal.close()


def _pending() -> OrderRecord:
    """A paper buy's record as the order path first writes it (pending_submit, no broker id yet)."""
    return OrderRecord(account="sim", client_order_id="c1", code="600000.SH", name="浦发银行", side=Side.BUY,
                       order_type=OrderType.LIMIT, market_type=None, price_type=11, price=Decimal("9.10"),
                       volume=100, status=OrderStatus.PENDING_SUBMIT, created_at="2026-11-20T10:00:00.000+08:00",
                       live=False, fingerprint={"code": "600000.SH"})


def test_inside_a_batch_a_record_reads_as_written_and_a_rollback_leaves_the_committed_one(tmp_path: Path) -> None:
    """A push batch that updates an order twice reads its own first update for the second, and a batch
    that does not commit leaves nothing of itself behind in the journal's cache of recent records."""
    journal = Journal(tmp_path / "worker.sqlite")
    pending = _pending()
    assert journal.insert_order(pending)
    unreported = replace(pending.advanced(OrderStatus.UNREPORTED), order_id=7)
    with journal.batch(durable=False):
        journal.put_order(unreported)
        assert journal.order_by_client_id("sim", "c1") == unreported
        journal.put_order(unreported.advanced(OrderStatus.REPORTED))
    assert journal.order_by_client_id("sim", "c1") == unreported.advanced(OrderStatus.REPORTED)

    external = replace(pending, client_order_id="ext-8", order_id=8, status=OrderStatus.UNKNOWN)
    with pytest.raises(RuntimeError), journal.batch(durable=False):
        assert journal.insert_order(external)
        assert journal.order_by_client_id("sim", "ext-8") == external   # seen inside its batch...
        raise RuntimeError("the batch fails before it commits")
    assert journal.order_by_client_id("sim", "ext-8") is None            # ...and gone with it
    journal.close()


def test_a_batch_writes_each_order_once_and_its_reads_of_the_table_see_its_writes(tmp_path: Path) -> None:
    """Inside a batch an order's record goes to the table once, at the commit, however often the batch
    updates it; a read of the table inside the batch (by broker id, here) still finds what it wrote; a
    batch that fails writes none of it; a fresh journal on the file reads what committed."""
    path = tmp_path / "worker.sqlite"
    journal = Journal(path)
    pending = _pending()
    assert journal.insert_order(pending)
    unreported = replace(pending.advanced(OrderStatus.UNREPORTED), order_id=7)
    reported = unreported.advanced(OrderStatus.REPORTED)
    writes = journal._db.total_changes
    with journal.batch(durable=False):
        journal.put_order(unreported)
        journal.put_order(reported)
        assert journal._db.total_changes == writes                       # nothing written yet
        assert journal.orders_by_id("sim", 7) == [reported]               # the table read sees the batch
        journal.put_order(reported.advanced(OrderStatus.CANCELED))
    assert journal._db.total_changes == writes + 2                       # once before the read, once at commit

    with pytest.raises(RuntimeError), journal.batch(durable=False):
        journal.put_order(replace(reported, status_msg="never"))
        raise RuntimeError("the batch fails before it commits")
    journal.close()

    reopened = Journal(path)
    assert reopened.order_by_client_id("sim", "c1") == reported.advanced(OrderStatus.CANCELED)
    reopened.close()


def test_each_commit_is_fsynced_as_its_write_asks_and_a_run_of_one_kind_sets_nothing(tmp_path: Path) -> None:
    """synchronous=FULL for a durable commit, NORMAL for a relaxed batch's, set only when it changes
    (SQLite reads it at the commit): the statements the connection ran say which commit had which."""
    journal = Journal(tmp_path / "worker.sqlite")
    ran: list[str] = []
    journal._db.set_trace_callback(ran.append)
    pending = _pending()

    def settings_at_commits() -> tuple[list[str], int]:
        """The setting each commit since the last look ran under, and how many times it was set."""
        mode, out, sets = "FULL", [], 0
        for sql in ran:
            if sql.startswith("PRAGMA synchronous="):
                mode, sets = sql.removeprefix("PRAGMA synchronous="), sets + 1
            elif sql == "COMMIT":
                out.append(mode)
        ran.clear()
        return out, sets

    assert journal.insert_order(pending)
    assert settings_at_commits() == (["FULL"], 0)
    for status in (OrderStatus.UNREPORTED, OrderStatus.REPORTED):
        with journal.batch(durable=False):
            journal.put_order(pending.advanced(status))
    assert settings_at_commits() == (["NORMAL", "NORMAL"], 1)   # set once for the run of two
    with journal.batch(durable=False):
        journal.put_order(pending.advanced(OrderStatus.REPORTED).advanced(OrderStatus.CANCELED))
        assert journal.use_token("t1", "2026-11-20T10:00:01")   # a durable write makes the batch durable
    assert journal.insert_order(replace(pending, client_order_id="c2"))
    assert settings_at_commits() == (["FULL", "FULL"], 1)
    journal.close()
