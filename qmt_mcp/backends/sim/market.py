"""A seeded synthetic market: deterministic quotes every 3 s and bars that aggregate them exactly.

Model, per listing, on the trading days of a timeline (continuous: every day, 1440 minutes;
exchange: the trading calendar, 240 minutes of sessions):
- a daily close series, a random walk from the listing's base price, kept within daily limits
  (a new listing starts from its issue price and has no limit in its first days; a listing with
  `limit_up_every` closes sealed at the up limit on those days);
- per day, minute anchors: a Brownian bridge from the previous close to the day's close;
- the 20 quotes of minute m move linearly from anchor m to anchor m+1 (rounded to the tick), so a
  minute bar's open is its first quote, its close is anchor m+1 and its high/low are those two;
- minute volume is drawn per minute and spread evenly over its 20 quotes; minute amount is
  volume × the minute's mid price, accumulated linearly within the minute;
- the closing call auction (exchange clock) trades nothing until its one print at 15:00.
Prices are integer li (0.001 yuan) inside; floats only drive the random walk.
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache

from ...domain.codes import board_of, exchange_of
from ...domain.errors import UnknownInstrument
from ...domain.instruments import (
    LOT_RULES,
    Instrument,
    daily_limits,
    limit_ratio,
    price_tick,
    unlimited_days,
)
from ...domain.market import Bar, Level, Quote
from ...domain.timeutil import CN_TZ
from .replay import ReplaySeries
from .timeline import (
    FIRST_DAY,
    PRE_OPEN,
    QUOTES_PER_MINUTE,
    ContinuousTimeline,
    Timeline,
    quote_time,
)
from .universe import UNIVERSE, Listing

LI = Decimal("0.001")
MAX_DAY_BARS = 20_000  # finished days' bars kept (well under 1 KB each)


def _seed(*parts: object) -> int:
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _dec(li: int) -> Decimal:
    return Decimal(li) * LI


def _interp(a: int, b: int, k: int, tick: int) -> int:
    """Quote k (0..19) of a minute that moves from anchor a to anchor b, rounded to the tick."""
    raw = a * QUOTES_PER_MINUTE + (b - a) * (k + 1)
    return (raw + tick * QUOTES_PER_MINUTE // 2) // (tick * QUOTES_PER_MINUTE) * tick


Parts = tuple[int, int, int, int, int, int]   # open, high, low, close, volume, amount (li × shares)


@dataclass(frozen=True)
class DayPath:
    pre_close: int             # li
    up: int                    # bounds the path keeps to (wide on a day without limits)
    down: int
    limited: bool
    # Packed arrays, not tuples: a tuple of 1,441 ints costs ~50 KB, an array 11 KB, and the market
    # keeps many days at once.
    anchors: Sequence[int]         # minutes + 1 prices, li
    minute_volume: Sequence[int]   # shares, multiple of 20*100
    cum_volume: Sequence[int]      # prefix sums
    minute_amount: Sequence[int]   # li*shares (amount in 0.001 yuan)
    cum_amount: Sequence[int]
    high_before: Sequence[int]     # day high over the quotes of minutes < m (index m)
    low_before: Sequence[int]
    auction_from: int                # minutes from here on are a call auction: one print at their end

    def quote_price(self, m: int, k: int, tick: int) -> int:
        if m >= self.auction_from:
            return self.anchors[m + 1] if k == QUOTES_PER_MINUTE - 1 else self.anchors[m]
        return _interp(self.anchors[m], self.anchors[m + 1], k, tick)

    def share(self, m: int, k: int, total: int) -> int:
        """The part of minute m's `total` published by its quote k."""
        if m >= self.auction_from:
            return total if k == QUOTES_PER_MINUTE - 1 else 0
        return total * (k + 1) // QUOTES_PER_MINUTE

    def partial_minute(self, m: int, k: int, tick: int) -> Parts:
        """Minute m up to and including its quote k."""
        o = self.quote_price(m, 0, tick)
        c = self.quote_price(m, k, tick)
        vol = self.share(m, k, self.minute_volume[m])
        amt = self.share(m, k, self.minute_amount[m])
        return o, max(o, c), min(o, c), c, vol, amt

    def minute_bar(self, m: int, tick: int) -> Parts:
        return self.partial_minute(m, QUOTES_PER_MINUTE - 1, tick)

    def whole_day(self, tick: int) -> Parts:
        """The merge of every minute bar, read off the running extremes and sums."""
        last = len(self.minute_volume) - 1
        return (self.quote_price(0, 0, tick), self.high_before[-1], self.low_before[-1],
                self.quote_price(last, QUOTES_PER_MINUTE - 1, tick), self.cum_volume[-1], self.cum_amount[-1])


