"""The journal's and the simulated counter's write-ahead logs are checkpointed where nothing waits for
it (walcheckpoint.py): the journal when the worker's tick tidies it, the counter's book by a thread of
its own; no commit on the order path pays for a checkpoint."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest
from conftest import make_worker

from qmt_mcp.backends.sim.store import SimStore
from qmt_mcp.clock import ManualClock
from qmt_mcp.config import Config
from qmt_mcp.domain.events import GapEvent
from qmt_mcp.domain.timeutil import CN_TZ
from qmt_mcp.walcheckpoint import BACKSTOP_PAGES, BUSY_ROWS, TIDY_ROWS, WalCheckpointer, due
from qmt_mcp.worker.journal import Journal


def _rows_in_main_file(path: Path, table: str, tmp: Path) -> int:
    """The rows of `table` in the database file alone: what checkpoints have moved out of its log."""
    alone = tmp / "alone.sqlite"
    shutil.copyfile(path, alone)   # without its -wal: only what was checkpointed
    db = sqlite3.connect(alone)
    try:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608 (a test's literal)
    finally:
        db.close()


def _writer(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    return db


def test_once_the_writer_pauses_the_thread_moves_its_writes_into_the_database(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    db = _writer(path)
    keeper = WalCheckpointer(db, path, every_s=0.01)
    try:
        assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == BACKSTOP_PAGES
        # Past SQLite's own threshold (1,000 pages): a commit would have checkpointed by itself.
        with db:
            db.execute("BEGIN")
            db.executemany("INSERT INTO t VALUES (?, ?)", ((k, "x" * 3000) for k in range(1500)))
        assert keeper.wait_covered(db.total_changes, timeout_s=30)
        assert _rows_in_main_file(path, "t", tmp_path) == 1500
    finally:
        keeper.close()
        db.close()


def test_a_checkpoint_is_due_after_a_quiet_poll_or_many_rows_and_never_for_nothing() -> None:
    assert due(changes=500, seen=500, done=100)                # quiet since the last poll: now
    assert not due(changes=500, seen=450, done=100)            # still writing: later
    assert due(changes=100 + BUSY_ROWS, seen=90 + BUSY_ROWS, done=100)   # writing without a pause
    assert not due(changes=100, seen=100, done=100)            # nothing new since the last one
    assert due(changes=0, seen=0, done=-1)                     # a new database's first


def test_the_sim_book_is_checkpointed_by_its_thread(tmp_path: Path) -> None:
    store = SimStore(tmp_path / "sim.sqlite")
    try:
        keeper = store._checkpointer
        assert keeper is not None and keeper.wait_covered(store._db.total_changes, timeout_s=30)
        assert _rows_in_main_file(tmp_path / "sim.sqlite", "meta", tmp_path) == 0   # its tables, empty
    finally:
        store.close()
    assert SimStore(None)._checkpointer is None   # in memory: no log


def test_the_journal_checkpoints_when_tidied_after_enough_changes_and_only_then(tmp_path: Path) -> None:
    path = tmp_path / "worker.sqlite"
    journal = Journal(path)
    try:
        assert journal._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == BACKSTOP_PAGES
        journal.tidy()   # the schema and its identity only: too few changes yet
        with pytest.raises(sqlite3.DatabaseError):
            _rows_in_main_file(path, "meta", tmp_path)   # nothing checkpointed: the file holds no tables
        with journal.batch():
            for n in range(TIDY_ROWS):
                journal.append(GapEvent(account="sim", message="m", previous_journal_id="x", previous_last_seq=n),
                               datetime(2024, 3, 1, tzinfo=CN_TZ))
        with pytest.raises(sqlite3.DatabaseError):
            _rows_in_main_file(path, "events", tmp_path)   # SQLite's own checkpoint did not run either
        journal.tidy()
        assert _rows_in_main_file(path, "events", tmp_path) == TIDY_ROWS
    finally:
        journal.close()


@pytest.mark.anyio
async def test_the_worker_tick_tidies_its_journal(cfg: Config, clock: ManualClock, tmp_path: Path) -> None:
    worker = make_worker(cfg, tmp_path / "home", clock)
    path = tmp_path / "home" / "worker.sqlite"
    try:
        with worker.journal.batch():
            for n in range(TIDY_ROWS):
                worker.journal.append(GapEvent(account="sim", message="m", previous_journal_id="x",
                                               previous_last_seq=n), clock.now())
        await worker.service.tick()
        assert _rows_in_main_file(path, "events", tmp_path) >= TIDY_ROWS
    finally:
        await worker.close()
