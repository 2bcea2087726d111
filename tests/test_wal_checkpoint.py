"""The journal's and the simulated counter's write-ahead logs are checkpointed by a thread of their
own (walcheckpoint.py), so no commit on the order path pays for a checkpoint."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from qmt_mcp.backends.sim.store import SimStore
from qmt_mcp.walcheckpoint import BACKSTOP_PAGES, WalCheckpointer
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


def test_the_thread_moves_committed_writes_into_the_database_and_commits_do_not_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    keeper = WalCheckpointer(db, path, every_s=0.01)
    try:
        assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == BACKSTOP_PAGES
        # Past SQLite's default threshold (1,000 pages): a commit would have checkpointed by itself.
        for k in range(1500):
            db.execute("INSERT INTO t VALUES (?, ?)", (k, "x" * 3000))
        seen = keeper.rounds
        assert keeper.wait_rounds(seen + 2, timeout_s=30)   # one whole round after the last commit
        assert _rows_in_main_file(path, "t", tmp_path) == 1500
    finally:
        keeper.close()
        db.close()


def test_the_worker_journal_and_the_sim_book_are_checkpointed_by_their_threads(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "worker.sqlite")
    store = SimStore(tmp_path / "sim.sqlite")
    journal.start_checkpointer()
    try:
        for keeper in (journal._checkpointer, store._checkpointer):
            assert keeper is not None
            assert keeper.wait_rounds(keeper.rounds + 2, timeout_s=30)
        assert _rows_in_main_file(tmp_path / "worker.sqlite", "meta", tmp_path) >= 1   # its journal_id
        assert Journal(None)._checkpointer is None   # in memory: no log to checkpoint
    finally:
        journal.close()
        store.close()
