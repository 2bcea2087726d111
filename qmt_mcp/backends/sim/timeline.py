"""Where simulated time stands: which trading day, which of its quotes is in force, which phase.

Two clocks share one market model. `continuous`: every calendar day trades around the clock (1440
minutes), so a newcomer can try orders at any hour. `exchange`: the real sessions in Asia/Shanghai on
the trading calendar, 240 trading minutes a day (09:30–11:30, 13:00–15:00); the opening auction prints
the day's first quote at 09:25, the closing auction prints the last one at 15:00.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Protocol

from ...domain.calendar import is_trading_day, next_trading_day, prev_trading_day
from ...domain.sessions import Phase, phase_at
from ...domain.timeutil import CN_TZ

FIRST_DAY = date(2024, 1, 1)   # the first simulated day; no data before it
QUOTES_PER_MINUTE = 20


class Timeline(Protocol):
    name: str
    minutes: int          # trading minutes in a day
    closing_auction: int  # first minute of the closing call auction (== minutes when there is none)

    def is_trading_day(self, d: date) -> bool: ...
    def prev_trading_day(self, d: date) -> date: ...
    def session_day(self, at: datetime) -> date: ...
    def day_number(self, d: date) -> int: ...
    def locate(self, at: datetime) -> tuple[date, int]: ...
    def minute_start(self, d: date, m: int) -> datetime: ...
    def phase(self, at: datetime) -> Phase: ...


def _midnight(d: date) -> datetime:
    return datetime.combine(d, time(), CN_TZ)


class ContinuousTimeline:
    name = "continuous"
    minutes = 1440
    closing_auction = 1440

    def is_trading_day(self, d: date) -> bool:
        return True

    def prev_trading_day(self, d: date) -> date:
        return d - timedelta(days=1)

    def session_day(self, at: datetime) -> date:
        return at.astimezone(CN_TZ).date()

    def day_number(self, d: date) -> int:
        return (d - FIRST_DAY).days

    def locate(self, at: datetime) -> tuple[date, int]:
        local = at.astimezone(CN_TZ)
        secs = local.hour * 3600 + local.minute * 60 + local.second
        return local.date(), secs // 3

    def minute_start(self, d: date, m: int) -> datetime:
        return _midnight(d) + timedelta(minutes=m)

    def phase(self, at: datetime) -> Phase:
        return Phase.CONTINUOUS


PRE_OPEN = -1   # quote index of a trading day before its opening auction has printed


class ExchangeTimeline:
    name = "exchange"
    minutes = 240
    closing_auction = 237   # 14:57

    def is_trading_day(self, d: date) -> bool:
        return is_trading_day(d)

    def prev_trading_day(self, d: date) -> date:
        return prev_trading_day(d)

    def session_day(self, at: datetime) -> date:
        """The trading day an order placed now belongs to: today if it trades, else the next one."""
        d = at.astimezone(CN_TZ).date()
        return d if is_trading_day(d) else next_trading_day(d)

    @staticmethod
    @lru_cache(maxsize=4096)
    def day_number(d: date) -> int:
        n, cursor = 0, FIRST_DAY
        while cursor < d:
            n += is_trading_day(cursor)
            cursor += timedelta(days=1)
        return n

    def locate(self, at: datetime) -> tuple[date, int]:
        """(trading day, quote index) of the quote in force; index PRE_OPEN before 09:25."""
        local = at.astimezone(CN_TZ)
        d, t = local.date(), local.time()
        last = self.minutes * QUOTES_PER_MINUTE - 1
        if not is_trading_day(d):
            return prev_trading_day(d), last
        secs = t.hour * 3600 + t.minute * 60 + t.second
        if secs < 9 * 3600 + 25 * 60:
            return d, PRE_OPEN
        if secs < 9 * 3600 + 30 * 60:
            return d, 0                          # the opening auction's print
        if secs < 11 * 3600 + 30 * 60:
            return d, (secs - (9 * 3600 + 30 * 60)) // 3
        if secs < 13 * 3600:
            return d, 120 * QUOTES_PER_MINUTE - 1
        if secs < 15 * 3600 - 3:
            return d, 120 * QUOTES_PER_MINUTE + (secs - 13 * 3600) // 3
        if secs < 15 * 3600:
            return d, last - 1                   # the closing auction prints at 15:00, not 14:59:57
        return d, last

    def minute_start(self, d: date, m: int) -> datetime:
        base = time(9, 30) if m < 120 else time(13, 0)
        return datetime.combine(d, base, CN_TZ) + timedelta(minutes=m % 120)

    def phase(self, at: datetime) -> Phase:
        return phase_at(at)


def make_timeline(mode: str) -> Timeline:
    return ExchangeTimeline() if mode == "exchange" else ContinuousTimeline()


def quote_time(timeline: Timeline, d: date, index: int) -> datetime:
    """When quote `index` of trading day `d` is published."""
    if isinstance(timeline, ExchangeTimeline):
        if index <= 0:
            return datetime.combine(d, time(9, 25), CN_TZ)
        if index == timeline.minutes * QUOTES_PER_MINUTE - 1:
            return datetime.combine(d, time(15, 0), CN_TZ)
    m, k = divmod(index, QUOTES_PER_MINUTE)
    return timeline.minute_start(d, m) + timedelta(seconds=3 * k)
