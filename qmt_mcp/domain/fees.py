"""Fees on an A-share fill, exact to the fen, with the dates their rates changed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from .codes import Board
from .money import ZERO, round_fen

# Stamp duty: seller only; halved from 0.1% to 0.05% on 2023-08-28 (MOF/STA announcement 2023 No.39).
STAMP_DUTY_HISTORY: tuple[tuple[date, Decimal], ...] = (
    (date(2008, 9, 19), Decimal("0.001")),
    (date(2023, 8, 28), Decimal("0.0005")),
)
# Transfer fee (过户费): 0.001% of notional, both sides (CSDC schedule since 2022-04-29).
TRANSFER_FEE_RATE = Decimal("0.00001")


def stamp_duty_rate(on: date) -> Decimal:
    rate = ZERO
    for since, r in STAMP_DUTY_HISTORY:
        if on >= since:
            rate = r
    return rate


@dataclass(frozen=True)
class FeeSchedule:
    """Commission is the broker's contract: a rate with a minimum per order (both configurable)."""

    commission_rate: Decimal = Decimal("0.00025")
    commission_min: Decimal = Decimal(5)


@dataclass(frozen=True)
class Fees:
    commission: Decimal
    stamp_duty: Decimal
    transfer_fee: Decimal

    @property
    def total(self) -> Decimal:
        return self.commission + self.stamp_duty + self.transfer_fee

    def minus(self, earlier: Fees) -> Fees:
        """What one fill adds to an order's fees: the order's fees after it less those before it
        (the commission minimum and the fen rounding apply to the order, not to each fill)."""
        return Fees(self.commission - earlier.commission, self.stamp_duty - earlier.stamp_duty,
                    self.transfer_fee - earlier.transfer_fee)


def compute_fees(schedule: FeeSchedule, board: Board, side: str, amount: Decimal, on: date) -> Fees:
    """Fees for one order's traded amount (yuan). Funds (ETFs) pay no stamp duty nor transfer fee."""
    if amount <= 0:
        return Fees(ZERO, ZERO, ZERO)
    commission = max(round_fen(amount * schedule.commission_rate), schedule.commission_min)
    is_fund = board is Board.FUND
    stamp = ZERO if is_fund or side != "sell" else round_fen(amount * stamp_duty_rate(on))
    transfer = ZERO if is_fund else round_fen(amount * TRANSFER_FEE_RATE)
    return Fees(commission, stamp, transfer)


def split_fees(total: Decimal, board: Board, side: str, amount: Decimal, on: date) -> Fees:
    """Itemize a fee total that a broker reports as one number (xtquant's trade `commission`, 手续费).

    Stamp duty and transfer fee are statutory, so they are computed from the fill (`amount` yuan, on
    `on`); the commission is what remains. Each statutory part is capped by what is left of `total`,
    so the parts always add up to it, even when a broker reports less than the statutory amounts."""
    statutory = compute_fees(FeeSchedule(ZERO, ZERO), board, side, amount, on)
    stamp = min(statutory.stamp_duty, max(total, ZERO))
    transfer = min(statutory.transfer_fee, max(total - stamp, ZERO))
    return Fees(total - stamp - transfer, stamp, transfer)
