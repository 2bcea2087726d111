"""Today's orders of one account as risk counts them, kept up to date as the journal writes records.

Every order's decision counts the day's orders (how many, how many in the last minute, the turnover,
what open buys may still spend). Done by walking the day's orders, that cost grew with each order
placed: 0.4 ms per order a few hundred orders into a day. Here an order that has ended (terminal)
is folded into running sums, and only the open ones, whose resting value still moves, are walked.

What counts: every order except those that never reached the broker (junk, denied). A pending
approval counts like an open order. A terminal order's turnover is what traded; an open order's is
what traded plus what may still trade, added by the caller (riskbook.py) from `open_orders`.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from ..domain.orders import OrderRecord, Side
from ..domain.status import TERMINAL, OrderStatus

NOT_SENT = frozenset({OrderStatus.JUNK, OrderStatus.DENIED})   # never at the broker: not counted


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


@dataclass(frozen=True)
class ClosedTotals:
    """The ended orders' share of today's usage."""

    count: int
    last_minute: int
    turnover: Decimal


class DayFigures:
    """The figures of an account's orders created since `since` (a day start, which only moves forward)."""

    def __init__(self, since: str, figures: Iterable[tuple[str, OrderFigures]] = ()) -> None:
        self.since = since
        self._open: dict[str, OrderFigures] = {}
        self._closed: dict[str, OrderFigures] = {}   # terminal and counted
        self._closed_times: list[str] = []           # their created_at, sorted: the last minute by bisection
        self._closed_turnover = Decimal(0)
        for cid, f in figures:
            self.put(cid, f)

    def put(self, client_order_id: str, f: OrderFigures) -> None:
        """The order's figures as just committed (a record of an earlier day is not counted)."""
        self._drop(client_order_id)
        if f.created_at < self.since:
            return
        if f.status not in TERMINAL:
            self._open[client_order_id] = f
        elif f.status not in NOT_SENT:
            self._closed[client_order_id] = f
            insort(self._closed_times, f.created_at)
            self._closed_turnover += f.traded_amount

    def _drop(self, client_order_id: str) -> None:
        self._open.pop(client_order_id, None)
        old = self._closed.pop(client_order_id, None)
        if old is not None:   # an ended order written again (a late fill reconciled): its old share goes
            del self._closed_times[bisect_left(self._closed_times, old.created_at)]
            self._closed_turnover -= old.traded_amount

    def trimmed(self, since: str) -> DayFigures:
        """These figures from `since` on (the next day's start): a day's orders never count again."""
        if since == self.since:
            return self
        return DayFigures(since, [*self._open.items(), *self._closed.items()])

    def open_orders(self, excluding: str | None = None) -> list[OrderFigures]:
        """The open orders (`excluding`: an approved order decided again must not count itself)."""
        return [f for cid, f in self._open.items() if cid != excluding]

    def closed(self, minute_ago: str, excluding: str | None = None) -> ClosedTotals:
        count, turnover = len(self._closed), self._closed_turnover
        last_minute = len(self._closed_times) - bisect_left(self._closed_times, minute_ago)
        gone = self._closed.get(excluding) if excluding is not None else None
        if gone is not None:
            count, turnover = count - 1, turnover - gone.traded_amount
            last_minute -= gone.created_at >= minute_ago
        return ClosedTotals(count, last_minute, turnover)
