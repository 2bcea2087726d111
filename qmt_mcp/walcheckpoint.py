"""SQLite write-ahead logs checkpointed off the order path.

Left to itself, SQLite checkpoints a WAL database inside the commit that takes its log past 1,000
pages: that commit copies the log into the database and fsyncs both, several milliseconds, paid by
whichever write came last (an order's record, a condition's trigger, a fill at the counter; it was
most of the p99 of a condition's trigger-to-counter time). So each writer here keeps SQLite's own
checkpoint only as a backstop (BACKSTOP_PAGES of log) and checkpoints where nothing waits for it:

- the worker's journal at the end of each tick, after the round's firings, once TIDY_ROWS rows have
  changed (Journal.tidy): in the same thread, so it is done before the next tick's first firing,
  not running beside its fsyncs;
- the simulated counter's book from a thread of its own (`WalCheckpointer`), PASSIVE (it never waits
  for a writer or holds one up; sqlite3 lets go of the GIL while it copies and syncs), when the
  writer has been quiet for a poll, or once BUSY_ROWS rows have changed while writes never pause.
  Not more often: a checkpoint's flush of the database file slows a writer's fsync on the same disk
  meanwhile, so under a steady load a few hurt fewer writes than many.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger("qmt_mcp.worker")
TIDY_ROWS = 1_000         # the journal: rows changed since its last checkpoint (a few hundred pages)
BUSY_ROWS = 20_000        # the sim book: rows changed with no pause, checkpointed anyway
BACKSTOP_PAGES = 20_000   # ~80 MB of log (4 KB pages): well past what either lets build up


def due(changes: int, seen: int, done: int) -> bool:
    """Whether to checkpoint now: the writer's change count is `changes`, was `seen` a poll ago and
    `done` when the last checkpoint started."""
    return changes != done and (changes == seen or changes - done >= BUSY_ROWS)


class WalCheckpointer:
    def __init__(self, db: sqlite3.Connection, path: Path, every_s: float = 0.05) -> None:
        """Checkpoint the database at `path`, which `db` (the connection that writes it, opened with
        check_same_thread=False: its change count is read from the thread) has open."""
        db.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
        self._writer = db
        self._path = path
        self._every = every_s
        self._stop = threading.Event()
        self._ran = threading.Condition()
        self.covered = -1   # the writer's change count the last checkpoint started from (tests wait on it)
        self._thread = threading.Thread(target=self._run, name=f"checkpoint {path.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            db = sqlite3.connect(str(self._path))
        except sqlite3.Error as exc:
            log.warning("no checkpoint thread for %s (%s): its writes checkpoint it themselves", self._path.name, exc)
            return
        try:
            done = seen = -1
            while not self._stop.wait(self._every):
                try:
                    changes = self._writer.total_changes
                except sqlite3.ProgrammingError:
                    return   # the writer closed under it
                if due(changes, seen, done):
                    try:
                        db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                        done = changes
                    except sqlite3.Error as exc:
                        # A full disk or a checkpoint already running: tried again at the next poll.
                        log.debug("checkpoint of %s: %s", self._path.name, exc)
                    with self._ran:
                        self.covered = done
                        self._ran.notify_all()
                seen = changes
        finally:
            db.close()

    def wait_covered(self, changes: int, timeout_s: float) -> bool:
        """Whether a checkpoint started once the writer had made `changes` changes has run, waiting
        up to `timeout_s` for one."""
        with self._ran:
            return self._ran.wait_for(lambda: self.covered >= changes, timeout_s)

    def close(self) -> None:
        """Stop the thread (before the writing connection closes: the last checkpoint is SQLite's)."""
        self._stop.set()
        self._thread.join(timeout=10)
