"""State files checked at start. A corrupt one is moved aside (quarantined), never used or overwritten.

The journal and the simulator's book are SQLite files; a torn disk, a bad copy or a stray editor can
leave one unreadable. Opening it anyway would fail on the first order, or worse, on a write halfway
through a day. So each is checked before use (`PRAGMA quick_check`); a corrupt file is renamed with
a timestamp, with its WAL and shared-memory companions, kept for whoever wants to look into it, and
the worker starts with an empty one and says so: in its log, and in `health` (`worker.quarantined`,
state `degraded`) until it restarts.

The audit trail is appended, never rewritten, so only its very end can be an interrupted write: a
last line without its newline is a record the worker never confirmed. That tail alone is moved to
`audit.jsonl.torn-<time>` and the trail goes on from its last whole record; damage anywhere else is
not a crash artefact and stays an error (audit.py).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..statedir import tighten
from .audit import split_tail, write_all

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
    found.append(check_audit_tail(home / "audit.jsonl", now))
    return [q for q in found if q is not None]


def check_audit_tail(path: Path, now: datetime) -> Quarantined | None:
    """Move an unterminated last line of the audit trail aside (0600) and cut the trail back to its
    last whole record."""
    if not path.exists():
        return None
    end, torn = split_tail(path)
    if not torn:
        return None
    target = _free_name(path, "torn", now)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        write_all(fd, torn)
        os.fsync(fd)
    finally:
        os.close(fd)
    tighten(target)
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, end)
        os.fsync(fd)
    finally:
        os.close(fd)
    reason = (f"its last line was cut short ({len(torn)} bytes without a newline): a write that a crash or a "
              "full disk interrupted")
    consequence = ("That record was never confirmed, so it is not in the trail; the trail goes on from its last "
                   "whole record.")
    log.error("state file %s: %s; moved the cut line to %s. %s", path, reason, target.name, consequence)
    return Quarantined(path.name, target.name, reason, consequence)


def _free_name(path: Path, kind: str, now: datetime) -> Path:
    stamp = now.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.{kind}-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.{kind}-{stamp}-{n}")
    return target


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
    target = _free_name(path, "corrupt", now)
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
