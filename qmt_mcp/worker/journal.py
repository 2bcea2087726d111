"""The worker's SQLite journal: order records, the event log, risk state and used confirm tokens.

Order records are written with synchronous=FULL before the broker call, so a crash after the call
still finds the record. Event `seq` is an AUTOINCREMENT key: strictly increasing and never
reused, across restarts too.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..domain.errors import StateUnwritable
from ..domain.orders import MarketType, OrderRecord, OrderType, Side
from ..domain.status import OrderStatus
from ..statedir import private_sqlite
from . import crashpoints

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    account TEXT NOT NULL, client_order_id TEXT NOT NULL, order_id INTEGER, data TEXT NOT NULL,
    created_at TEXT NOT NULL, PRIMARY KEY (account, client_order_id));
CREATE INDEX IF NOT EXISTS orders_by_id ON orders (account, order_id);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT NOT NULL, time TEXT NOT NULL,
    type TEXT NOT NULL, order_id INTEGER, client_order_id TEXT, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_account ON events (account, seq);
CREATE TABLE IF NOT EXISTS risk_state (
    account TEXT PRIMARY KEY, day TEXT NOT NULL, baseline TEXT, tripped INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '', tripped_at TEXT, reset_at TEXT, reset_note TEXT);
CREATE TABLE IF NOT EXISTS confirm_used (token_id TEXT PRIMARY KEY, used_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class OrderFigures:
    status: OrderStatus
    side: Side
    code: str
    created_at: str
    price: Decimal
    volume: int
    traded_volume: int
    traded_amount: Decimal

    @classmethod
    def of(cls, r: OrderRecord) -> OrderFigures:
        return cls(r.status, r.side, r.code, r.created_at, r.price, r.volume, r.traded_volume, r.traded_amount)


def _record_to_json(r: OrderRecord) -> str:
    d = asdict(r)
    d["price"] = str(r.price)
    d["traded_amount"] = str(r.traded_amount)
    return json.dumps(d)


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
        self._lock = threading.RLock()
        self._batch_depth = 0
        self._figures: dict[str, dict[str, OrderFigures]] = {}   # account -> client_order_id -> figures
        self._unsaved: list[OrderRecord] = []   # written in the open transaction; counted once it commits
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed order record survives power loss, not only a process crash.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        with self._db:
            # The journal's identity: a reader that resumes by seq can tell a fresh journal (seq from 1
            # again) from the one it was following.
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('journal_id', ?)", (secrets.token_hex(8),))
        self.journal_id = str(self._db.execute("SELECT value FROM meta WHERE key='journal_id'").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Writes made inside commit together at the end (one fsync), or not at all. For synchronous
        code only: nothing may await inside, or another request's write could join the batch and
        be answered before it is durable."""
        with self._lock:
            if self._batch_depth:
                yield
                return
            self._batch_depth = 1
            try:
                with self._transaction():
                    yield
            finally:
                self._batch_depth = 0

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One write: its own transaction, or part of the batch in progress."""
        with self._lock:
            if self._batch_depth:
                yield
            else:
                with self._transaction():
                    yield

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            with _writable(), self._db:
                yield
                crashpoints.reached("journal.commit")
        except BaseException:
            self._unsaved.clear()
            raise
        crashpoints.reached("journal.committed")
        for r in self._unsaved:
            figures = self._figures.get(r.account)
            if figures is not None:
                figures[r.client_order_id] = OrderFigures.of(r)
        self._unsaved.clear()

    # ----- orders
    def put_order(self, r: OrderRecord) -> None:
        with self._write():
            self._db.execute(
                "INSERT OR REPLACE INTO orders VALUES (?,?,?,?,?)",
                (r.account, r.client_order_id, r.order_id, _record_to_json(r), r.created_at),
            )
            self._unsaved.append(r)

    def insert_order(self, r: OrderRecord) -> bool:
        """Reserve a client_order_id; False if the account already has it."""
        with self._write():
            cur = self._db.execute(
                "INSERT OR IGNORE INTO orders VALUES (?,?,?,?,?)",
                (r.account, r.client_order_id, r.order_id, _record_to_json(r), r.created_at),
            )
            if cur.rowcount == 1:
                self._unsaved.append(r)
            return cur.rowcount == 1

    def token_used(self, token_id: str) -> bool:
        """Whether a token was spent already (read only: a person is never asked about a spent one)."""
        with self._lock:
            row = self._db.execute("SELECT 1 FROM confirm_used WHERE token_id=?", (token_id,)).fetchone()
        return row is not None

    def order_by_client_id(self, account: str, client_order_id: str) -> OrderRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT data FROM orders WHERE account=? AND client_order_id=?", (account, client_order_id)
            ).fetchone()
        return None if row is None else _record_from_json(row[0])

    def order_by_id(self, account: str, order_id: int) -> OrderRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT data FROM orders WHERE account=? AND order_id=?", (account, order_id)
            ).fetchone()
        return None if row is None else _record_from_json(row[0])

    def orders(self, account: str, since: str = "") -> list[OrderRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT data FROM orders WHERE account=? AND created_at>=? ORDER BY created_at, rowid",
                (account, since),
            ).fetchall()
        return [_record_from_json(r[0]) for r in rows]

    def order_figures(self, account: str, since: str) -> list[OrderFigures]:
        """What risk checks count of each order created since `since` (a day start, which only moves
        forward). Every order checks all of the day's orders, so these are kept in memory, small, and
        updated as records are written, instead of decoding every record again for every order."""
        with self._lock:
            figures = self._figures.get(account)
            if figures is None:
                figures = self._figures[account] = {r.client_order_id: OrderFigures.of(r)
                                                    for r in self.orders(account, since)}
            for cid in [cid for cid, f in figures.items() if f.created_at < since]:
                del figures[cid]  # an earlier day's: never asked for again
            return list(figures.values())

    def unresolved_orders(self, account: str) -> list[OrderRecord]:
        """Records whose broker outcome we do not know: pending_submit and indeterminate."""
        with self._lock:
            rows = self._db.execute(
                "SELECT data FROM orders WHERE account=? AND json_extract(data, '$.status') IN (?, ?) "
                "ORDER BY created_at, rowid",
                (account, OrderStatus.PENDING_SUBMIT.value, OrderStatus.INDETERMINATE.value),
            ).fetchall()
        return [_record_from_json(r[0]) for r in rows]

    # ----- events
    def append_event(
        self, account: str, time: str, type_: str, order_id: int | None, client_order_id: str | None,
        data: dict[str, Any],
    ) -> dict[str, Any]:
        with self._write():
            cur = self._db.execute(
                "INSERT INTO events (account, time, type, order_id, client_order_id, data) VALUES (?,?,?,?,?,?)",
                (account, time, type_, order_id, client_order_id, json.dumps(data)),
            )
            seq = cur.lastrowid
        return _event(seq or 0, account, time, type_, order_id, client_order_id, data)

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
                "SELECT day, baseline, tripped, reason, tripped_at, reset_at, reset_note FROM risk_state "
                "WHERE account=?", (account,),
            ).fetchone()
        if row is None:
            return None
        day, baseline, tripped, reason, tripped_at, reset_at, note = row
        return {
            "day": day, "baseline": None if baseline is None else Decimal(baseline),
            "tripped": bool(tripped), "reason": reason, "tripped_at": tripped_at,
            "reset_at": reset_at, "reset_note": note,
        }

    def put_risk_state(self, account: str, state: dict[str, Any]) -> None:
        with self._write():
            self._db.execute(
                "INSERT OR REPLACE INTO risk_state VALUES (?,?,?,?,?,?,?,?)",
                (account, state["day"], None if state["baseline"] is None else str(state["baseline"]),
                 int(state["tripped"]), state["reason"], state["tripped_at"], state.get("reset_at"),
                 state.get("reset_note")),
            )

    # ----- confirm tokens
    def use_token(self, token_id: str, at: str) -> bool:
        """Mark a token used; False if it was used before."""
        with self._write():
            cur = self._db.execute("INSERT OR IGNORE INTO confirm_used VALUES (?,?)", (token_id, at))
            return cur.rowcount == 1


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
    ev: dict[str, Any] = {"seq": seq, "time": time, "account": account, "type": type_}
    if order_id is not None:
        ev["order_id"] = order_id
    if cid is not None:
        ev["client_order_id"] = cid
    ev.update(data)
    return ev
