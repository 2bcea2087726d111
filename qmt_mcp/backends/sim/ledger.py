"""The paper counter's ledger: what the simulated counter holds for each account (cash, positions,
orders, trades), kept in memory and in its own book (store.py), and the figures derived from it
(frozen cash, sellable shares, asset, positions). Matching lives in counter.py.

Memory is never ahead of the book: an operation's changes are saved in one transaction before they
are pushed, and when the book cannot be written the whole operation is undone by reading the book
back (the counter answers STATE_UNWRITABLE, as a counter whose disk is full refuses what it cannot
record).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from ...clock import Clock
from ...domain.codes import board_of
from ...domain.errors import BrokerReject, ErrorCode, StateUnwritable
from ...domain.fees import FeeSchedule, compute_fees
from ...domain.money import round_fen
from ...domain.orders import Side
from ...domain.status import OrderStatus
from ..port import Asset, BrokerEvent, BrokerOrder, BrokerTrade, OrderUpdated, Position, Sink
from .liquidity import Liquidity
from .market import SimMarket
from .paper import BOOK_OPEN_STATUSES, OPEN_STATUSES, PaperAccount, SimOrder, trade_from_row, trade_row
from .store import PositionRow, SimStore


@dataclass
class Batch:
    """Changes of one counter operation: saved together, then pushed."""

    orders: dict[int, SimOrder] = field(default_factory=dict)
    positions: set[tuple[str, str]] = field(default_factory=set)
    accounts: set[str] = field(default_factory=set)
    trades: list[BrokerTrade] = field(default_factory=list)
    events: list[BrokerEvent] = field(default_factory=list)


class PaperLedger:
    """The accounts' state and its book; operations (counter.py) change it through `_commit`."""

    def __init__(
        self, market: SimMarket, store: SimStore, clock: Clock, fees: FeeSchedule,
        accounts: dict[str, PaperAccount],
    ) -> None:
        self.market = market
        self.store = store
        self.clock = clock
        self.fees = fees
        self._lock = threading.RLock()
        self._sink: Sink | None = None
        self.accounts = tuple(accounts)
        self.liquidity = Liquidity()
        self._seed(accounts)
        self._load()

    def set_sink(self, sink: Sink) -> None:
        self._sink = sink

    def _today(self) -> date:
        return self.market.timeline.session_day(self.clock.now())

    def _seed(self, accounts: dict[str, PaperAccount]) -> None:
        """Write what a new book and its new paper accounts start with."""
        today = self._today().isoformat()
        loaded = self.store.load_accounts()
        new: dict[str, tuple[Decimal, str]] = {}
        seeded: dict[tuple[str, str], PositionRow] = {}
        for acc, start in accounts.items():
            if acc in loaded:
                continue
            # A new paper account: its cash and its seeded positions, bought "before today" at the
            # previous close (so T+1 does not lock them and P&L starts at zero).
            new[acc] = (start.cash, today)
            for code, volume in start.positions.items():
                pre = self.market.instrument(code, date.fromisoformat(today)).pre_close
                seeded[(acc, code)] = PositionRow(volume, 0, pre * volume, pre * volume)
        # A new book numbers its orders and trades from the time it is made, as a counter that opened
        # later would, so a book made to replace one moved aside does not hand out the old ids again.
        first = str(int(self.clock.now().timestamp()))
        meta = {k: first for k in ("next_order_id", "next_trade_no") if self.store.meta(k, "") == ""}
        if new or meta:
            self.store.save(accounts=new, positions=seeded, meta=meta)

    def _load(self) -> None:
        """The counter's memory, read from its book: at start, and after a write to the book failed
        (the book rolled the change back, so memory must not keep it either)."""
        loaded = self.store.load_accounts()
        self.cash: dict[str, Decimal] = {acc: loaded[acc][0] for acc in self.accounts}
        self.day: dict[str, str] = {acc: loaded[acc][1] for acc in self.accounts}
        self.positions = {acc: self.store.load_positions(acc) for acc in self.accounts}
        self.orders: dict[int, SimOrder] = {}
        # Orders still in the book, in time order: what matching, freezing and expiry walk over.
        self.open: dict[int, SimOrder] = {}
        self._frozen_of: dict[int, tuple[int, Decimal, Decimal]] = {}   # id -> (traded, limit, frozen)
        today = self._today().isoformat()   # a counter shows today's orders and trades, and what is open
        for row in self.store.load_orders(today, BOOK_OPEN_STATUSES):
            o = SimOrder.from_row(row)
            self.orders[o.order_id] = o
            if o.status in OPEN_STATUSES:
                self.open[o.order_id] = o
        self.trades: list[BrokerTrade] = [trade_from_row(r) for r in self.store.load_trades(today)]
        self.next_order_id = int(self.store.meta("next_order_id", "1000001"))
        self.next_trade_no = int(self.store.meta("next_trade_no", "1"))
        self._last_index: dict[str, tuple[date, int]] = {}
        # The last trading day whose opening / closing auction has been uncrossed (exchange clock).
        self._uncrossed = {
            "open": self.store.meta("opened_day", ""), "close": self.store.meta("closed_day", ""),
        }
        self._saved_meta: dict[str, str] = {}   # what the book holds already: a commit writes only changes

    def _check_account(self, account_id: str) -> None:
        if account_id not in self.cash:
            raise BrokerReject(f"account {account_id[-4:]} is not on this counter",
                               code=ErrorCode.UNKNOWN_ACCOUNT)

    def _frozen_cash(self, account_id: str) -> Decimal:
        total = Decimal(0)
        for o in self.open.values():
            if o.account_id == account_id and o.side is Side.BUY:
                total += self._frozen_for(o)
        return total

    def _frozen_for(self, o: SimOrder) -> Decimal:
        """Cash an open buy holds back: its untraded volume at its limit plus the fees still to come.
        Cached per order until it trades or changes its limit."""
        cached = self._frozen_of.get(o.order_id)
        if cached is not None and cached[0] == o.traded_volume and cached[1] == o.limit:
            return cached[2]
        amount = o.limit * o.remaining
        fee_total = compute_fees(self.fees, board_of(o.code), "buy", o.traded_amount + amount, self._today()).total
        frozen = amount + max(Decimal(0), fee_total - o.fees_charged)
        self._frozen_of[o.order_id] = (o.traded_volume, o.limit, frozen)
        return frozen

    def _frozen_volume(self, account_id: str, code: str) -> int:
        return sum(
            o.remaining for o in self.open.values()
            if o.account_id == account_id and o.code == code and o.side is Side.SELL
        )

    def _can_use(self, account_id: str, code: str, t_plus: int) -> int:
        p = self.positions[account_id].get(code)
        if p is None:
            return 0
        locked = p.today_bought if t_plus else 0
        return max(0, p.volume - locked - self._frozen_volume(account_id, code))

    def _set_status(self, o: SimOrder, status: OrderStatus, msg: str, batch: Batch) -> None:
        o.status = status
        o.status_msg = msg
        if status in OPEN_STATUSES:
            self.open[o.order_id] = o
        else:
            self.open.pop(o.order_id, None)
            self._frozen_of.pop(o.order_id, None)
        batch.orders[o.order_id] = o
        batch.events.append(OrderUpdated(o.to_broker()))

    def _commit(self, batch: Batch) -> None:
        accounts = {a: (self.cash[a], self.day[a]) for a in batch.accounts}
        positions = {
            (a, c): self.positions[a].get(c, PositionRow.empty()) for a, c in batch.positions
        }
        meta = {"next_order_id": str(self.next_order_id), "next_trade_no": str(self.next_trade_no),
                "opened_day": self._uncrossed["open"], "closed_day": self._uncrossed["close"]}
        try:
            self.store.save(
                accounts=accounts,
                positions=positions,
                orders=[(o.order_id, o.account_id, o.to_row()) for o in batch.orders.values()],
                trades=[(t.account_id, trade_row(t)) for t in batch.trades],
                # Only what changed: a cancel changes none of them, a place one (each rewrite of a row
                # is pages of log written and, at the worker's next fsync on this disk, flushed).
                meta={k: v for k, v in meta.items() if self._saved_meta.get(k) != v},
            )
            self._saved_meta = meta
        except StateUnwritable:
            # Nothing of the operation happened: memory goes back to the book and nothing is pushed.
            # (Book volume the failed operation took stays taken until the next quote, as if it had
            # traded: the simulator errs towards less liquidity, never more.)
            self._load()
            raise
        self.trades.extend(batch.trades)
        if self._sink is not None and batch.events:
            self._sink(tuple(batch.events))

    def asset(self, account_id: str) -> Asset:
        with self._lock:
            self._check_account(account_id)
            frozen = self._frozen_cash(account_id)
            now = self.clock.now()
            # The positions' market value as position_list prices them, without building the list
            # (a decision reads the asset, then the positions: each built it).
            mv = round_fen(sum((self.market.quote(code, now).last * p.volume
                                for code, p in sorted(self.positions[account_id].items()) if p.volume), Decimal(0)))
            cash = self.cash[account_id]
            return Asset(cash=cash - frozen, frozen_cash=frozen, market_value=mv, total_asset=cash + mv)

    def position_list(self, account_id: str) -> list[Position]:
        with self._lock:
            self._check_account(account_id)
            out = []
            now = self.clock.now()
            for code, p in sorted(self.positions[account_id].items()):
                if p.volume == 0:
                    continue
                inst = self.market.instrument(code, now.date())
                out.append(Position(
                    code=code, name=inst.name, volume=p.volume,
                    can_use_volume=self._can_use(account_id, code, inst.t_plus),
                    last_price=self.market.quote(code, now).last, fill_cost=p.fill_cost, cost=p.cost,
                ))
            return out

    def order_list(self, account_id: str) -> list[BrokerOrder]:
        with self._lock:
            return [o.to_broker() for o in self.orders.values() if o.account_id == account_id]

    def trade_list(self, account_id: str) -> list[BrokerTrade]:
        with self._lock:
            return [t for t in self.trades if t.account_id == account_id]
