"""The simulated counter's own SQLite file: cash, positions, orders and trades of paper accounts.

It is the broker's state, kept apart from the worker's journal the way a real counter is.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (account_id TEXT PRIMARY KEY, cash TEXT NOT NULL, day TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS positions (
    account_id TEXT NOT NULL, code TEXT NOT NULL, volume INTEGER NOT NULL,
    today_bought INTEGER NOT NULL, cost TEXT NOT NULL, PRIMARY KEY (account_id, code));
CREATE TABLE IF NOT EXISTS orders (order_id INTEGER PRIMARY KEY, account_id TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trades (seq INTEGER PRIMARY KEY AUTOINCREMENT, account_id TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass
class PositionRow:
    volume: int
    today_bought: int
    cost: Decimal  # total cost of the shares held, yuan (fees included)


class SimStore:
    def __init__(self, path: Path | None) -> None:
        self._db = sqlite3.connect(":memory:" if path is None else str(path), check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def load_accounts(self) -> dict[str, tuple[Decimal, str]]:
        rows = self._db.execute("SELECT account_id, cash, day FROM accounts").fetchall()
        return {a: (Decimal(c), d) for a, c, d in rows}

    def load_positions(self, account_id: str) -> dict[str, PositionRow]:
        rows = self._db.execute(
            "SELECT code, volume, today_bought, cost FROM positions WHERE account_id=?", (account_id,)
        ).fetchall()
        return {c: PositionRow(v, t, Decimal(cost)) for c, v, t, cost in rows}

    def load_orders(self) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT data FROM orders ORDER BY order_id").fetchall()
        return [json.loads(r[0]) for r in rows]

    def load_trades(self) -> list[dict[str, Any]]:
        return [json.loads(r[0]) for r in self._db.execute("SELECT data FROM trades ORDER BY seq")]

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
        """Write a batch of changes in one transaction."""
        with self._lock, self._db:
            for acc, (cash, day) in (accounts or {}).items():
                self._db.execute("INSERT OR REPLACE INTO accounts VALUES (?,?,?)", (acc, str(cash), day))
            for (acc, code), p in (positions or {}).items():
                if p.volume == 0 and p.today_bought == 0:
                    self._db.execute("DELETE FROM positions WHERE account_id=? AND code=?", (acc, code))
                else:
                    self._db.execute(
                        "INSERT OR REPLACE INTO positions VALUES (?,?,?,?,?)",
                        (acc, code, p.volume, p.today_bought, str(p.cost)),
                    )
            for oid, acc, data in orders or []:
                self._db.execute("INSERT OR REPLACE INTO orders VALUES (?,?,?)", (oid, acc, json.dumps(data)))
            for acc, data in trades or []:
                self._db.execute("INSERT INTO trades (account_id, data) VALUES (?,?)", (acc, json.dumps(data)))
            for k, v in (meta or {}).items():
                self._db.execute("INSERT OR REPLACE INTO meta VALUES (?,?)", (k, v))

    def close(self) -> None:
        self._db.close()
