"""The simulator as a broker behind the port: market data from SimMarket, trading on SimCounter."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from ...clock import Clock
from ...domain.codes import board_of
from ...domain.errors import InvalidArgument
from ...domain.fees import FeeSchedule
from ...domain.instruments import Instrument
from ...domain.market import PERIODS, Bar, Quote
from ...domain.orders import OrderRequest
from ...domain.sessions import Phase
from ...domain.timeutil import CN_TZ
from ..port import Asset, BrokerOrder, BrokerTrade, Listed, Position, Sink
from .counter import SimCounter
from .market import SimMarket
from .paper import PaperAccount
from .replay import ReplaySeries
from .store import SimStore
from .timeline import FIRST_DAY, make_timeline


class SimBroker:
    name = "sim"

    def __init__(
        self, *, seed: int, clock: Clock, fees: FeeSchedule, accounts: dict[str, PaperAccount],
        state_path: Path | None, clock_mode: str = "continuous", replay: dict[str, ReplaySeries] | None = None,
    ) -> None:
        self.clock = clock
        self.timeline = make_timeline(clock_mode)
        self.market = SimMarket(seed, timeline=self.timeline, replay=replay)
        self.store = SimStore(state_path)
        self.counter = SimCounter(self.market, self.store, clock, fees, accounts)
        self.fees = fees   # what the counter charges, so previews cost orders as fills will be

    def set_sink(self, sink: Sink) -> None:
        self.counter.set_sink(sink)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self.store.close()

    async def poll(self) -> None:
        self.counter.poll()

    # ----- market data
    def take_reconnected(self) -> bool:
        return False

    def phase(self) -> Phase:
        return self.timeline.phase(self.clock.now())

    def session_day(self) -> date:
        return self.timeline.session_day(self.clock.now())

    async def instrument(self, code: str) -> Instrument:
        return self.market.instrument(code, self.session_day())

    async def quotes(self, codes: list[str]) -> list[Quote]:
        now = self.clock.now()
        return [self.market.quote(c, now) for c in codes]

    async def bars(self, code: str, period: str, start: datetime, end: datetime, count: int) -> list[Bar]:
        return self.bar_list(code, period, start, end, count)

    def bar_list(self, code: str, period: str, start: datetime, end: datetime, count: int) -> list[Bar]:
        self.market.listing(code)
        minutes = PERIODS[period]
        now = self.clock.now()
        # The bar in progress counts, as in xtquant; nothing after now exists yet.
        end = min(end, now)
        floor = datetime.combine(FIRST_DAY, datetime.min.time(), CN_TZ)
        start = max(start, floor)
        if minutes <= 60:
            # Walk back from the end only as far as `count` bars need (sessions leave gaps).
            per_day = self.timeline.minutes // minutes
            span = timedelta(minutes=minutes * count) if self.timeline.name == "continuous" else \
                timedelta(days=count // per_day * 7 // 5 + 12)
            bars = self.market.minute_bars(code, max(start, end - span), end, minutes)
        else:
            days = self._days_back(start.astimezone(CN_TZ).date(), end.astimezone(CN_TZ).date(),
                                   count if period == "1d" else count * 7)
            first = self.market.listing(code).listed or FIRST_DAY
            bars = [b for d in days if d >= first and (b := self._day(code, d, now)) is not None]
            if period == "1w":
                bars = self._weeks(bars)
        return bars[-count:]

    def _days_back(self, start: date, end: date, count: int) -> list[date]:
        """Up to `count` trading days in [start, end] (and on or after the listing), latest last."""
        out: list[date] = []
        d = end
        while len(out) < count and d >= max(start, FIRST_DAY):
            if self.timeline.is_trading_day(d):
                out.append(d)
            d -= timedelta(days=1)
        out.reverse()
        return out

    def _day(self, code: str, d: date, now: datetime) -> Bar | None:
        """The day's bar; today's stops at the quote in force now (none before the open)."""
        if d < now.astimezone(CN_TZ).date():
            return self.market.day_bar(code, d)
        q = self.market.quote(code, now)
        if q.open == 0:
            return None
        return Bar(datetime.combine(d, datetime.min.time(), CN_TZ), q.open, q.high, q.low, q.last,
                   q.volume, q.amount)

    @staticmethod
    def _weeks(days: list[Bar]) -> list[Bar]:
        weeks: dict[date, list[Bar]] = {}
        for bar in days:
            monday = bar.time.date() - timedelta(days=bar.time.weekday())
            weeks.setdefault(monday, []).append(bar)
        return [
            _merge_bars(datetime.combine(monday, datetime.min.time(), CN_TZ), parts)
            for monday, parts in sorted(weeks.items())
        ]

    async def ticks(self, code: str, start: datetime, end: datetime, limit: int) -> list[Quote]:
        return self.tick_list(code, start, end, limit)

    def tick_list(self, code: str, start: datetime, end: datetime, limit: int) -> list[Quote]:
        """`ticks` without the await: the worker runs it in its read lane's thread (worker/lanes.py)."""
        self.market.listing(code)
        end = min(end, self.clock.now())
        if end < start:
            raise InvalidArgument("end is before start", details={"argument": "end"})
        return self.market.ticks(code, start, end, limit)

    async def listings(self) -> list[Listed]:
        day = self.session_day()
        return [
            Listed(code, item.name, board_of(code).value, item.sectors)
            for code, item in self.market.listings.items()
            if item.listed is None or item.listed <= day
        ]

    async def sectors(self) -> list[str]:
        return self.market.sector_names()

    # ----- trading
    async def place_order(self, account_id: str, req: OrderRequest, remark: str) -> int:
        inst = self.market.instrument(req.code, self.session_day())
        return self.counter.place(account_id, req, inst, remark)

    async def cancel_order(self, account_id: str, order_id: int) -> None:
        self.counter.cancel(account_id, order_id)

    async def asset(self, account_id: str) -> Asset:
        return self.counter.asset(account_id)

    async def positions(self, account_id: str) -> list[Position]:
        return self.counter.position_list(account_id)

    async def orders(self, account_id: str) -> list[BrokerOrder]:
        return self.counter.order_list(account_id)

    async def trades(self, account_id: str) -> list[BrokerTrade]:
        return self.todays_trades(account_id)

    def todays_trades(self, account_id: str) -> list[BrokerTrade]:
        """Today's fills, as xtquant's query_stock_trades answers: the book keeps earlier days' in
        memory until a restart, and get_trades (no range) must not list yesterday's after the day roll."""
        today = self.session_day()
        return [t for t in self.counter.trade_list(account_id) if self.timeline.session_day(t.time) == today]

    def health(self) -> dict[str, Any]:
        return {"backend": "sim", "xtquant_loaded": False, "fresh": True, "stale_codes": [],
                "clock": self.timeline.name}


def _merge_bars(start: datetime, parts: list[Bar]) -> Bar:
    return Bar(
        start, parts[0].open, max(p.high for p in parts), min(p.low for p in parts), parts[-1].close,
        sum(p.volume for p in parts), sum((p.amount for p in parts), Decimal(0)),
    )
