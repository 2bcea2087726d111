"""The audit trail: every state-changing request and its outcome, appended, fsync'd, hash-chained.

Each line is JSON with `n` (1, 2, ...), `prev` (the previous line's hash) and `hash` (SHA-256 of the
line without its hash). `verify` names the first line that was edited, reordered or cut.

A chain proves order, not completeness: with its last records removed it is shorter and still whole.
So its head (record count and last hash) is also kept outside the file, in the journal (the
`AuditAnchor`), after every append. The file may be ahead of that anchor (a crash between the two
writes, or a journal that could not be written) but never behind it, and its record at the anchor
must be the anchored one. `verify` checks this, and so does the worker at start, which then refuses
to run on a cut or rewritten trail (`AuditTrailBroken`) until a person has looked and restarted the
trail with a note (`restart`, `qmt-mcp audit restart`), which is itself the new trail's first record.

A write is checked whole: a short write cuts the file back to its last whole record and raises
OSError, so a full disk leaves no fragment for the next record to follow. What a crash can still
leave, an unterminated last line, is moved aside at start (statefiles) before this module reads the
file.

In the worker, a call's answer does not wait for the fsync (`start_flusher`): the record is written
before the answer is sent, so a killed worker loses none of it (the OS holds it), and a thread of the
log's own fsyncs it shortly after (FLUSH_WINDOW_S, 50 ms), covering every record appended meanwhile
in one fsync, and only then anchors it in the journal. An OS crash or power cut can lose the records
of that last window; the journal never anchors those, so a restart does not mistake the loss for a
cut, and the orders they answered are in the journal, which is fsync'd before the broker call.
A failed fsync is logged and tried again; the records stay in the file.

At start only the end of the file is read, so start-up does not grow with the trail; `verify` reads
all of it.

    AuditTrailBroken(InternalError)   INTERNAL: the trail's end is damaged or does not match the anchor
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pydantic_core

from ..domain.errors import InternalError, QmtError
from ..statedir import tighten

log = logging.getLogger("qmt_mcp.worker")
GENESIS = "0" * 64
RESTART = "audit_restart"   # the `call` of the record that begins a restarted trail
_BLOCK = 64 * 1024


class AuditAnchor(Protocol):
    """Where the trail's head is kept outside the file (the journal)."""

    def audit_head(self) -> tuple[int, str] | None: ...

    def put_audit_head(self, records: int, last_hash: str) -> None: ...


# How long the flusher lets appends gather before one fsync covers them all (see _Flusher): what an
# OS crash or power cut can cost the trail, never the journal's records.
FLUSH_WINDOW_S = 0.05


class AuditTrailBroken(InternalError):
    """The end of the audit trail is damaged, or records the journal anchored are gone or replaced."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, retryable=False, details=details, hint=(
            "Run `qmt-mcp audit verify` to see what is wrong. Once a person has looked into it, "
            "`qmt-mcp audit restart --note '...'` keeps the old file aside and begins a new trail that says why."))


def _hash(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def split_tail(path: Path) -> tuple[int, bytes]:
    """(where the last whole line ends, the bytes after it). The bytes after the last newline are
    not a record the worker ever confirmed: every record is written with its newline, in one go."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        pos, end = size, 0
        while pos > 0:
            step = min(_BLOCK, pos)
            pos -= step
            f.seek(pos)
            cut = f.read(step).rfind(b"\n")
            if cut >= 0:
                end = pos + cut + 1
                break
        f.seek(end)
        return end, f.read(size - end)


def _lines_before(path: Path, end: int) -> Iterator[bytes]:
    """The whole lines of the file before byte `end`, last first (reads only as far back as asked)."""
    with open(path, "rb") as f:
        pos, rest = end, [b""]   # the start of a line whose beginning is further back, in pieces
        while pos > 0:
            step = min(_BLOCK, pos)
            pos -= step
            f.seek(pos)
            parts = f.read(step).split(b"\n")
            if len(parts) == 1:
                rest.insert(0, parts[0])
                continue
            lines = [*parts[1:-1], parts[-1] + b"".join(rest)]
            rest = [parts[0]]
            for line in reversed(lines):
                if line:
                    yield line
        if b"".join(rest):
            yield b"".join(rest)


