"""The worker's SQLite journal: order records, the event log, risk state, approvals and used confirm tokens.

Order records are written with synchronous=FULL before the broker call, so a crash after the call
still finds the record. What only repeats the broker (an order status it pushed, the order id it
answered) or the audit file (its anchor) is written in a `batch(durable=False)`: committed like any
other write, so a killed process loses none of it (WAL), but not fsync'd, so an OS crash or a power
cut can lose the last of it. Reconciliation asks the broker again at start and rebuilds exactly that,
and an anchor behind its audit file is caught up (audit.py). A fill's trade event is always fsync'd:
we keep no other record of it. An order pays one journal fsync, not three or four.

Events are appended in one way, `append(event, at)`, from the typed events of domain/events.py; the
journal alone sets their `seq` (an AUTOINCREMENT key: strictly increasing and never reused, across
restarts too), `time` and `type`.

Every lookup the worker makes goes through an index (by id, by day, by status, an order's events),
so what a call or a reconciliation costs depends on today's orders, not on how many came before.
An order record that cannot be read is moved aside into `orders_quarantined` (named in the log and
in health), never the whole journal; its client_order_id stays taken.
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pydantic_core

from ..domain.errors import StateUnwritable
from ..domain.events import ENVELOPE, Event
from ..domain.orders import MarketType, OrderRecord, OrderType, Side
from ..domain.status import TERMINAL, OrderStatus
from ..domain.timeutil import iso
from ..statedir import private_sqlite
from ..walcheckpoint import BACKSTOP_PAGES, TIDY_ROWS
from . import crashpoints
from .day_figures import DayFigures, OrderFigures

log = logging.getLogger("qmt_mcp.worker")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    account TEXT NOT NULL, client_order_id TEXT NOT NULL, order_id INTEGER, data TEXT NOT NULL,
    created_at TEXT NOT NULL, status TEXT, PRIMARY KEY (account, client_order_id));
CREATE TABLE IF NOT EXISTS orders_quarantined (
    row INTEGER, account TEXT, client_order_id TEXT, order_id INTEGER, data TEXT, created_at TEXT,
    reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT NOT NULL, time TEXT NOT NULL,
    type TEXT NOT NULL, order_id INTEGER, client_order_id TEXT, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_account ON events (account, seq);
CREATE TABLE IF NOT EXISTS risk_state (
    account TEXT PRIMARY KEY, day TEXT NOT NULL, baseline TEXT, tripped INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '', tripped_at TEXT, reset_at TEXT, reset_note TEXT, rearm_total TEXT);
CREATE TABLE IF NOT EXISTS risk_overrides (
    account TEXT PRIMARY KEY, kill_switch INTEGER, blocked_codes TEXT, updated_at TEXT NOT NULL,
    note TEXT NOT NULL, channel TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS approvals (
    approval_id TEXT PRIMARY KEY, account TEXT NOT NULL, client_order_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT NOT NULL,
    decision TEXT, decided_at TEXT, channel TEXT, note TEXT);
CREATE INDEX IF NOT EXISTS approvals_pending ON approvals (decision);
CREATE TABLE IF NOT EXISTS conditions (
    condition_id TEXT PRIMARY KEY, account TEXT NOT NULL, client_order_id TEXT NOT NULL, status TEXT NOT NULL,
    created_at TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS conditions_by_status ON conditions (status);
CREATE INDEX IF NOT EXISTS conditions_by_cid ON conditions (account, client_order_id);
CREATE TABLE IF NOT EXISTS confirm_used (token_id TEXT PRIMARY KEY, used_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS history_days (
    account TEXT NOT NULL, day TEXT NOT NULL, opening TEXT NOT NULL, closing TEXT NOT NULL,
    final INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (account, day));
CREATE TABLE IF NOT EXISTS history_folded (
    account TEXT NOT NULL, day TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (account, day));
"""
# After the migration (the status column must exist). Creating one on an old journal is a one-off.
_INDEXES = """
CREATE INDEX IF NOT EXISTS orders_by_id ON orders (account, order_id);
CREATE INDEX IF NOT EXISTS orders_by_time ON orders (account, created_at);
CREATE INDEX IF NOT EXISTS orders_by_status ON orders (account, status);
CREATE INDEX IF NOT EXISTS events_by_order ON events (account, client_order_id, seq);
CREATE INDEX IF NOT EXISTS events_by_type_time ON events (account, type, time);
"""
_COLUMNS = "(account, client_order_id, order_id, data, created_at, status) VALUES (?,?,?,?,?,?)"
# A record is written over in place (an upsert), not deleted and inserted again as INSERT OR REPLACE
# does: that also rewrote the primary key's index, a page more of log per write for the next fsync.
_PUT = ("INSERT INTO orders " + _COLUMNS + " ON CONFLICT (account, client_order_id) DO UPDATE SET "
        "order_id=excluded.order_id, data=excluded.data, created_at=excluded.created_at, status=excluded.status")