def _packed(values: list[int]) -> array[int]:
    return array("q", values)


class SimMarket:
    """Read-only market data for the simulator; every answer depends only on (seed, code, time)."""

    def __init__(
        self, seed: int, listings: tuple[Listing, ...] = UNIVERSE, timeline: Timeline | None = None,
        replay: dict[str, ReplaySeries] | None = None,
    ) -> None:
        self.seed = seed
        self.listings = {item.code: item for item in listings}
        self.replay = replay or {}
        for code, series in self.replay.items():
            if code not in self.listings:
                self.listings[code] = Listing(code, code, series.ticks[0].last, 0.0, ("回放",))
        self.timeline: Timeline = timeline or ContinuousTimeline()
        self._closes: dict[str, list[int]] = {}
        # The worker's read lane (a thread) and its event loop may extend one code's closes at once.
        self._series_lock = threading.Lock()
        self._series_days: dict[str, list[date]] = {}
        self._instruments: dict[tuple[str, date], Instrument] = {}
        # A built day is ~100 KB; a finished day's bar never changes, so it is kept on its own.
        self._path = lru_cache(maxsize=32)(self._build_path)
        self._day_bars: dict[tuple[str, date], Bar] = {}
        # code -> (day, quote index, status) and the quote built for it: a quote stands for 3 s and
        # the worker reads a code's several times in that while (the watcher's round, a decision's
        # account view, the counter), each build ~40 µs of seeded book.
        self._held: dict[str, tuple[tuple[date, int, str], Quote]] = {}

    # ----- instruments
    def listing(self, code: str) -> Listing:
        try:
            return self.listings[code]
        except KeyError:
            raise UnknownInstrument(f"{code} is not in the simulated universe") from None

    def listed_on(self, code: str, day: date) -> Listing:
        item = self.listing(code)
        if item.listed is not None and day < item.listed:
            raise UnknownInstrument(f"{code} is not listed until {item.listed}")
        if day < FIRST_DAY:
            raise UnknownInstrument(f"no simulated data before {FIRST_DAY}")
        return item

    def sector_names(self) -> list[str]:
        names: list[str] = []
        for item in self.listings.values():
            names.extend(s for s in item.sectors if s not in names)
        return names

    def tick_li(self, code: str) -> int:
        return int(price_tick(board_of(code)) / LI)

    def _age(self, item: Listing, day: date) -> int | None:
        """0 on a listing's first trading day, 1 on its second...; None for old listings."""
        if item.listed is None:
            return None
        tl = self.timeline
        return tl.day_number(day) - tl.day_number(item.listed)

    def instrument(self, code: str, day: date) -> Instrument:
        """The instrument on trading day `day` (limits from the previous trading day's close)."""
        key = (code, day)
        cached = self._instruments.get(key)
        if cached is None:
            cached = self._instruments[key] = self._make_instrument(code, day)
        return cached

    def _make_instrument(self, code: str, day: date) -> Instrument:
        item = self.listed_on(code, day)
        board = board_of(code)
        tick = price_tick(board)
        series = self.replay.get(code)
        pre = (series.pre_close(day) if series else _dec(self._pre_close(code, day))).quantize(tick)
        age = self._age(item, day)
        up: Decimal | None
        down: Decimal | None
        if age is not None and age < unlimited_days(board, item.listed):
            up = down = None
        else:
            up, down = daily_limits(pre, limit_ratio(board, item.st, day), tick)
        return Instrument(
            code=code, name=item.name, exchange=exchange_of(code), board=board, pre_close=pre,
            up_limit=up, down_limit=down, price_tick=tick, lot=LOT_RULES[board], st=item.st,
            suspended=item.suspended, t_plus=item.t_plus, listed=item.listed,
        )

    # ----- the daily close series
    def _pre_close(self, code: str, day: date) -> int:
        return self._close_at(code, self._index(code, day) - 1)

    def _close(self, code: str, day: date) -> int:
        return self._close_at(code, self._index(code, day))

    def _index(self, code: str, day: date) -> int:
        """Position of trading day `day` in the listing's close series (series[0] is the close
        before its first day: the base price, or a new listing's issue price)."""
        item = self.listing(code)
        origin = item.listed or FIRST_DAY
        return self.timeline.day_number(day) - self.timeline.day_number(origin) + 1

    def _close_at(self, code: str, n: int) -> int:
        with self._series_lock:
            return self._close_at_locked(code, n)

    def _close_at_locked(self, code: str, n: int) -> int:
        item = self.listing(code)
        series = self._closes.setdefault(code, [int(item.base_price / LI)])
        if n < 0:
            return series[0]
        tick = self.tick_li(code)
        board = board_of(code)
        base = series[0]
        free_days = unlimited_days(board, item.listed)
        days = self._series_days.setdefault(code, [self._first_day(item)])
        while len(series) <= n:
            i = len(series)   # computing the close of the listing's i-th day (1-based), on days[i-1]
            while len(days) < i:
                days.append(self._next_day(days[-1]))
            prev = series[-1]
            if item.suspended:
                series.append(prev)
                continue
            rng = random.Random(_seed(self.seed, code, "close", i))
            if i <= free_days:
                # No limits: a first-day pop, then wide swings.
                move = rng.gauss(0.7, 0.25) if i == 1 else rng.gauss(0.0, item.daily_vol * 3)
                move = max(-0.3, min(1.3, move))
                series.append(max(tick, round(prev * math.exp(move) / tick) * tick))
                continue
            ratio = float(limit_ratio(board, item.st, days[i - 1]))
            if item.limit_up_every and i % item.limit_up_every == 0:
                up, _ = daily_limits(_dec(prev), Decimal(str(ratio)), _dec(tick))
                series.append(int(up / LI))
                continue
            # A mild pull toward the base price keeps years of random walk at plausible levels.
            pull = -0.05 * math.log(prev / base)
            move = max(-ratio * 0.9, min(ratio * 0.9, pull + rng.gauss(0.0, item.daily_vol)))
            series.append(max(tick, round(prev * math.exp(move) / tick) * tick))
        return series[n]

    def _first_day(self, item: Listing) -> date:
        d = item.listed or FIRST_DAY
        return d if self.timeline.is_trading_day(d) else self._next_day(d)

    def _next_day(self, d: date) -> date:
        d = date.fromordinal(d.toordinal() + 1)
        while not self.timeline.is_trading_day(d):
            d = date.fromordinal(d.toordinal() + 1)
        return d

    def _build_path(self, code: str, day: date) -> DayPath:
        item = self.listed_on(code, day)
        inst = self.instrument(code, day)
        tick = self.tick_li(code)
        minutes = self.timeline.minutes
        auction = self.timeline.closing_auction
        pre = int(inst.pre_close / LI)
        close = self._close(code, day)
        if inst.up_limit is not None and inst.down_limit is not None:
            up, down = int(inst.up_limit / LI), int(inst.down_limit / LI)
        else:
            up, down = max(pre * 5, close), tick
        close = min(up, max(down, close))
        if item.suspended:
            flat = _packed([pre] * (minutes + 1))
            zeros = _packed([0] * minutes)
            cum = _packed([0] * (minutes + 1))
            return DayPath(pre, up, down, inst.limited, flat, zeros, cum, zeros, cum, flat, flat, auction)
        rng = random.Random(_seed(self.seed, code, "path", day.isoformat()))
        walk = [0.0]
        for _ in range(minutes):
            walk.append(walk[-1] + rng.gauss(0.0, 1.0))
        start = pre if inst.limited else int(pre * 1.3 / tick) * tick   # a new listing opens above issue
        scale = pre * item.daily_vol / math.sqrt(minutes) * 0.6
        end = walk[auction]
        sealed_from = minutes // 3 if close == up and item.limit_up_every else minutes + 1
        anchors = [start]
        for m in range(1, auction):
            frac = m / auction
            raw = start + (close - start) * frac + (walk[m] - frac * end) * scale
            price = min(up, max(down, round(raw / tick) * tick))
            anchors.append(up if m >= sealed_from else price)
        # The closing auction: the price stands still until its print at the close.
        anchors.extend([close] * (minutes + 1 - len(anchors)))
        lot = 100 * QUOTES_PER_MINUTE
        volumes = [lot * rng.randint(1, 30) for _ in range(minutes)]
        for m in range(auction, minutes):
            volumes[m] = lot * 40 if m == minutes - 1 else 0
        if auction < minutes:
            volumes[0] = lot * rng.randint(100, 300)   # the opening auction prints a twentieth of it
        amounts = [v * (anchors[m] + anchors[m + 1]) // 2 for m, v in enumerate(volumes)]
        cum_v, cum_a = [0], [0]
        for v, a in zip(volumes, amounts, strict=True):
            cum_v.append(cum_v[-1] + v)
            cum_a.append(cum_a[-1] + a)
        path = DayPath(pre, up, down, inst.limited, _packed(anchors), _packed(volumes), _packed(cum_v),
                       _packed(amounts), _packed(cum_a), (), (), auction)
        day_open = path.quote_price(0, 0, tick)
        highs, lows = [day_open], [day_open]
        for m in range(minutes):
            _, hi, lo, _, _, _ = path.minute_bar(m, tick)
            highs.append(max(highs[-1], hi))
            lows.append(min(lows[-1], lo))
        return DayPath(pre, up, down, inst.limited, path.anchors, path.minute_volume, path.cum_volume,
                       path.minute_amount, path.cum_amount, _packed(highs), _packed(lows), auction)

    # ----- quotes
    def quote_index(self, at: datetime) -> tuple[date, int]:
        return self.timeline.locate(at)

    def quote(self, code: str, at: datetime) -> Quote:
        """The quote in force at `at` (the one published last at or before it)."""
        if code in self.replay:
            return self._replayed(code, at)
        day, i = self.timeline.locate(at)
        item = self.listed_on(code, day)
        status = self._status(item, at)
        if i == PRE_OPEN:
            return self._pre_open(code, item, day, at, status)
        key = (day, i, status)
        held = self._held.get(code)
        if held is not None and held[0] == key:
            return held[1]
        q = self._built(code, item, day, i, status)
        self._held[code] = (key, q)
        return q

    def _built(self, code: str, item: Listing, day: date, i: int, status: str) -> Quote:
        path = self._path(code, day)
        tick = self.tick_li(code)
        m, k = divmod(i, QUOTES_PER_MINUTE)
        last = path.quote_price(m, k, tick)
        day_open = path.quote_price(0, 0, tick)
        first_in_minute = path.quote_price(m, 0, tick)
        hi = max(path.high_before[m], first_in_minute, last)
        lo = min(path.low_before[m], first_in_minute, last)
        volume = path.cum_volume[m] + path.share(m, k, path.minute_volume[m])
        amount_li = path.cum_amount[m] + path.share(m, k, path.minute_amount[m])
        bids, asks = self._book(code, day, i, last, path, tick, item.suspended)
        return Quote(
            code=code, name=item.name, time=quote_time(self.timeline, day, i), last=_dec(last),
            open=_dec(day_open), high=_dec(hi), low=_dec(lo), pre_close=_dec(path.pre_close),
            volume=volume, amount=_dec(amount_li).quantize(Decimal("0.01")), bids=bids, asks=asks,
            up_limit=_dec(path.up) if path.limited else None,
            down_limit=_dec(path.down) if path.limited else None, status=status,
        )

    def _replayed(self, code: str, at: datetime) -> Quote:
        series = self.replay[code]
        i = series.index_at(at)
        t = series.ticks[i]
        item = self.listing(code)
        inst = self.instrument(code, t.time.date())
        day_open, hi, lo = series.day_range(i)
        bids, asks = t.bids, t.asks
        if not bids and not asks:
            # No book in the file: one tick either side of the last price, within the limits.
            step = inst.price_tick
            up = inst.up_limit or t.last * 10
            down = inst.down_limit or step
            asks = tuple(Level(t.last + step * (n + 1), 1000 * (n + 1)) for n in range(5)
                         if t.last + step * (n + 1) <= up)
            bids = tuple(Level(t.last - step * n, 1000 * (n + 1)) for n in range(5) if t.last - step * n >= down)
        return Quote(
            code=code, name=item.name, time=t.time, last=t.last, open=day_open, high=hi, low=lo,
            pre_close=inst.pre_close, volume=t.volume, amount=t.amount.quantize(Decimal("0.01")), bids=bids,
            asks=asks, up_limit=inst.up_limit, down_limit=inst.down_limit, status=self._status(item, at),
        )

    def _status(self, item: Listing, at: datetime) -> str:
        if item.suspended:
            return "suspended"
        phase = self.timeline.phase(at).value
        return "trading" if phase == "continuous" else phase

    def _pre_open(self, code: str, item: Listing, day: date, at: datetime, status: str) -> Quote:
        """Before the opening auction prints: yesterday's close, nothing traded, no book."""
        inst = self.instrument(code, day)
        pre = inst.pre_close
        return Quote(
            code=code, name=item.name, time=at, last=pre, open=Decimal(0), high=Decimal(0),
            low=Decimal(0), pre_close=pre, volume=0, amount=Decimal("0.00"), bids=(), asks=(),
            up_limit=inst.up_limit, down_limit=inst.down_limit, status=status,
        )

    def _book(
        self, code: str, day: date, i: int, last: int, path: DayPath, tick: int, suspended: bool
    ) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
        if suspended:
            return (), ()
        bits = random.Random(_seed(self.seed, code, "book", day.isoformat(), i)).getrandbits

        def lots() -> int:
            # rng.randint(1, 60), draw for draw (what randint does inside: 6 bits until one is below
            # 60), without its three Python calls: a round's quotes drew a hundred of them.
            r = bits(6)
            while r >= 60:
                r = bits(6)
            return r + 1

        bids: list[Level] = []
        asks: list[Level] = []
        # At the up limit nobody sells below it: the ask side is empty. Mirror at the down limit.
        ask1 = last + tick if last < path.up else None
        bid1 = last if last > path.down else None
        for lvl in range(5):
            if ask1 is not None and ask1 + lvl * tick <= path.up:
                asks.append(Level(_dec(ask1 + lvl * tick), 100 * lots() * (lvl + 1)))
            if bid1 is not None and bid1 - lvl * tick >= path.down:
                bids.append(Level(_dec(bid1 - lvl * tick), 100 * lots() * (lvl + 1)))
        return tuple(bids), tuple(asks)

    def ticks(self, code: str, start: datetime, end: datetime, limit: int) -> list[Quote]:
        """The quotes published in [start, end], oldest first, at most `limit`."""
        if code in self.replay:
            series = self.replay[code]
            lo = max(0, series.index_at(start) if start >= series.times[0] else 0)
            picked = [t.time for t in series.ticks[lo:] if start <= t.time <= end][:limit]
            return [self._replayed(code, when) for when in picked]
        tl = self.timeline
        out: list[Quote] = []
        last = tl.minutes * QUOTES_PER_MINUTE - 1
        day = max(start.astimezone(CN_TZ).date(), FIRST_DAY, self.listing(code).listed or FIRST_DAY)
        end_day = end.astimezone(CN_TZ).date()
        while day <= end_day and len(out) < limit:
            if tl.is_trading_day(day):
                first_at = quote_time(tl, day, 0)
                # Skip straight to the first quote at or after `start` on its day.
                i = 0
                if start > first_at:
                    d0, i0 = tl.locate(start)
                    i = max(0, i0) if d0 == day else 0
                while i <= last and len(out) < limit:
                    at = quote_time(tl, day, i)
                    if at > end:
                        break
                    if at >= start:
                        out.append(self.quote(code, at))
                    i += 1
            day = date.fromordinal(day.toordinal() + 1)
        return out

    # ----- bars
    def minute_bars(self, code: str, start: datetime, end: datetime, minutes: int) -> list[Bar]:
        """Bars of `minutes` (1..60) whose start lies in [start, end], in time order. The bar that
        holds `end` stops at the quote in force at `end`, so no bar shows a future quote."""
        if code in self.replay:
            return self.replay[code].bars(start, end, minutes)
        tl = self.timeline
        tick = self.tick_li(code)
        end_day, end_i = tl.locate(end)
        out: list[Bar] = []
        day = max(start.astimezone(CN_TZ).date(), FIRST_DAY, self.listing(code).listed or FIRST_DAY)
        while day <= end_day:
            if not tl.is_trading_day(day):
                day = date.fromordinal(day.toordinal() + 1)
                continue
            path = self._path(code, day)
            for m0 in range(0, tl.minutes, minutes):
                at = tl.minute_start(day, m0)
                if at < start or at > end:
                    continue
                parts: list[Parts] = []
                for m in range(m0, min(m0 + minutes, tl.minutes)):
                    if day == end_day and m * QUOTES_PER_MINUTE > end_i:
                        break
                    if day == end_day and end_i < (m + 1) * QUOTES_PER_MINUTE:
                        parts.append(path.partial_minute(m, end_i - m * QUOTES_PER_MINUTE, tick))
                        break
                    parts.append(path.minute_bar(m, tick))
                if parts:
                    out.append(_merge(at, parts))
            day = date.fromordinal(day.toordinal() + 1)
        return out

    def day_bar(self, code: str, day: date) -> Bar:
        """A whole day's bar (callers ask only for finished days)."""
        if code in self.replay:
            return self.replay[code].day_bar(day)
        bar = self._day_bars.get((code, day))
        if bar is None:
            if len(self._day_bars) >= MAX_DAY_BARS:
                self._day_bars.clear()
            whole = self._path(code, day).whole_day(self.tick_li(code))
            bar = self._day_bars[(code, day)] = _merge(self.timeline.minute_start(day, 0).replace(hour=0, minute=0),
                                                       [whole])
        return bar


def _merge(start: datetime, parts: list[Parts]) -> Bar:
    o = parts[0][0]
    c = parts[-1][3]
    hi = max(p[1] for p in parts)
    lo = min(p[2] for p in parts)
    vol = sum(p[4] for p in parts)
    amt = sum(p[5] for p in parts)
    return Bar(start, _dec(o), _dec(hi), _dec(lo), _dec(c), vol, _dec(amt).quantize(Decimal("0.01")))
