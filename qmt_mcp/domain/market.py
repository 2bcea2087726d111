"""Market-data values: a quote with its 5-level book, and a bar. Prices in yuan, volumes in shares."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from .timeutil import iso


@dataclass(frozen=True)
class Level:
    price: Decimal
    volume: int


@dataclass(frozen=True)
class Quote:
    code: str
    name: str
    time: datetime
    last: Decimal
    open: Decimal
    high: Decimal
    low: Decimal
    pre_close: Decimal
    volume: int            # shares traded today
    amount: Decimal        # yuan traded today
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    up_limit: Decimal | None   # None: no daily limit today
    down_limit: Decimal | None
    status: str            # trading | suspended | a session phase (exchange clock)
    stale: bool = False

    def to_wire(self) -> dict[str, object]:
        def pad(levels: tuple[Level, ...]) -> tuple[list[float], list[int]]:
            prices = [float(lv.price) for lv in levels] + [0.0] * (5 - len(levels))
            vols = [lv.volume for lv in levels] + [0] * (5 - len(levels))
            return prices, vols

        bp, bv = pad(self.bids)
        ap, av = pad(self.asks)
        return {
            "code": self.code, "name": self.name, "time": iso(self.time),
            "last": float(self.last), "open": float(self.open), "high": float(self.high),
            "low": float(self.low), "pre_close": float(self.pre_close),
            "volume": self.volume, "amount": float(self.amount),
            "bid_prices": bp, "bid_volumes": bv, "ask_prices": ap, "ask_volumes": av,
            "up_limit": None if self.up_limit is None else float(self.up_limit),
            "down_limit": None if self.down_limit is None else float(self.down_limit),
            "status": self.status, "stale": self.stale,
        }


@dataclass(frozen=True)
class Bar:
    time: datetime         # the bar's start, Asia/Shanghai
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int            # shares
    amount: Decimal        # yuan

    def to_wire(self) -> dict[str, object]:
        return {
            "time": iso(self.time), "open": float(self.open), "high": float(self.high),
            "low": float(self.low), "close": float(self.close), "volume": self.volume,
            "amount": float(self.amount),
        }


PERIODS: dict[str, int] = {"1m": 1, "5m": 5, "15m": 15, "30m": 30, "60m": 60, "1d": 1440, "1w": 10080}