_INSERT = "INSERT OR IGNORE INTO orders " + _COLUMNS
_OPEN = tuple(s.value for s in OrderStatus if s not in TERMINAL)  # may still change at the broker
_OPEN_WHERE = "account=? AND status IN (" + ",".join("?" * len(_OPEN)) + ")"
_UNREADABLE = (ValueError, KeyError, TypeError, ArithmeticError)   # what a bad record raises decoding


_RECENT_MAX = 4096   # records kept decoded for order_by_client_id (a few MB at most)
_RECORD_FIELDS = tuple(f.name for f in fields(OrderRecord))


def _record_to_json(r: OrderRecord) -> str:
    # Field by field, not dataclasses.asdict: asdict deep-copies every nested dict, which was the
    # larger part of writing a record, and a record is written three to five times per order.
    d = {name: getattr(r, name) for name in _RECORD_FIELDS}
    d["price"] = str(r.price)
    d["traded_amount"] = str(r.traded_amount)
    # The enums by value: pydantic's serializer takes a slower path for an Enum (a third of the time).
    d["side"], d["order_type"], d["status"] = r.side.value, r.order_type.value, r.status.value
    d["market_type"] = None if r.market_type is None else r.market_type.value
    return _json_text(d)


def _order_row(r: OrderRecord) -> tuple[Any, ...]:
    """The orders table's row of `r`, in _COLUMNS' order."""
    return (r.account, r.client_order_id, r.order_id, _record_to_json(r), r.created_at, r.status.value)


def _json_text(value: Any) -> str:
    # pydantic's compiled serializer: a third of json.dumps's time, and a record or an event is
    # written several times per order. Read back with json.loads like any JSON (non-ASCII as UTF-8).
    return pydantic_core.to_json(value).decode()


def _record_from_json(text: str) -> OrderRecord:
    d = json.loads(text)
    d["side"] = Side(d["side"])
    d["order_type"] = OrderType(d["order_type"])
    d["market_type"] = None if d["market_type"] is None else MarketType(d["market_type"])
    d["status"] = OrderStatus(d["status"])
    d["price"] = Decimal(d["price"])
    d["traded_amount"] = Decimal(d["traded_amount"])
    return OrderRecord(**d)


