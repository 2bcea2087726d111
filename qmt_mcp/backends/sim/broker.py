"""The simulator as a broker behind the port: market data from SimMarket, trading on SimCounter."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from ...clock import Clock
from ...domain.errors import InvalidArgument
from ...domain.fees import FeeSchedule
from ...domain.instruments import Instrument
from ...domain.market import PERIODS, Bar, Quote
from ...domain.orders import OrderRequest
from ...domain.timeutil import CN_TZ
from ..port import Asset, BrokerOrder, BrokerTrade, Listed, Position, Sink
from .counter import PaperAccount, SimCounter
from .market import FIRST_DAY, SimMarket
from .store import SimStore


class SimBroker:
    name = "sim"

    def __init__(
        self, *, seed: int, clock: Clock, fees: FeeSchedule, accounts: dict[str, PaperAccount],
        state_path: Path | None,
    ) -> None:
        self.clock = clock
        self.market = SimMarket(seed)
        self.store = SimStore(state_path)
        self.counter = SimCounter(self.market, self.store, clock, fees, accounts)

    def set_sink(self, sink: Sink) -> None:
        self.counter.set_sink(sink)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self.store.close()

    async def poll(self) -> None:
        self.counter.poll()

    # ----- market data
    async def trading_day(self) -> date:
        return self.clock.now().date()

    async def instrument(self, code: str) -> Instrument:
        return self.market.instrument(code, self.clock.now().date())

    async def quotes(self, codes: list[str]) -> list[Quote]:
        now = self.clock.now()
        return [self.market.quote(c, now) for c in codes]

    async def bars(self, code: str, period: str, start: datetime, end: datetime, count: int) -> list[Bar]:
        self.market.listing(code)
        minutes = PERIODS[period]
        now = self.clock.now()
        # The bar in progress counts, as in xtquant; nothing after now exists yet.
        end = min(end, now)
        floor = datetime.combine(FIRST_DAY, datetime.min.time(), CN_TZ)
        start = max(start, floor)
        if minutes <= 60:
            # Walk back from the end only as far as `count` bars need.
            earliest = max(start, end - timedelta(minutes=minutes * count))
            bars = self.market.minute_bars(code, earliest, end, minutes)
        elif period == "1d":
            first = max(start.date(), end.date() - timedelta(days=count - 1))
            days = (end.date() - first).days + 1
            bars = [self.market.day_bar(code, first + timedelta(days=i)) for i in range(days)]
        else:
            bars = self._weeks(code, start.date(), end.date(), count)
        if end >= now and bars and minutes >= 1440:
            bars[-1] = self._partial(code, bars[-1], now)
        return bars[-count:]

    def _weeks(self, code: str, start: date, end: date, count: int) -> list[Bar]:
        monday = end - timedelta(days=end.weekday())
        out: list[Bar] = []
        while len(out) < count and monday + timedelta(days=6) >= max(start, FIRST_DAY):
            days = [
                monday + timedelta(days=i) for i in range(7)
                if start <= monday + timedelta(days=i) <= end and monday + timedelta(days=i) >= FIRST_DAY
            ]
            if days:
                parts = [self.market.day_bar(code, d) for d in days]
                out.append(_merge_bars(datetime.combine(monday, datetime.min.time(), CN_TZ), parts))
            monday -= timedelta(days=7)
        out.reverse()
        return out

    def _partial(self, code: str, bar: Bar, now: datetime) -> Bar:
        """Today's share of a daily or weekly bar, up to the quote in force now."""
        q = self.market.quote(code, now)
        day_start = datetime.combine(now.date(), datetime.min.time(), CN_TZ)
        before = []
        if bar.time < day_start:
            d = bar.time.date()
            while d < now.date():
                before.append(self.market.day_bar(code, d))
                d += timedelta(days=1)
        today = Bar(day_start, q.open, q.high, q.low, q.last, q.volume, q.amount)
        return _merge_bars(bar.time, [*before, today])

    async def ticks(self, code: str, start: datetime, end: datetime, limit: int) -> list[Quote]:
        self.market.listing(code)
        end = min(end, self.clock.now())
        if end < start:
            raise InvalidArgument("end is before start", details={"argument": "end"})
        out: list[Quote] = []
        t = start.astimezone(CN_TZ).replace(microsecond=0)
        t += timedelta(seconds=(-t.second) % 3)
        while t <= end and len(out) < limit:
            out.append(self.market.quote(code, t))
            t += timedelta(seconds=3)
        return out

    async def listings(self) -> list[Listed]:
        day = self.clock.now().date()
        return [
            Listed(code, item.name, self.market.instrument(code, day).board.value, item.sectors)
            for code, item in self.market.listings.items()
        ]

    async def sectors(self) -> list[str]:
        names: list[str] = []
        for item in self.market.listings.values():
            names.extend(s for s in item.sectors if s not in names)
        return names

    # ----- trading
    async def place_order(self, account_id: str, req: OrderRequest, remark: str) -> int:
        inst = self.market.instrument(req.code, self.clock.now().date())
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
        return self.counter.trade_list(account_id)

    def health(self) -> dict[str, Any]:
        return {"backend": "sim", "xtquant_loaded": False, "fresh": True, "stale_codes": []}


def _merge_bars(start: datetime, parts: list[Bar]) -> Bar:
    return Bar(
        start, parts[0].open, max(p.high for p in parts), min(p.low for p in parts), parts[-1].close,
        sum(p.volume for p in parts), sum((p.amount for p in parts), Decimal(0)),
    )
