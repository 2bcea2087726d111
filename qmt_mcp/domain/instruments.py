"""Instrument facts and the first rule book: lots, ticks and daily limits by board and date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from .codes import Board, Exchange

# Main-board ST/*ST limits widen from 5% to 10% on 2026-07-06 (SSE and SZSE 2026 rule revisions).
ST_MAIN_LIMIT_CHANGE = date(2026, 7, 6)


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
    if board in (Board.CHINEXT, Board.STAR):
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


@dataclass(frozen=True)
class Instrument:
    """What an order needs to know about an instrument on a given day."""

    code: str
    name: str
    exchange: Exchange
    board: Board
    pre_close: Decimal
    up_limit: Decimal
    down_limit: Decimal
    price_tick: Decimal
    lot: LotRule
    st: bool
    suspended: bool
    t_plus: int  # 1: shares bought today sell from the next trading day; 0: same day

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
            "up_limit": float(self.up_limit),
            "down_limit": float(self.down_limit),
            "st": self.st,
            "suspended": self.suspended,
            "t_plus": self.t_plus,
        }
