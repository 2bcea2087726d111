"""Instrument facts and the first rule book: lots, ticks and daily limits by board and date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

from .codes import Board, Exchange

# Main-board ST/*ST limits widen from 5% to 10% on 2026-07-06 (SSE and SZSE 2026 rule revisions).
ST_MAIN_LIMIT_CHANGE = date(2026, 7, 6)
CHINEXT_REFORM = date(2020, 8, 24)        # ChiNext registration: ±20%, five unlimited first days
MAIN_REGISTRATION = date(2023, 4, 10)     # main-board registration: unlimited first days, price cage


@dataclass(frozen=True)
class LotRule:
    """Buy quantity: at least `minimum`, then multiples of `step` above it."""

    minimum: int
    step: int

    def allows_buy(self, volume: int) -> bool:
        return volume >= self.minimum and (volume - self.minimum) % self.step == 0


LOT_RULES: dict[Board, LotRule] = {
    Board.SH_MAIN: LotRule(100, 100),
    Board.SZ_MAIN: LotRule(100, 100),
    Board.CHINEXT: LotRule(100, 100),
    Board.FUND: LotRule(100, 100),
    Board.STAR: LotRule(200, 1),
    Board.BSE: LotRule(100, 1),
}


def price_tick(board: Board) -> Decimal:
    return Decimal("0.001") if board is Board.FUND else Decimal("0.01")


def limit_ratio(board: Board, st: bool, on: date) -> Decimal:
    if board is Board.STAR or (board is Board.CHINEXT and on >= CHINEXT_REFORM):
        return Decimal("0.20")
    if board is Board.BSE:
        return Decimal("0.30")
    if st and board in (Board.SH_MAIN, Board.SZ_MAIN):
        return Decimal("0.05") if on < ST_MAIN_LIMIT_CHANGE else Decimal("0.10")
    return Decimal("0.10")


def daily_limits(pre_close: Decimal, ratio: Decimal, tick: Decimal) -> tuple[Decimal, Decimal]:
    """(up, down): prev close × (1 ± ratio), rounded half-up to the tick (SZSE 3.3.19)."""
    up = (pre_close * (1 + ratio) / tick).quantize(Decimal(1), rounding=ROUND_HALF_UP) * tick
    down = (pre_close * (1 - ratio) / tick).quantize(Decimal(1), rounding=ROUND_HALF_UP) * tick
    return up, max(down, tick)


def unlimited_days(board: Board, listed: date | None) -> int:
    """How many first trading days of a listing have no daily limit (0: limits from day one)."""
    if listed is None or board is Board.FUND:
        return 0
    if board is Board.BSE:
        return 1
    if board is Board.STAR or (board is Board.CHINEXT and listed >= CHINEXT_REFORM):
        return 5
    if board in (Board.SH_MAIN, Board.SZ_MAIN) and listed >= MAIN_REGISTRATION:
        return 5
    return 0


# One order's maximum volume: (limit order, market order), shares.
MAX_ORDER_VOLUME: dict[Board, tuple[int, int]] = {
    Board.SH_MAIN: (1_000_000, 1_000_000),
    Board.SZ_MAIN: (1_000_000, 1_000_000),
    Board.CHINEXT: (300_000, 150_000),
    Board.STAR: (100_000, 50_000),
    Board.BSE: (1_000_000, 1_000_000),
    Board.FUND: (1_000_000, 1_000_000),
}


def cage_base(buy: bool, best_bid: Decimal | None, best_ask: Decimal | None, last: Decimal | None,
              pre_close: Decimal) -> Decimal:
    """The buy base is the best ask, else the best bid, else the last trade, else the previous close;
    the sell base starts from the best bid (SZSE 3.3.16)."""
    first, second = (best_ask, best_bid) if buy else (best_bid, best_ask)
    for candidate in (first, second, last):
        if candidate is not None and candidate > 0:
            return candidate
    return pre_close


def price_cage(board: Board, buy: bool, base: Decimal, tick: Decimal, on: date) -> Decimal | None:
    """The worst price a continuous-auction limit order may carry: a ceiling for a buy, a floor for a
    sell, on the tick. None where no cage applies (funds, or before the board adopted one)."""
    if board is Board.FUND or (board in (Board.SH_MAIN, Board.SZ_MAIN) and on < MAIN_REGISTRATION):
        return None
    if board is Board.CHINEXT and on < CHINEXT_REFORM:
        return None
    if board is Board.STAR:
        ratio, ticks_or_yuan = Decimal("0.02"), Decimal(0)
    elif board is Board.BSE:
        ratio, ticks_or_yuan = Decimal("0.05"), Decimal("0.10")
    else:
        ratio, ticks_or_yuan = Decimal("0.02"), tick * 10
    if buy:
        bound = max(base * (1 + ratio), base + ticks_or_yuan)
        return (bound / tick).to_integral_value(rounding=ROUND_FLOOR) * tick
    bound = min(base * (1 - ratio), base - ticks_or_yuan)
    return max(tick, (bound / tick).to_integral_value(rounding=ROUND_CEILING) * tick)


@dataclass(frozen=True)
class Instrument:
    """What an order needs to know about an instrument on a given day."""

    code: str
    name: str
    exchange: Exchange
    board: Board
    pre_close: Decimal
    up_limit: Decimal | None      # None: no daily limit (a new listing's first days)
    down_limit: Decimal | None
    price_tick: Decimal
    lot: LotRule
    st: bool
    suspended: bool
    t_plus: int  # 1: shares bought today sell from the next trading day; 0: same day
    listed: date | None = None

    @property
    def limited(self) -> bool:
        return self.up_limit is not None and self.down_limit is not None

    def within_limits(self, price: Decimal) -> bool:
        lo = self.down_limit if self.down_limit is not None else self.price_tick
        return lo <= price and (self.up_limit is None or price <= self.up_limit)

    def max_volume(self, market: bool) -> int:
        return MAX_ORDER_VOLUME[self.board][1 if market else 0]

    def to_wire(self) -> dict[str, object]:
        return {
            "code": self.code,
            "name": self.name,
            "exchange": self.exchange.value,
            "board": self.board.value,
            "buy_lot_min": self.lot.minimum,
            "buy_lot_step": self.lot.step,
            "price_tick": float(self.price_tick),
            "pre_close": float(self.pre_close),
            "up_limit": None if self.up_limit is None else float(self.up_limit),
            "down_limit": None if self.down_limit is None else float(self.down_limit),
            "st": self.st,
            "suspended": self.suspended,
            "t_plus": self.t_plus,
            "price_limited": self.limited,
            "listed": None if self.listed is None else self.listed.isoformat(),
        }