class Journal:
    def __init__(self, path: Path | None) -> None:
        target = ":memory:" if path is None else private_sqlite(path)   # account ids inside: 0600
        self._db = sqlite3.connect(target, check_same_thread=False)
        self._path = path
        self._lock = threading.RLock()
        self._batch_depth = 0
        self._relaxed = False   # the open batch commits without an fsync (batch(durable=False))
        self._synced = True     # the connection's setting now: synchronous=FULL (True) or NORMAL
        self._figures: dict[str, DayFigures] = {}   # account -> today's orders as risk counts them
        # Written in the open transaction, the latest by (account, client_order_id): what a read inside
        # the batch sees (its own writes), and what is counted and cached once it commits.
        self._unsaved: dict[tuple[str, str], OrderRecord] = {}
        # The open batch's order records not yet written to the table: written once each, at its commit
        # or before anything reads the table (a push batch moves an order through two statuses).
        self._deferred: dict[tuple[str, str], OrderRecord] = {}
        self._undo: list[Callable[[], None]] = []   # on_rollback's, for the open batch
        # The latest records by (account, client_order_id), as committed: placing an order reads its
        # own record back five or more times (replay check, after the send, each push, the answer).
        self._recent: dict[tuple[str, str], OrderRecord] = {}
        self.quarantined: list[dict[str, str]] = []   # order records set aside since start (for health)
        self._unreadable: set[int] = set()             # their row ids, so each is reported once
        self.decoded = 0   # order records decoded since start: what tests count instead of timing
        self._tidied = 0   # total_changes when tidy() last checkpointed
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed order record survives power loss, not only a process crash.
        self._db.execute("PRAGMA synchronous=FULL")
        if path is not None:
            self._db.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")   # tidy() checkpoints it
        self._db.executescript(_SCHEMA)
        self._migrate()
        self._db.executescript(_INDEXES)
        # Whether any record was ever set aside: until one is, an insert need not look there.
        self._quarantined_any = self._db.execute("SELECT 1 FROM orders_quarantined LIMIT 1").fetchone() is not None
        with self._db:
            # The journal's identity: a reader that resumes by seq can tell a fresh journal (seq from 1
            # again) from the one it was following.
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('journal_id', ?)", (secrets.token_hex(8),))
        self.journal_id = str(self._db.execute("SELECT value FROM meta WHERE key='journal_id'").fetchone()[0])

    def _migrate(self) -> None:
        """A journal from before the status column: fill it in once, from the records themselves.
        A record that is not JSON has no status to read: it is set aside here, like any unreadable one.
        One from before `rearm_total` gets the column (empty: no reset re-armed the breaker yet)."""
        if "rearm_total" not in {row[1] for row in self._db.execute("PRAGMA table_info(risk_state)")}:
            with self._db:
                self._db.execute("ALTER TABLE risk_state ADD COLUMN rearm_total TEXT")
        if "status" in {row[1] for row in self._db.execute("PRAGMA table_info(orders)")}:
            return
        with self._db:
            self._db.execute("ALTER TABLE orders ADD COLUMN status TEXT")
            self._db.execute("UPDATE orders SET status = CASE WHEN json_valid(data) "
                             "THEN json_extract(data, '$.status') END")
        for rowid, account, cid in self._db.execute(
                "SELECT rowid, account, client_order_id FROM orders WHERE status IS NULL").fetchall():
            self._set_aside(rowid, account, cid, "not JSON")

    def tidy(self) -> None:
        """Checkpoint the write-ahead log once TIDY_ROWS rows have changed since the last time. The
        worker calls it at the end of its tick, after the round's firings, where nothing waits on it:
        left to SQLite, the commit that took the log past 1,000 pages paid for it, an order's or a
        fill's as likely as any (walcheckpoint.py); its own checkpoint is only a backstop here."""
        if self._path is None:
            return
        with self._lock:
            changes = self._db.total_changes
            if self._batch_depth or changes - self._tidied < TIDY_ROWS:
                return
            try:
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as exc:   # a full disk: the next tick tries again
                log.debug("journal checkpoint: %s", exc)
                return
            self._tidied = changes

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def checkpoint(self) -> None:
        """Move the write-ahead log into the database and empty it (the next write grows it again)."""
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @contextmanager
    def batch(self, durable: bool = True) -> Iterator[None]:
        """Writes made inside commit together at the end (one fsync), or not at all. For synchronous
        code only: nothing may await inside, or another request's write could join the batch and
        be answered before it is durable. `durable=False`: no fsync (see the module's docstring for
        what may use it); a durable write joining such a batch makes the whole batch durable."""
        with self._lock:
            if self._batch_depth:
                if durable:
                    self._durable_from_here()
                yield
                return
            self._batch_depth = 1
            self._relaxed = not durable and self._path is not None
            try:
                # Set outside the transaction, and left as it is after: the next commit sets its own
                # (most batches follow one of their kind, so most set nothing).
                self._sync(not self._relaxed)
                with self._transaction():
                    yield
            finally:
                self._batch_depth = 0
                self._relaxed = False

    def _durable_from_here(self) -> None:
        """The open relaxed batch now holds a write that must survive a power cut: its commit is
        fsync'd after all (SQLite reads the setting at commit, so it may change inside)."""
        if self._relaxed:
            self._relaxed = False
            self._sync(True)

    def _sync(self, durable: bool) -> None:
        """Commits from here on are fsync'd (synchronous=FULL) or not (NORMAL). SQLite reads the
        setting at each commit, so it may change inside a transaction too."""
        if durable != self._synced:
            self._db.execute("PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=NORMAL")
            self._synced = durable

    @contextmanager
    def _write(self, joins: bool = False) -> Iterator[None]:
        """One write: its own (durable) transaction, or part of the batch in progress. `joins`: a
        write that is only as durable as that batch (an order record, an event); any other write
        makes the batch durable."""
        with self._lock:
            if self._batch_depth:
                if not joins:
                    self._durable_from_here()
                yield
            else:
                self._sync(True)   # a write of its own is durable
                with self._transaction():
                    yield

    def on_rollback(self, undo: Callable[[], None]) -> None:
        """Call `undo` if the batch in progress does not commit (what a caller keeps in memory beside
        it must not run ahead of the journal). Outside a batch every write has committed already."""
        with self._lock:
            if self._batch_depth:
                self._undo.append(undo)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            with _writable(), self._db:
                yield
                self._write_deferred()
                crashpoints.reached("journal.commit")
        except BaseException:
            self._deferred.clear()
            self._unsaved.clear()
            undo, self._undo = self._undo, []
            for fn in undo:
                fn()
            raise
        self._undo.clear()
        crashpoints.reached("journal.committed")
        for r in self._unsaved.values():
            figures = self._figures.get(r.account)
            if figures is not None:
                figures.put(r.client_order_id, OrderFigures.of(r))
            self._remember(r)
        self._unsaved.clear()

    def _remember(self, r: OrderRecord) -> None:
        key = (r.account, r.client_order_id)
        self._recent.pop(key, None)   # to the end: the oldest goes first when the cache is full
        self._recent[key] = r
        if len(self._recent) > _RECENT_MAX:
            del self._recent[next(iter(self._recent))]

    # ----- orders
    def put_order(self, r: OrderRecord) -> None:
        with self._write(joins=True):
            key = (r.account, r.client_order_id)
            if self._batch_depth:
                self._deferred[key] = r
            else:
                self._db.execute(_PUT, _order_row(r))
            self._unsaved[key] = r

    def _write_deferred(self) -> None:
        """Write the open batch's deferred records: before its commit, and before any read of the
        orders table inside it (SQL must see what the batch wrote)."""
        if self._deferred:
            rows = [_order_row(r) for r in self._deferred.values()]
            self._deferred.clear()
            self._db.executemany(_PUT, rows)

    def insert_order(self, r: OrderRecord) -> bool:
        """Reserve a client_order_id; False if the account already has it, or had it in a record
        that was set aside as unreadable (that order may have reached the broker: a new one under
        its id could be a second order)."""
        with self._write():
            self._write_deferred()
            if self._quarantined_any and self._db.execute(
                    "SELECT 1 FROM orders_quarantined WHERE account=? AND client_order_id=?",
                    (r.account, r.client_order_id)).fetchone() is not None:
                return False
            cur = self._db.execute(_INSERT, _order_row(r))
            if cur.rowcount == 1:
                self._unsaved[(r.account, r.client_order_id)] = r
            return cur.rowcount == 1

    def _decoded(self, rows: list[tuple[int, str, str, str]]) -> list[OrderRecord]:
        """(rowid, account, client_order_id, data) rows as records; an unreadable one is set aside."""
        out = []
        for rowid, account, cid, text in rows:
            self.decoded += 1
            try:
                out.append(_record_from_json(text))
            except _UNREADABLE as exc:
                self._set_aside(rowid, account, cid, f"{type(exc).__name__}: {exc}"[:200])
        return out

    def _set_aside(self, rowid: int, account: str, cid: str, why: str) -> None:
        """Move one unreadable order record into orders_quarantined, and say so once (log, health).
        Kept, not deleted: whoever looks into it has the bytes. If the move cannot be written (a
        full disk), the record stays where it is and is skipped."""
        with self._lock:
            if rowid in self._unreadable:
                return
            self._unreadable.add(rowid)
            self._recent.pop((account, cid), None)
            try:
                with self._write():
                    self._write_deferred()
                    self._db.execute(
                        "INSERT INTO orders_quarantined SELECT rowid, account, client_order_id, order_id, data, "
                        "created_at, ? FROM orders WHERE rowid=?", (why, rowid))
                    self._db.execute("DELETE FROM orders WHERE rowid=?", (rowid,))
                    self._quarantined_any = True   # (set before the commit: a rollback leaves it merely cautious)
                moved = "the journal's orders_quarantined table"
            except StateUnwritable:
                moved = "nowhere yet (the journal is not writable): skipped"
            consequence = ("Its client_order_id stays taken; if the broker lists the order today, "
                           "reconciliation records it again from the broker's fields.")
            log.error("order record client_order_id=%s (row %d) of account %s is unreadable (%s): moved it to %s. %s",
                      cid, rowid, account, why, moved, consequence)
            self.quarantined.append({
                "file": "worker.sqlite", "moved_to": moved, "record": f"client_order_id={cid} row={rowid}",
                "client_order_id": cid, "row": str(rowid), "reason": f"unreadable order record: {why}",
                "consequence": consequence,
            })

    def token_used(self, token_id: str) -> bool:
        """Whether a token was spent already (read only: a person is never asked about a spent one)."""
        with self._lock:
            row = self._db.execute("SELECT 1 FROM confirm_used WHERE token_id=?", (token_id,)).fetchone()
        return row is not None

    def _select(self, where: str, params: tuple[Any, ...]) -> list[OrderRecord]:
        """Records matching `where` (always one of this module's literals; values go in `params`),
        oldest first. Sorted here, not by ORDER BY: asked to sort by created_at, SQLite walks the
        whole by-time index of the account rather than the id or status index and a sort."""
        with self._lock:
            self._write_deferred()
            sql = "SELECT rowid, account, client_order_id, data, created_at FROM orders WHERE " + where  # noqa: S608
            rows = sorted(self._db.execute(sql, params).fetchall(), key=lambda r: (r[4], r[0]))
            return self._decoded([r[:4] for r in rows])

    def order_by_client_id(self, account: str, client_order_id: str) -> OrderRecord | None:
        """The record as it stands, inside a batch too: a push batch's second update of an order reads
        what its first one wrote, not the committed record before it."""
        with self._lock:
            key = (account, client_order_id)
            known = self._unsaved.get(key) or self._recent.get(key)
            if known is not None:
                return known
            # Not written in the open batch (that would be in _unsaved): committed, safe to cache.
            found = self._select("account=? AND client_order_id=?", (account, client_order_id))
            if found:
                self._remember(found[0])
            return found[0] if found else None

    def order_by_id(self, account: str, order_id: int) -> OrderRecord | None:
        found = self._select("account=? AND order_id=? LIMIT 1", (account, order_id))
        return found[0] if found else None

    def orders_by_id(self, account: str, order_id: int) -> list[OrderRecord]:
        """Every record carrying this broker order id, oldest first: a counter's ids start over (each
        trading day, or with a new book), so one id may name several orders."""
        return self._select("account=? AND order_id=?", (account, order_id))

    def orders(self, account: str, since: str = "") -> list[OrderRecord]:
        """The account's records created at or after `since` (an iso_ms stamp), oldest first."""
        return self._select("account=? AND created_at>=?", (account, since))

    def open_orders(self, account: str) -> list[OrderRecord]:
        """Records whose status may still change at the broker (not final), whatever their day."""
        return self._select(_OPEN_WHERE, (account, *_OPEN))

    def day_figures(self, account: str, since: str) -> DayFigures:
        """What risk checks count of the orders created since `since` (a day start, which only moves
        forward), kept in memory and updated as records are committed (day_figures.py)."""
        with self._lock:
            figures = self._figures.get(account)
            if figures is None:
                records = self.orders(account, since)
                figures = DayFigures(since, ((r.client_order_id, OrderFigures.of(r)) for r in records))
            self._figures[account] = figures = figures.trimmed(since)
            return figures

    def unresolved_orders(self, account: str) -> list[OrderRecord]:
        """Records whose broker outcome we do not know: pending_submit and indeterminate."""
        return self._select("account=? AND status IN (?, ?)",
                            (account, OrderStatus.PENDING_SUBMIT.value, OrderStatus.INDETERMINATE.value))

    # ----- events
    def append(self, event: Event, at: datetime) -> dict[str, Any]:
        """Journal `event` as happening at `at`; the event as the wire has it.

        The journal alone sets `seq` (the next in its sequence), `time` (`at`, in the wire's form) and
        `type` (the event's class): nothing in the event can overwrite them (domain/events.py).
        Raises StateUnwritable when the journal cannot be written (nothing is then recorded)."""
        time, kind, data = iso(at), event.type.value, event.payload()
        with self._write(joins=True):
            cur = self._db.execute(
                "INSERT INTO events (account, time, type, order_id, client_order_id, data) VALUES (?,?,?,?,?,?)",
                (event.account, time, kind, event.order_id, event.client_order_id, _json_text(data)),
            )
            seq = cur.lastrowid
        return _event(seq or 0, event.account, time, kind, event.order_id, event.client_order_id, data)

    def events(
        self, account: str, after_seq: int, limit: int, order_client_id: str | None = None
    ) -> list[dict[str, Any]]:
        sql = "SELECT seq, account, time, type, order_id, client_order_id, data FROM events WHERE account=? AND seq>?"
        params: list[Any] = [account, after_seq]
        if order_client_id is not None:
            sql += " AND client_order_id=?"
            params.append(order_client_id)
        sql += " ORDER BY seq LIMIT ?"
        params.append(limit)
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [_event(s, a, t, ty, oid, cid, json.loads(d)) for s, a, t, ty, oid, cid, d in rows]

    def events_after(self, after_seq: int, limit: int) -> list[dict[str, Any]]:
        """Every account's events after `after_seq`, in seq order (the worker's event stream)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, account, time, type, order_id, client_order_id, data FROM events "
                "WHERE seq>? ORDER BY seq LIMIT ?", (after_seq, limit),
            ).fetchall()
        return [_event(s, a, t, ty, oid, cid, json.loads(d)) for s, a, t, ty, oid, cid, d in rows]

    def latest_events(self, account: str, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, account, time, type, order_id, client_order_id, data FROM events "
                "WHERE account=? ORDER BY seq DESC LIMIT ?", (account, limit),
            ).fetchall()
        rows.reverse()
        return [_event(s, a, t, ty, oid, cid, json.loads(d)) for s, a, t, ty, oid, cid, d in rows]

    def last_seq(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name='events'").fetchone()
        return int(row[0]) if row else 0

    # ----- risk state
    def risk_state(self, account: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT day, baseline, tripped, reason, tripped_at, reset_at, reset_note, rearm_total FROM risk_state "
                "WHERE account=?", (account,),
            ).fetchone()
        if row is None:
            return None
        day, baseline, tripped, reason, tripped_at, reset_at, note, rearm = row
        return {
            "day": day, "baseline": None if baseline is None else Decimal(baseline),
            "tripped": bool(tripped), "reason": reason, "tripped_at": tripped_at,
            "reset_at": reset_at, "reset_note": note, "rearm_total": None if rearm is None else Decimal(rearm),
        }

    def put_risk_state(self, account: str, state: dict[str, Any]) -> None:
        with self._write():
            self._db.execute(
                "INSERT OR REPLACE INTO risk_state (account, day, baseline, tripped, reason, tripped_at, reset_at, "
                "reset_note, rearm_total) VALUES (?,?,?,?,?,?,?,?,?)",
                (account, state["day"], None if state["baseline"] is None else str(state["baseline"]),
                 int(state["tripped"]), state["reason"], state["tripped_at"], state.get("reset_at"),
                 state.get("reset_note"), None if state.get("rearm_total") is None else str(state["rearm_total"])),
            )

    # ----- a person's risk controls over the config's (riskbook.Overrides); NULL: the config's own
    def risk_overrides(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT account, kill_switch, blocked_codes, updated_at, note, channel FROM risk_overrides").fetchall()
        return {
            account: {"kill_switch": None if kill is None else bool(kill),
                      "blocked_codes": None if codes is None else frozenset(json.loads(codes)),
                      "updated_at": at, "note": note, "channel": channel}
            for account, kill, codes, at, note, channel in rows
        }

    def put_risk_override(self, account: str, o: dict[str, Any]) -> None:
        codes = o["blocked_codes"]
        with self._write():
            self._db.execute(
                "INSERT OR REPLACE INTO risk_overrides VALUES (?,?,?,?,?,?)",
                (account, None if o["kill_switch"] is None else int(o["kill_switch"]),
                 None if codes is None else json.dumps(sorted(codes)), o["updated_at"], o["note"], o["channel"]),
            )

    # ----- approvals (worker/approvals.py): one row per order that waited for a person
    def insert_approval(self, a: dict[str, Any]) -> None:
        with self._write():
            self._db.execute(
                "INSERT INTO approvals (approval_id, account, client_order_id, fingerprint, created_at, expires_at) "
                "VALUES (?,?,?,?,?,?)",
                (a["approval_id"], a["account"], a["client_order_id"], json.dumps(a["fingerprint"], sort_keys=True),
                 a["created_at"], a["expires_at"]))

    def approval(self, approval_id: str) -> dict[str, Any] | None:
        with self._lock:
            rows = self._db.execute(_APPROVAL_SELECT + "WHERE approval_id=?", (approval_id,)).fetchall()
        return _approval(rows[0]) if rows else None

    def pending_approvals(self) -> list[dict[str, Any]]:
        """Undecided approvals, oldest first (few: each is an order a person has yet to look at)."""
        with self._lock:
            rows = self._db.execute(_APPROVAL_SELECT + "WHERE decision IS NULL ORDER BY created_at").fetchall()
        return [_approval(r) for r in rows]

    def decide_approval(self, approval_id: str, decision: str, at: str, channel: str, note: str) -> bool:
        """Record the one decision of an approval; False if it had one already (it is never changed)."""
        with self._write():
            cur = self._db.execute(
                "UPDATE approvals SET decision=?, decided_at=?, channel=?, note=? "
                "WHERE approval_id=? AND decision IS NULL", (decision, at, channel, note, approval_id))
            return cur.rowcount == 1

    # ----- conditional orders (worker/conditions.py keeps their JSON form; the journal only files it)
    def put_condition(self, condition_id: str, account: str, client_order_id: str, status: str, created_at: str,
                      data: str) -> None:
        with self._write(joins=True):   # as durable as the caller's batch (condition_watch.py relaxes one)
            self._db.execute("INSERT OR REPLACE INTO conditions VALUES (?,?,?,?,?,?)",
                             (condition_id, account, client_order_id, status, created_at, data))

    def conditions(self, account: str | None = None, statuses: tuple[str, ...] = (),
                   client_order_id: str | None = None, condition_id: str | None = None) -> list[str]:
        """The JSON of matching conditions, oldest first (each filter through an index)."""
        where, params = ["1=1"], []
        if condition_id is not None:
            where.append("condition_id=?")
            params.append(condition_id)
        if account is not None:
            where.append("account=?")
            params.append(account)
        if client_order_id is not None:
            where.append("client_order_id=?")
            params.append(client_order_id)
        if statuses:
            where.append("status IN (" + ",".join("?" * len(statuses)) + ")")
            params.extend(statuses)
        sql = "SELECT data FROM conditions WHERE " + " AND ".join(where) + " ORDER BY created_at, rowid"  # noqa: S608
        with self._lock:
            return [str(d) for (d,) in self._db.execute(sql, params).fetchall()]

    # ----- confirm tokens
    def use_token(self, token_id: str, at: str) -> bool:
        """Mark a token used; False if it was used before."""
        with self._write():
            cur = self._db.execute("INSERT OR IGNORE INTO confirm_used VALUES (?,?)", (token_id, at))
            return cur.rowcount == 1

    # ----- history (worker/history.py): its day snapshots and folded summaries, its SQL its own
    def query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            self._write_deferred()
            return self._db.execute(sql, params).fetchall()

    def execute_all(self, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        """Several writes in one transaction (or the batch in progress). They may delete or change
        order records (retention deletes folded days' finished orders): the records kept decoded for
        order_by_client_id are let go, so a client_order_id freed this way is free here too."""
        with self._write():
            self._write_deferred()
            for sql, params in statements:
                self._db.execute(sql, params)
            self._recent.clear()

    def size_bytes(self) -> int:
        """The journal file's size as SQLite holds it (pages × page size; freed pages are reused)."""
        with self._lock:
            pages = self._db.execute("PRAGMA page_count").fetchone()[0]
            size = self._db.execute("PRAGMA page_size").fetchone()[0]
        return int(pages) * int(size)

    # ----- the audit trail's anchor (audit.py): its head, where an edit of audit.jsonl does not reach
    def audit_head(self) -> tuple[int, str] | None:
        """(record count, last hash) of the audit trail as last appended, or None before the first."""
        with self._lock:
            return _audit_head(self._db)

    def put_audit_head(self, records: int, last_hash: str) -> None:
        # Not fsync'd: the audit file itself was, and a file ahead of its anchor is caught up at start.
        with self.batch(durable=False):
            self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                 [("audit_records", str(records)), ("audit_hash", last_hash)])