def _record(line: bytes) -> tuple[dict[str, Any] | None, str]:
    """The record on a line, or None and what is wrong with it."""
    try:
        rec = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, "not JSON (edited or cut)"
    if not isinstance(rec, dict) or not isinstance(rec.get("n"), int) or not isinstance(rec.get("hash"), str):
        return None, "not an audit record (no n or hash)"
    if rec["hash"] != _hash(rec):
        return None, f"record {rec['n']}: content does not match its hash (edited)"
    return rec, ""


def _line_number(path: Path, end: int) -> int:
    """Line number of the last whole line before `end`: only on the error path, so counting is fine."""
    with open(path, "rb") as f:
        return f.read(end).count(b"\n")


class AuditLog:
    def __init__(self, path: Path | None, anchor: AuditAnchor | None = None) -> None:
        """Open the trail at `path` (None: audit nothing), checking its end against `anchor`.
        Raises AuditTrailBroken when the last whole record is damaged or the anchor does not match."""
        self.path = path
        self.anchor = anchor
        self._lock = threading.Lock()        # the chain's head and the file's end
        self._sync_lock = threading.Lock()   # one fsync and anchor at a time, in order
        self._n, self._prev, self._size = 0, GENESIS, 0
        self._synced = 0                     # records known to be on disk (fsync'd)
        self._fd: int | None = None
        self._flusher: _Flusher | None = None
        if path is None:
            return
        if path.exists():
            self._size, torn = split_tail(path)
            if torn:
                raise AuditTrailBroken(f"{path.name}: its last line is cut short ({len(torn)} bytes without a "
                                       "newline); the worker moves such a line aside at start",
                                       file=path.name, line=_line_number(path, self._size) + 1)
            line = next(_lines_before(path, self._size), None)
            if line is not None:
                rec, problem = _record(line)
                if rec is None:
                    number = _line_number(path, self._size)
                    raise AuditTrailBroken(f"{path.name} line {number} (the last whole line): {problem}; a crash "
                                           "leaves at most an unterminated last line, so this is damage, not an "
                                           "interrupted write", file=path.name, line=number)
                self._n, self._prev = int(rec["n"]), str(rec["hash"])
        self._synced = self._n   # what was there at start is taken as on disk: a flush covers what is appended
        if anchor is not None:
            self._check_anchor(path, anchor)

    def _check_anchor(self, path: Path, anchor: AuditAnchor) -> None:
        head = anchor.audit_head()
        if head is None:
            if self._n:
                # A journal that never anchored (new, quarantined, or from before anchors): trust the
                # file as it is now, and anchor it from here on.
                log.warning("the journal has no anchor for %s: anchoring it at record %d", path.name, self._n)
                self._put_head(anchor, self._n, self._prev)
            return
        records, last_hash = head
        problem = _against_anchor(path, self._size, self._n, self._prev, records, last_hash)
        if problem:
            raise AuditTrailBroken(f"{path.name}: {problem}", file=path.name, records=self._n,
                                   anchored_records=records)
        if self._n > records:
            # Records appended after the last anchor: a crash between the writes.
            self._put_head(anchor, self._n, self._prev)

    def _put_head(self, anchor: AuditAnchor, records: int, last_hash: str) -> None:
        try:
            anchor.put_audit_head(records, last_hash)
        except Exception as exc:   # a full disk (StateUnwritable) or any journal failure: never the answer's
            # The record is on disk; the anchor lags (the file may be ahead of it), and catches up with
            # the next flush or start.
            why = exc.message if isinstance(exc, QmtError) else repr(exc)
            log.warning("audit record %d written but not anchored in the journal: %s", records, why)

    @property
    def head(self) -> tuple[int, str]:
        """(records, last hash) as this log last wrote or read them."""
        return self._n, self._prev

    def append(self, record: dict[str, Any]) -> None:
        """Append one record. Raises OSError when it cannot be written whole (the file is then as it
        was before, or is cut back to that before the next append), or, without a flusher, fsync'd.
        Without a flusher the record is fsync'd and anchored before this returns; with one
        (`start_flusher`) it is written (a killed process loses nothing written), and the flusher's
        thread fsyncs and anchors it right after."""
        if self.path is None:
            return
        with self._lock:
            rec = {"n": self._n + 1, "prev": self._prev, **record}
            rec["hash"] = _hash(rec)
            # The line by pydantic's compiled serializer (the hash is over the canonical form above;
            # a reader parses the line and hashes it again, so only the values must survive).
            data = pydantic_core.to_json(rec) + b"\n"
            fd = self._open(self.path)
            if os.fstat(fd).st_size > self._size:
                os.ftruncate(fd, self._size)   # a fragment an earlier failed append could not cut
            try:
                write_all(fd, data)
            except OSError:
                try:
                    os.ftruncate(fd, self._size)
                except OSError:
                    log.exception("cannot cut a failed audit append back; the next append will")
                raise
            self._n, self._prev, self._size = rec["n"], rec["hash"], self._size + len(data)
        if self._flusher is None:
            self.flush()
        else:
            self._flusher.wake()

    def _open(self, path: Path) -> int:
        if self._fd is None:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return self._fd

    def flush(self) -> None:
        """fsync what has been appended, then anchor it: the anchor never runs ahead of what is on
        disk, so a power cut cannot leave the journal naming records the file lost. Raises OSError
        when the fsync fails (nothing is anchored then; the next flush tries again)."""
        with self._sync_lock:
            with self._lock:
                records, last_hash, fd = self._n, self._prev, self._fd
            if fd is None or records == self._synced:
                return
            os.fsync(fd)
            self._synced = records
            if self.anchor is not None:
                self._put_head(self.anchor, records, last_hash)

    def start_flusher(self, window_s: float = FLUSH_WINDOW_S) -> None:
        """fsync and anchor in a thread of their own from now on, off the callers' path (the worker),
        at most once per `window_s`."""
        if self.path is not None and self._flusher is None:
            self._flusher = _Flusher(self, window_s)

    def close(self) -> None:
        """Stop the flusher and flush what is left (a worker's orderly stop)."""
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            flusher.stop()
        try:
            self.flush()
        finally:
            with self._lock:
                if self._fd is not None:
                    os.close(self._fd)
                    self._fd = None


