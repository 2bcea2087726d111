"""A state dir the worker cannot write: new orders are refused with a typed error before anything is
sent, and nothing already recorded is lost.

Read-only is SQLite refusing every write (`query_only`: the engine's own SQLITE_READONLY path, as for
a read-only file; as root, file modes cannot make a directory read-only). Disk full is real: the state
dir is a small tmpfs filled to its last byte, so SQLite's writes fail with ENOSPC (needs root and
mount permission; skipped without them).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import pydantic_core
import pytest
from conftest import Session, make_worker, open_session
from workerproc import WorkerProcess

from qmt_mcp.bootstrap import Worker
from qmt_mcp.clock import ManualClock
from qmt_mcp.config import parse_config
from qmt_mcp.domain.errors import ErrorCode, QmtError
from qmt_mcp.worker.audit import verify
from qmt_mcp.worker.journal import Journal, read_audit_head

pytestmark = pytest.mark.anyio
CFG = parse_config({"risk": {"enabled": False}})


async def _orders_before_the_fault(s: Session) -> dict[str, dict[str, object]]:
    filled = await s.ok("place_order", **await s.marketable_buy("before-1"))
    q = (await s.ok("get_quote", codes=["000001.SZ"]))["quotes"][0]
    resting = await s.ok("place_order", account="sim", code="000001.SZ", side="buy", volume=100,
                         price=q["bid_prices"][4], client_order_id="before-2")
    assert filled["order"]["status"] == "succeeded" and resting["order"]["status"] == "reported"
    return {"before-1": filled["order"], "before-2": resting["order"]}


async def _nothing_lost(s: Session, before: dict[str, dict[str, object]]) -> None:
    orders = {o["client_order_id"]: o for o in (await s.ok("get_orders", account="sim"))["orders"]}
    for cid, order in before.items():
        assert orders[cid]["order_id"] == order["order_id"] and orders[cid]["status"] == order["status"]
    events = (await s.ok("get_order_events", account="sim", limit=1000))["events"]
    assert {e.get("client_order_id") for e in events} >= set(before)


async def _refused(s: Session, cid: str) -> None:
    sent = len(s.counter.orders)
    err = await s.error("place_order", **await s.marketable_buy(cid))
    assert err["code"] == "STATE_UNWRITABLE" and err["state_changed"] == "no" and err["retryable"] is True
    assert "Nothing was sent" in err["hint"]
    assert len(s.counter.orders) == sent  # refused before the broker was asked
    # Reading still works: the agent can see what it has.
    assert (await s.ok("preview_order", **{k: v for k, v in (await s.marketable_buy(cid)).items()
                                            if k != "client_order_id"}))["would_accept"] is True


async def test_a_read_only_journal_refuses_new_orders_and_loses_nothing(clock: ManualClock, tmp_path: Path) -> None:
    worker = make_worker(CFG, tmp_path / "home", clock)
    async with open_session(worker, clock) as s:
        before = await _orders_before_the_fault(s)
        db = worker.journal._db  # the journal's own connection
        db.execute("PRAGMA query_only = ON")
        await _refused(s, "during-1")
        # A cancel only lowers exposure, so it still goes through; its pushes cannot be journaled yet,
        # and the answer says so: the broker's state changed, the journal's did not.
        resting = before["before-2"]["order_id"]
        err = await s.error("cancel_order", account="sim", order_id=resting)
        assert err["code"] == "STATE_UNWRITABLE" and err["state_changed"] == "yes"
        assert err["details"]["cancel_requested"] is True
        await _nothing_lost(s, before)
        db.execute("PRAGMA query_only = OFF")  # the operator fixes it
        assert await worker.reconciler.run("timer") >= 1  # the records catch up with the broker
        got = (await s.ok("get_order", account="sim", order_id=resting))
        assert got["order"]["status"] == "canceled"
        assert any(e["type"] == "reconciled" for e in got["events"])
        again = await s.ok("place_order", **await s.marketable_buy("during-1"))
        assert again["idempotent_replay"] is False  # the refused attempt left no record behind
        before["before-2"] = got["order"]
        await _nothing_lost(s, before)
    await worker.close()


@contextlib.contextmanager
def _tiny_tmpfs(where: Path, size_kb: int) -> Iterator[Path]:
    where.mkdir(parents=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(where)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (65536, 4096, 1):
            with contextlib.suppress(OSError):  # ENOSPC: full at this size, go on smaller
                while True:
                    f.write(b"\0" * size)
    return filler


async def test_a_full_disk_refuses_new_orders_and_loses_nothing(clock: ManualClock, tmp_path: Path) -> None:
    with _tiny_tmpfs(tmp_path / "disk", 4096) as disk:
        worker = make_worker(CFG, disk / "home", clock)
        async with open_session(worker, clock) as s:
            before = await _orders_before_the_fault(s)
            # An emptied WAL must grow for the next write, so that write meets the full disk.
            worker.audit.flush()   # nothing left for the flusher to anchor meanwhile
            worker.journal.checkpoint()
            filler = _fill(disk)
            await _refused(s, "during-1")
            await _nothing_lost(s, before)
            filler.unlink()  # space again
            again = await s.ok("place_order", **await s.marketable_buy("during-1"))
            assert again["idempotent_replay"] is False and again["order"]["status"] == "succeeded"
            await _nothing_lost(s, before)
        await worker.close()


def _leave_room(worker: Worker, audit: Path, room: int) -> None:
    """Pad the audit trail (one record of its own) so that its last page keeps `room` bytes free:
    on a full tmpfs the next record then fits part-way, the short write a real disk-full leaves."""
    page = 4096
    n = worker.audit.head[0] + 1
    # The record's line as audit.py writes it (pydantic's compact JSON), without its padding.
    base = len(pydantic_core.to_json({"n": n, "prev": "0" * 64, "call": "padding", "pad": "", "hash": "0" * 64})) + 1
    pad = (page - room - audit.stat().st_size % page - base) % page
    worker.audit.append({"call": "padding", "pad": "x" * pad})
    assert page - audit.stat().st_size % page == room


async def test_a_full_disk_leaves_no_torn_audit_line_and_the_worker_starts_again(
    clock: ManualClock, tmp_path: Path,
) -> None:
    with _tiny_tmpfs(tmp_path / "disk", 4096) as disk:
        home = disk / "home"
        audit = home / "audit.jsonl"
        worker = make_worker(CFG, home, clock)
        async with open_session(worker, clock) as s:
            await _orders_before_the_fault(s)                    # audit records 1 and 2
            worker.audit.flush()   # nothing left for the flusher to anchor meanwhile
            worker.journal.checkpoint()
            _leave_room(worker, audit, 100)                      # record 3
            filler = _fill(disk)
            await _refused(s, "during-1")   # its audit record (~700 bytes) meets the full disk 100 bytes in
            filler.unlink()
            assert (await s.ok("place_order", **await s.marketable_buy("after-1")))["order"]["status"] == "succeeded"
        await worker.close()
        # The refused call's record was never written whole, so it is not there at all: 4 records, chained.
        intact = (True, "audit trail intact: 4 records, as anchored")
        assert verify(audit, read_audit_head(home / "worker.sqlite")) == intact
        again = make_worker(CFG, home, clock)   # it used to refuse to start on the torn line
        assert again.service.quarantined == []
        async with open_session(again, clock) as s:
            assert (await s.ok("health"))["worker"]["state"] == "up"
            await s.ok("place_order", **await s.marketable_buy("after-2"))
        await again.close()
        assert verify(audit, read_audit_head(home / "worker.sqlite"))[0] is True


async def test_corrupt_state_files_are_quarantined_at_start_with_a_clear_message(
    clock: ManualClock, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    home = tmp_path / "home"
    first = make_worker(CFG, home, clock)
    async with open_session(first, clock) as s:
        await s.ok("place_order", **await s.marketable_buy("kept-1"))
    await first.close()
    # A torn journal, a simulator book overwritten with junk, a key cut short.
    journal = (home / "worker.sqlite").read_bytes()
    (home / "worker.sqlite").write_bytes(journal[:4096] + b"\xde\xad" * 2048)
    for side in ("worker.sqlite-wal", "worker.sqlite-shm"):
        (home / side).unlink(missing_ok=True)
    (home / "sim.sqlite").write_bytes(b"this is not a database" * 100)
    (home / "confirm.key").write_bytes(b"short")

    with caplog.at_level("ERROR", logger="qmt_mcp.worker"):
        second = make_worker(CFG, home, clock)
    messages = [r.getMessage() for r in caplog.records]
    for name in ("worker.sqlite", "sim.sqlite", "confirm.key"):
        assert any(f"{name} is corrupt" in m and "moved it to" in m for m in messages), (name, messages)
        moved = sorted(home.glob(f"{name}.corrupt-*"))
        assert len(moved) == 1  # kept for whoever wants to look, never overwritten
    assert (home / "sim.sqlite.corrupt-20261120T100000").read_bytes().startswith(b"this is not a database")
    async with open_session(second, clock) as s:
        health = await s.ok("health")
        assert health["worker"]["state"] == "degraded"
        assert {q["file"] for q in health["worker"]["quarantined"]} == {"worker.sqlite", "sim.sqlite", "confirm.key"}
        # It trades on fresh files; the old broker state is gone with the quarantined book.
        assert (await s.ok("place_order", **await s.marketable_buy("after-1")))["order"]["status"] == "succeeded"
    await second.close()
    third = make_worker(CFG, home, clock)  # the fresh files are sound: nothing more is moved
    assert third.service.quarantined == []
    await third.close()


async def test_a_non_json_order_record_is_set_aside_and_the_worker_starts(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "config.toml").write_text("[risk]\nenabled = false\n")
    with anyio.fail_after(120):
        first = WorkerProcess(home, 1)
        await first.ready()
        good = (await first.buy("good-1"))["order"]
        await first.buy("bad-1")
        await first.stop()
        db = sqlite3.connect(home / "worker.sqlite")
        with db:
            db.execute("""UPDATE orders SET data='{"client_order_id": "bad-1", "sta' WHERE client_order_id='bad-1'""")
        (row,) = db.execute("SELECT rowid FROM orders WHERE client_order_id='bad-1'").fetchone()
        db.close()

        second = WorkerProcess(home, 2)
        await second.ready()   # it used to stop at start on the one record
        health = await second.client.call("health", {})
        assert health["worker"]["state"] == "degraded"
        [bad] = [q for q in health["worker"]["quarantined"] if q.get("client_order_id") == "bad-1"]
        assert bad["file"] == "worker.sqlite" and bad["row"] == str(row)
        assert (await second.client.call("get_order", {"account": "sim", "client_order_id": "good-1"}))[
            "order"] == good
        # The broker still has the order: reconciliation recorded it again from the broker's fields,
        # and the agent's retry under the same id is refused rather than sent a second time.
        listed = (await second.client.call("get_orders", {"account": "sim"}))["orders"]
        assert {o["client_order_id"] for o in listed} == {"good-1", f"ext-{listed[-1]['order_id']}"}
        with pytest.raises(QmtError) as refused:
            await second.buy("bad-1")
        assert refused.value.code is ErrorCode.IDEMPOTENCY_CONFLICT
        await second.stop()
    db = sqlite3.connect(home / "worker.sqlite")
    kept = db.execute("SELECT client_order_id, data FROM orders_quarantined").fetchall()
    db.close()
    assert kept == [("bad-1", '{"client_order_id": "bad-1", "sta')]   # the bytes, for whoever looks into it


def test_a_journal_from_before_the_status_column_sets_its_unreadable_record_aside(tmp_path: Path) -> None:
    path = tmp_path / "worker.sqlite"
    Journal(path).close()
    db = sqlite3.connect(path)   # the orders table as it was before it had a status column
    with db:
        db.execute("DROP TABLE orders")
        db.execute("CREATE TABLE orders (account TEXT NOT NULL, client_order_id TEXT NOT NULL, order_id INTEGER, "
                   "data TEXT NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (account, client_order_id))")
        db.execute("INSERT INTO orders VALUES ('sim', 'torn-1', 7, 'not json', '2026-11-20T10:00:00.000+08:00')")
    db.close()
    journal = Journal(path)
    assert [q["client_order_id"] for q in journal.quarantined] == ["torn-1"]
    assert journal.order_by_client_id("sim", "torn-1") is None and journal.unresolved_orders("sim") == []
    journal.close()
