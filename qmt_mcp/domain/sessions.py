"""Trading sessions of a trading day (Asia/Shanghai) and what each phase allows.

09:15–09:20 opening call auction (orders and cancels); 09:20–09:25 the same without cancels;
09:25–09:30 orders are taken but nothing matches; 09:30–11:30 and 13:00–14:57 continuous auction;
14:57–15:00 closing call auction without cancels. Closed otherwise, and all day on non-trading days.
"""

from __future__ import annotations

from datetime import datetime, time
from enum import StrEnum

from .calendar import is_trading_day
from .timeutil import CN_TZ


class Phase(StrEnum):
    CLOSED = "closed"
    OPENING_AUCTION = "opening_auction"
    OPENING_AUCTION_NO_CANCEL = "opening_auction_no_cancel"
    PRE_OPEN_HOLD = "pre_open_hold"
    CONTINUOUS = "continuous"
    LUNCH_BREAK = "lunch_break"
    CLOSING_AUCTION = "closing_auction"


# (start, end, phase) for a trading day; the gaps between them are CLOSED.
SCHEDULE: tuple[tuple[time, time, Phase], ...] = (
    (time(9, 15), time(9, 20), Phase.OPENING_AUCTION),
    (time(9, 20), time(9, 25), Phase.OPENING_AUCTION_NO_CANCEL),
    (time(9, 25), time(9, 30), Phase.PRE_OPEN_HOLD),
    (time(9, 30), time(11, 30), Phase.CONTINUOUS),
    (time(11, 30), time(13, 0), Phase.LUNCH_BREAK),
    (time(13, 0), time(14, 57), Phase.CONTINUOUS),
    (time(14, 57), time(15, 0), Phase.CLOSING_AUCTION),
)
OPENING_UNCROSS = time(9, 25)
CLOSING_UNCROSS = time(15, 0)

ACCEPTS_ORDERS = frozenset({
    Phase.OPENING_AUCTION, Phase.OPENING_AUCTION_NO_CANCEL, Phase.PRE_OPEN_HOLD, Phase.CONTINUOUS,
    Phase.CLOSING_AUCTION,
})
ACCEPTS_CANCELS = frozenset({Phase.OPENING_AUCTION, Phase.PRE_OPEN_HOLD, Phase.CONTINUOUS})
AUCTIONS = frozenset({Phase.OPENING_AUCTION, Phase.OPENING_AUCTION_NO_CANCEL, Phase.CLOSING_AUCTION})


def phase_at(at: datetime) -> Phase:
    local = at.astimezone(CN_TZ)
    if not is_trading_day(local.date()):
        return Phase.CLOSED
    t = local.time()
    for start, end, phase in SCHEDULE:
        if start <= t < end:
            return phase
    return Phase.CLOSED


def describe(phase: Phase) -> str:
    """Why an order or a cancel is refused in this phase, in words a person understands."""
    return {
        Phase.CLOSED: "the market is closed (sessions 09:15–11:30 and 13:00–15:00 on trading days)",
        Phase.LUNCH_BREAK: "the market is at its lunch break until 13:00",
        Phase.OPENING_AUCTION_NO_CANCEL: "cancels are not taken 09:20–09:25 (opening call auction)",
        Phase.CLOSING_AUCTION: "cancels are not taken 14:57–15:00 (closing call auction)",
        Phase.OPENING_AUCTION: "the opening call auction takes limit orders only",
        Phase.PRE_OPEN_HOLD: "09:25–09:30 takes limit orders only, matched from 09:30",
        Phase.CONTINUOUS: "continuous auction",
    }[phase]