class _Flusher:
    """A thread that fsyncs the log a moment after something was appended: what is appended within
    FLUSH_WINDOW_S of the first record joins its fsync, so a busy worker pays one fsync per window, not one
    per call. Fewer fsyncs is the point: an fsync slows every write the worker makes beside it on the
    same disk (a cancel measured 0.85 ms beside the trail's fsync, 0.54 ms without). A failed fsync is
    logged and tried again after RETRY_S, or with the next append."""

    RETRY_S = 1.0

    def __init__(self, audit: AuditLog, window_s: float) -> None:
        self._audit = audit
        self._window = window_s
        self._cv = threading.Condition()
        self._pending = self._stopping = False
        self._thread = threading.Thread(target=self._run, name="audit-flusher", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        with self._cv:
            if not self._pending:   # a flush is already due: this record joins it
                self._pending = True
                self._cv.notify()

    def stop(self) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify()
        self._thread.join()

    def _run(self) -> None:
        retry: float | None = None
        while True:
            with self._cv:
                while not self._pending and not self._stopping:
                    if not self._cv.wait(retry):
                        break   # the retry after a failed fsync
                deadline = time.monotonic() + self._window
                while not self._stopping and (left := deadline - time.monotonic()) > 0:
                    self._cv.wait(left)
                if self._stopping:
                    return   # close() flushes what is left, on its own thread
                self._pending = False
            try:
                self._audit.flush()
                retry = None
            except OSError:
                log.exception("the audit trail could not be fsync'd; trying again in %.0f s", self.RETRY_S)
                retry = self.RETRY_S


def write_all(fd: int, data: bytes) -> None:
    """os.write may write less than asked (a disk that fills up part-way): go on until it is all
    written or the OS says why not."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError("audit write made no progress")
        view = view[written:]


def _against_anchor(path: Path, size: int, n: int, last_hash: str, records: int, anchored: str) -> str:
    """What is wrong with a trail ending at record `n` given the anchor, or ""."""
    if n < records:
        first = "record 1" if n == 0 else f"record {n + 1}"
        return (f"ends at record {n}, but the journal anchored {records} records: {first} to {records} "
                "were removed from its end")
    if n == records:
        return "" if last_hash == anchored else (
            f"record {n} is not the one the journal anchored (its hash differs): the trail's end was rewritten")
    for line in _lines_before(path, size):   # walk back to the anchored record: usually 1 step
        rec, _ = _record(line)
        if rec is None or rec["n"] < records:
            break
        if rec["n"] == records:
            return "" if rec["hash"] == anchored else (
                f"record {records} is not the one the journal anchored (its hash differs): the trail was rewritten")
    return f"record {records}, which the journal anchored, is not where it should be: the trail was rewritten"


def verify(path: Path, anchor: tuple[int, str] | None = None) -> tuple[bool, str]:
    """Check every record of the trail, and its end against the journal's anchor when given.
    Returns (intact, what was found); the message names the first bad line."""
    if not path.exists():
        if anchor is not None and anchor[0] > 0:
            return False, f"no audit trail at {path}, but the journal anchored {anchor[0]} records: it was removed"
        return True, f"no audit trail at {path} yet (nothing state-changing has happened)"
    prev, n, at_anchor = GENESIS, 0, None
    notes: list[str] = []
    torn = b""
    with open(path, "rb") as f:
        for i, raw in enumerate(f, start=1):
            if not raw.endswith(b"\n"):
                torn = raw
                break
            rec, problem = _record(raw.rstrip(b"\n"))
            if rec is None:
                return False, f"line {i}: {problem}"
            if i == 1 and rec.get("call") == RESTART and rec["n"] == 1:
                notes.append(f"the trail was restarted at {rec.get('time')} ({rec.get('note')!r}; before it: "
                             f"{rec.get('previous', {}).get('found', '?')})")
            if rec["n"] != n + 1:
                return False, f"line {i}: record number {rec['n']} where {n + 1} was expected (reordered or removed)"
            if rec.get("prev") != prev:
                return False, f"line {i} (record {rec['n']}): does not follow the previous record (reordered)"
            prev, n = rec["hash"], rec["n"]
            if anchor is not None and n == anchor[0]:
                at_anchor = prev
    if torn:
        notes.append(f"its last line is cut short ({len(torn)} bytes: an interrupted write, never confirmed; "
                     "the worker moves it aside at start)")
    if anchor is not None:
        records, anchored = anchor
        if n < records:
            return False, (f"ends at record {n}, but the journal anchored {records} records: records {n + 1} to "
                           f"{records} were removed from its end")
        if records and at_anchor != anchored:
            return False, f"record {records} is not the one the journal anchored (its hash differs): rewritten"
    message = f"audit trail intact: {n} records"
    if anchor is not None:
        message += f", the last {n - anchor[0]} after the journal's anchor" if n > anchor[0] else ", as anchored"
    return True, "; ".join([message, *notes])


def restart(path: Path, anchor: AuditAnchor, note: str, time: str, stamp: str) -> tuple[bool, str]:
    """Begin a new trail after a person has looked at a broken one: the old file is kept aside as
    `<name>.cut-<stamp>` (0600) and the new trail's first record says what was found, what was
    anchored and the person's note. Does nothing, and says so (False), when the trail is intact."""
    head = anchor.audit_head()
    ok, found = verify(path, head)
    if ok:
        return False, f"{path.name} is intact ({found}): nothing to restart"
    moved = None
    if path.exists():
        target = path.with_name(f"{path.name}.cut-{stamp}")
        n = 1
        while target.exists():
            n += 1
            target = path.with_name(f"{path.name}.cut-{stamp}-{n}")
        path.rename(target)
        tighten(target)
        moved = target.name
    fresh = AuditLog(path)
    fresh.append({"time": time, "call": RESTART, "note": note, "previous": {
        "found": found, "moved_to": moved, "anchored_records": None if head is None else head[0],
        "anchored_hash": None if head is None else head[1]}})
    fresh.close()
    anchor.put_audit_head(*fresh.head)   # raises if it cannot: the worker would refuse the new trail
    log.warning("audit trail restarted: %s; the old one is %s", found, moved or "gone")
    kept = f"; the old file is kept as {moved}" if moved else ""
    return True, f"restarted {path.name} after: {found}{kept}"
