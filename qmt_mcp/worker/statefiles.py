"""State files checked at start. A corrupt one is moved aside (quarantined), never used or overwritten.

The journal and the simulator's book are SQLite files; a torn disk, a bad copy or a stray editor can
leave one unreadable. Opening it anyway would fail on the first order, or worse, on a write halfway
through a day. So each is checked before use (`PRAGMA quick_check`); a corrupt file is renamed with
a timestamp, with its WAL and shared-memory companions, kept for whoever wants to look into it, and
the worker starts with an empty one and says so: in its log, and in `health` (`worker.quarantined`,
state `degraded`) until it restarts.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..statedir import tighten

log = logging.getLogger("qmt_mcp.worker")
SECRET_BYTES = 32


@dataclass(frozen=True)
class Quarantined:
    file: str
    moved_to: str
    reason: str
    consequence: str

    def to_wire(self) -> dict[str, str]:
        return {"file": self.file, "moved_to": self.moved_to, "reason": self.reason, "consequence": self.consequence}


def check_state_dir(home: Path | None, now: datetime, *, sim_book: bool) -> list[Quarantined]:
    """Check every state file the worker is about to open (the simulator's book only on the simulator);
    call it before anything opens them."""
    if home is None:
        return []
    found = [
        check_sqlite(home / "worker.sqlite", now,
                     "The order journal starts empty; reconciliation imports the broker's orders of today as "
                     "external records, and event seq starts again under a new journal_id."),
        check_secret(home / "confirm.key", now, "Confirm tokens issued before now no longer verify."),
    ]
    if sim_book:
        found.append(check_sqlite(home / "sim.sqlite", now,
                                  "The paper accounts start over from their configured cash and positions."))
    return [q for q in found if q is not None]


def check_sqlite(path: Path, now: datetime, consequence: str) -> Quarantined | None:
    """Quarantine `path` if it exists and SQLite cannot read it whole."""
    if not path.exists():
        return None
    problem = _sqlite_problem(path)
    return None if problem is None else _quarantine(path, now, problem, consequence, ("-wal", "-shm"))


def check_secret(path: Path, now: datetime, consequence: str) -> Quarantined | None:
    """Quarantine the confirm-token key if it is not the key this worker writes."""
    if not path.exists():
        return None
    size = path.stat().st_size
    if size == SECRET_BYTES:
        return None
    return _quarantine(path, now, f"{size} bytes, not {SECRET_BYTES}", consequence, ())


def _sqlite_problem(path: Path) -> str | None:
    try:
        db = sqlite3.connect(str(path))
        try:
            rows = db.execute("PRAGMA quick_check").fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    verdict = [str(r[0]) for r in rows]
    return None if verdict == ["ok"] else "; ".join(verdict[:3])


def _quarantine(path: Path, now: datetime, reason: str, consequence: str, companions: tuple[str, ...]) -> Quarantined:
    stamp = now.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    path.rename(target)
    tighten(target)   # a copy is as private as the original: it holds the same account ids
    for suffix in companions:
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(target.with_name(target.name + suffix))
            tighten(target.with_name(target.name + suffix))
    log.error("state file %s is corrupt (%s): moved it to %s and started a new one. %s",
              path, reason, target.name, consequence)
    return Quarantined(path.name, target.name, reason, consequence)
