"""A SQLite write-ahead log checkpointed off the order path, by a thread with a connection of its own.

Left to itself, SQLite checkpoints a WAL database inside the commit that takes its log past 1,000
pages: that commit copies the log into the database and fsyncs both, several milliseconds, paid by
whichever write came last (an order's record, a condition's trigger, a fill at the counter; it was
most of the p99 of a condition's trigger-to-counter time). Here a thread checkpoints every
`every_s` instead: PASSIVE, so it never waits for a writer or holds one up, and sqlite3 lets go of
the GIL while it copies and syncs. The writing connection keeps its own automatic checkpoint, at a
log of BACKSTOP_PAGES, in case the thread ever falls behind or cannot write (a full disk).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger("qmt_mcp.worker")
BACKSTOP_PAGES = 8000   # ~32 MB of log (4 KB pages): far beyond what the thread lets build up


class WalCheckpointer:
    def __init__(self, db: sqlite3.Connection, path: Path, every_s: float = 0.25) -> None:
        """Checkpoint the database at `path`, which `db` (the connection that writes it) has open."""
        db.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
        self._path = path
        self._every = every_s
        self._stop = threading.Event()
        self._ran = threading.Condition()
        self.rounds = 0   # checkpoints run: what a test waits on instead of timing
        self._thread = threading.Thread(target=self._run, name=f"checkpoint {path.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            db = sqlite3.connect(str(self._path))
        except sqlite3.Error as exc:
            log.warning("no checkpoint thread for %s (%s): its writes checkpoint it themselves", self._path.name, exc)
            return
        try:
            while not self._stop.wait(self._every):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:
                    # A full disk or a checkpoint already running: the next round tries again.
                    log.debug("checkpoint of %s: %s", self._path.name, exc)
                with self._ran:
                    self.rounds += 1
                    self._ran.notify_all()
        finally:
            db.close()

    def wait_rounds(self, n: int, timeout_s: float) -> bool:
        """Whether `n` checkpoints have run, waiting up to `timeout_s` for them."""
        with self._ran:
            return self._ran.wait_for(lambda: self.rounds >= n, timeout_s)

    def close(self) -> None:
        """Stop the thread (before the writing connection closes: the last checkpoint is SQLite's)."""
        self._stop.set()
        self._thread.join(timeout=10)