_APPROVAL_SELECT = ("SELECT approval_id, account, client_order_id, fingerprint, created_at, expires_at, decision, "
                    "decided_at, channel, note FROM approvals ")
_APPROVAL_KEYS = ("approval_id", "account", "client_order_id", "fingerprint", "created_at", "expires_at", "decision",
                  "decided_at", "channel", "note")


def _approval(row: tuple[Any, ...]) -> dict[str, Any]:
    out = dict(zip(_APPROVAL_KEYS, row, strict=True))
    out["fingerprint"] = json.loads(out["fingerprint"])
    return out


def read_audit_head(path: Path) -> tuple[int, str] | None:
    """The anchor in a journal file, read without writing anything (a worker may be running)."""
    if not path.exists():
        return None
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return _audit_head(db)
    except sqlite3.DatabaseError:
        return None   # no meta table (nothing anchored yet), or not a database: nothing to check against
    finally:
        db.close()


def _audit_head(db: sqlite3.Connection) -> tuple[int, str] | None:
    rows = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('audit_records', 'audit_hash')").fetchall())
    if "audit_records" not in rows or "audit_hash" not in rows:
        return None
    return int(rows["audit_records"]), str(rows["audit_hash"])


@contextmanager
def _writable() -> Iterator[None]:
    """A write SQLite cannot make (disk full, read-only file or dir, I/O error) is a typed error.
    The transaction is rolled back first, so nothing half-written stays."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise StateUnwritable(f"the journal cannot be written: {exc}", state_changed="no",
                              details={"sqlite": getattr(exc, "sqlite_errorname", "")}) from exc


def _event(
    seq: int, account: str, time: str, type_: str, order_id: int | None, cid: str | None,
    data: dict[str, Any],
) -> dict[str, Any]:
    """An event row as the wire has it: the envelope from the journal's own columns, then the
    payload. A payload key that names an envelope key (a row written before events were typed could
    hold one) is left out: it never overwrites the journal's seq, time, type, account or ids."""
    ev: dict[str, Any] = {"seq": seq, "time": time, "account": account, "type": type_}
    if order_id is not None:
        ev["order_id"] = order_id
    if cid is not None:
        ev["client_order_id"] = cid
    ev.update((k, v) for k, v in data.items() if k not in ENVELOPE)
    return ev
