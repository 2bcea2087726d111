"""The simulated counter's own SQLite file: cash, positions, orders and trades of paper accounts.

It is the broker's state, kept apart from the worker's journal the way a real counter is.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from ...domain.errors import StateUnwritable
from ...domain.money import round_fen
from ...statedir import private_sqlite
from ...walcheckpoint import WalCheckpointer

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (account_id TEXT PRIMARY KEY, cash TEXT NOT NULL, day TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS positions (
    account_id TEXT NOT NULL, code TEXT NOT NULL, volume INTEGER NOT NULL,
    today_bought INTEGER NOT NULL, cost TEXT NOT NULL, fill_cost TEXT, PRIMARY KEY (account_id, code));
CREATE TABLE IF NOT EXISTS orders (order_id INTEGER PRIMARY KEY, account_id TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trades (seq INTEGER PRIMARY KEY AUTOINCREMENT, account_id TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# What the counter loads (today's orders and trades, and orders that may still trade) is found by
# index, so an old book starts as fast as a new one. A row that is not JSON reads as NULL, not an error.
_DAY = "(CASE WHEN json_valid(data) THEN json_extract(data, '$.day') END)"
_STATUS = "(CASE WHEN json_valid(data) THEN json_extract(data, '$.status') END)"
_TRADE_DAY = "(CASE WHEN json_valid(data) THEN substr(json_extract(data, '$.time'), 1, 10) END)"
_INDEXES = f"""
CREATE INDEX IF NOT EXISTS orders_by_day ON orders ({_DAY});
CREATE INDEX IF NOT EXISTS orders_by_status ON orders ({_STATUS});
CREATE INDEX IF NOT EXISTS trades_by_day ON trades ({_TRADE_DAY});
"""


@dataclass
class PositionRow:
    volume: int
    today_bought: int
    # Both exact, in yuan; a sell releases its share of them to the fen.
    cost: Decimal       # cost basis of the shares held (buy fees included)
    fill_cost: Decimal  # what they were bought for (fees excluded)

    @classmethod
    def empty(cls) -> PositionRow:
        return cls(0, 0, Decimal(0), Decimal(0))

    def buy(self, volume: int, amount: Decimal, fees: Decimal, locked: bool) -> None:
        """A buy fill of `volume` shares for `amount` yuan plus `fees`; `locked`: not sellable today (T+1)."""
        self.volume += volume
        if locked:
            self.today_bought += volume
        self.cost += amount + fees
        self.fill_cost += amount

    def sell(self, volume: int) -> None:
        """A sell fill. Average cost: the shares sold carry away their share of the cost, to the fen,
        so what stays is exact and selling the last share leaves exactly zero."""
        self.cost -= _share_of(self.cost, volume, self.volume)
        self.fill_cost -= _share_of(self.fill_cost, volume, self.volume)
        self.volume -= volume
        self.today_bought = min(self.today_bought, self.volume)


def _share_of(total: Decimal, sold: int, held: int) -> Decimal:
    return total if sold >= held else round_fen(total * sold / held)


class SimStore:
    def __init__(self, path: Path | None) -> None:
        target = ":memory:" if path is None else private_sqlite(path)   # account ids inside: 0600
        self._db = sqlite3.connect(target, check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.executescript(_INDEXES)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(positions)")}
        if "fill_cost" not in columns:
            # A book from before fill costs were kept: NULL reads back as the cost basis (see load).
            self._db.execute("ALTER TABLE positions ADD COLUMN fill_cost TEXT")
        # An order's commit at the counter never pays for a checkpoint (walcheckpoint.py).
        self._checkpointer = None if path is None else WalCheckpointer(self._db, path)

    def load_accounts(self) -> dict[str, tuple[Decimal, str]]:
        rows = self._db.execute("SELECT account_id, cash, day FROM accounts").fetchall()
        return {a: (Decimal(c), d) for a, c, d in rows}

    def load_positions(self, account_id: str) -> dict[str, PositionRow]:
        rows = self._db.execute(
            "SELECT code, volume, today_bought, cost, fill_cost FROM positions WHERE account_id=?", (account_id,)
        ).fetchall()
        # A position from before fill costs were kept has only its cost basis, fees included.
        return {c: PositionRow(v, t, Decimal(cost), Decimal(fill or cost)) for c, v, t, cost, fill in rows}

    def load_orders(
        self, since_day: str = "", statuses: frozenset[str | int] = frozenset()
    ) -> list[dict[str, Any]]:
        """Orders of `since_day` (ISO date) and later, and orders whose stored status is one of
        `statuses`, by id. A counter lists today's orders; holding every earlier one in memory made
        start-up grow with the book."""
        marks = ",".join("?" * len(statuses)) or "NULL"
        # Sorted here: told to ORDER BY the key, SQLite would walk the whole table instead of the indexes.
        sql = f"SELECT order_id, data FROM orders WHERE {_DAY} >= ? OR {_STATUS} IN ({marks})"  # noqa: S608
        rows = sorted(self._db.execute(sql, (since_day, *sorted(statuses, key=str))).fetchall())
        return [json.loads(data) for _, data in rows]

    def load_trades(self, since_day: str = "") -> list[dict[str, Any]]:
        """Trades of `since_day` (ISO date) and later, in the order they happened."""
        sql = f"SELECT seq, data FROM trades WHERE {_TRADE_DAY} >= ?"  # noqa: S608
        return [json.loads(data) for _, data in sorted(self._db.execute(sql, (since_day,)).fetchall())]

    def meta(self, key: str, default: str) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return default if row is None else str(row[0])

    def save(
        self,
        accounts: dict[str, tuple[Decimal, str]] | None = None,
        positions: dict[tuple[str, str], PositionRow] | None = None,
        orders: list[tuple[int, str, dict[str, Any]]] | None = None,
        trades: list[tuple[str, dict[str, Any]]] | None = None,
        meta: dict[str, str] | None = None,
    ) -> None:
        """Write a batch of changes in one transaction, or none of them: StateUnwritable when the book
        cannot be written (disk full, read-only, I/O error), after rolling the transaction back."""
        with self._lock:
            try:
                self._save(accounts, positions, orders, trades, meta)
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._db.rollback()   # SQLite may leave a failed COMMIT's transaction open
                raise StateUnwritable(f"the paper counter cannot write its book: {exc}", state_changed="no",
                                      hint="The simulator's book (sim.sqlite) cannot be written (disk full or "
                                           "read-only state dir): nothing was done. Tell the operator; "
                                           "retry once the state dir is writable.",
                                      details={"sqlite": getattr(exc, "sqlite_errorname", "")}) from exc

    def _save(
        self,
        accounts: dict[str, tuple[Decimal, str]] | None,
        positions: dict[tuple[str, str], PositionRow] | None,
        orders: list[tuple[int, str, dict[str, Any]]] | None,
        trades: list[tuple[str, dict[str, Any]]] | None,
        meta: dict[str, str] | None,
    ) -> None:
        with self._db:
            for acc, (cash, day) in (accounts or {}).items():
                self._db.execute("INSERT OR REPLACE INTO accounts VALUES (?,?,?)", (acc, str(cash), day))
            for (acc, code), p in (positions or {}).items():
                if p.volume == 0 and p.today_bought == 0:
                    self._db.execute("DELETE FROM positions WHERE account_id=? AND code=?", (acc, code))
                else:
                    self._db.execute(
                        "INSERT OR REPLACE INTO positions VALUES (?,?,?,?,?,?)",
                        (acc, code, p.volume, p.today_bought, str(p.cost), str(p.fill_cost)),
                    )
            for oid, acc, data in orders or []:
                self._db.execute("INSERT OR REPLACE INTO orders VALUES (?,?,?)", (oid, acc, json.dumps(data)))
            for acc, data in trades or []:
                self._db.execute("INSERT INTO trades (account_id, data) VALUES (?,?)", (acc, json.dumps(data)))
            for k, v in (meta or {}).items():
                self._db.execute("INSERT OR REPLACE INTO meta VALUES (?,?)", (k, v))

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
        self._db.close()
