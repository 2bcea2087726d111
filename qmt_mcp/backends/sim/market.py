"""A seeded synthetic market: deterministic quotes every 3 s and bars that aggregate them exactly.

Model (continuous clock: every calendar day trades around the clock, 1440 minutes):
- a daily close series, a random walk from each listing's base price, kept within daily limits;
- per day, 1441 minute anchors: a Brownian bridge from the previous close to the day's close;
- the 20 quotes of minute m move linearly from anchor m to anchor m+1 (rounded to the tick), so a
  minute bar's open is its first quote, its close is anchor m+1 and its high/low are those two;
- minute volume is drawn per minute and spread evenly over its 20 quotes; minute amount is
  volume × the minute's mid price, accumulated linearly within the minute.
Prices are integer li (0.001 yuan) inside; floats only drive the random walk.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache

from ...domain.codes import board_of, exchange_of
from ...domain.errors import UnknownInstrument
from ...domain.instruments import LOT_RULES, Instrument, daily_limits, limit_ratio, price_tick
from ...domain.market import Bar, Level, Quote
from ...domain.timeutil import CN_TZ
from .universe import UNIVERSE, Listing

FIRST_DAY = date(2024, 1, 1)   # the first simulated day; no data before it
MINUTES = 1440
QUOTES_PER_MINUTE = 20
LI = Decimal("0.001")


def _seed(*parts: object) -> int:
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _dec(li: int) -> Decimal:
    return Decimal(li) * LI


def _interp(a: int, b: int, k: int, tick: int) -> int:
    """Quote k (0..19) of a minute that moves from anchor a to anchor b, rounded to the tick."""
    raw = a * QUOTES_PER_MINUTE + (b - a) * (k + 1)
    return (raw + tick * QUOTES_PER_MINUTE // 2) // (tick * QUOTES_PER_MINUTE) * tick


@dataclass(frozen=True)
class DayPath:
    pre_close: int             # li
    up: int
    down: int
    anchors: tuple[int, ...]   # 1441 prices, li
    minute_volume: tuple[int, ...]   # shares, multiple of 20*100
    cum_volume: tuple[int, ...]      # prefix sums, len 1441
    minute_amount: tuple[int, ...]   # li*shares (amount in 0.001 yuan)
    cum_amount: tuple[int, ...]
    high_before: tuple[int, ...]     # day high over the quotes of minutes < m (index m)
    low_before: tuple[int, ...]

    def quote_price(self, m: int, k: int, tick: int) -> int:
        return _interp(self.anchors[m], self.anchors[m + 1], k, tick)

    def partial_minute(self, m: int, k: int, tick: int) -> tuple[int, int, int, int, int, int]:
        """Minute m up to and including its quote k."""
        o = self.quote_price(m, 0, tick)
        c = self.quote_price(m, k, tick)
        vol = self.minute_volume[m] * (k + 1) // QUOTES_PER_MINUTE
        amt = self.minute_amount[m] * (k + 1) // QUOTES_PER_MINUTE
        return o, max(o, c), min(o, c), c, vol, amt

    def minute_bar(self, m: int, tick: int) -> tuple[int, int, int, int, int, int]:
        """(open, high, low, close, volume, amount_li) of minute m."""
        o = self.quote_price(m, 0, tick)
        c = self.anchors[m + 1]
        return o, max(o, c), min(o, c), c, self.minute_volume[m], self.minute_amount[m]


class SimMarket:
    """Read-only market data for the simulator; every answer depends only on (seed, code, time)."""

    def __init__(self, seed: int, listings: tuple[Listing, ...] = UNIVERSE) -> None:
        self.seed = seed
        self.listings = {item.code: item for item in listings}
        self._closes: dict[str, list[int]] = {}
        self._path = lru_cache(maxsize=512)(self._build_path)

    # ----- instruments
    def listing(self, code: str) -> Listing:
        try:
            return self.listings[code]
        except KeyError:
            raise UnknownInstrument(f"{code} is not in the simulated universe") from None

    def tick_li(self, code: str) -> int:
        return int(price_tick(board_of(code)) / LI)

    def instrument(self, code: str, day: date) -> Instrument:
        item = self.listing(code)
        board = board_of(code)
        tick = price_tick(board)
        pre = _dec(self._close(code, day - timedelta(days=1))).quantize(tick)
        up, down = daily_limits(pre, limit_ratio(board, item.st, day), tick)
        return Instrument(
            code=code, name=item.name, exchange=exchange_of(code), board=board, pre_close=pre,
            up_limit=up, down_limit=down, price_tick=tick, lot=LOT_RULES[board], st=item.st,
            suspended=item.suspended, t_plus=item.t_plus,
        )

    # ----- the daily close series
    def _close(self, code: str, day: date) -> int:
        item = self.listing(code)
        series = self._closes.setdefault(code, [int(item.base_price / LI)])
        # series[0] is the close before FIRST_DAY; series[n] the close of FIRST_DAY + n - 1.
        n = (day - FIRST_DAY).days + 1
        if n < 0:
            return series[0]
        tick = self.tick_li(code)
        board = board_of(code)
        base = series[0]
        while len(series) <= n:
            d = FIRST_DAY + timedelta(days=len(series) - 1)
            prev = series[-1]
            if item.suspended:
                series.append(prev)
                continue
            rng = random.Random(_seed(self.seed, code, "close", d.isoformat()))
            ratio = float(limit_ratio(board, item.st, d))
            # A mild pull toward the base price keeps years of random walk at plausible levels.
            pull = -0.05 * math.log(prev / base)
            move = max(-ratio * 0.9, min(ratio * 0.9, pull + rng.gauss(0.0, item.daily_vol)))
            series.append(max(tick, round(prev * math.exp(move) / tick) * tick))
        return series[n]

    def _build_path(self, code: str, day: date) -> DayPath:
        item = self.listing(code)
        inst = self.instrument(code, day)
        tick = self.tick_li(code)
        pre = int(inst.pre_close / LI)
        up, down = int(inst.up_limit / LI), int(inst.down_limit / LI)
        close = min(up, max(down, self._close(code, day)))
        if item.suspended:
            flat = (pre,) * (MINUTES + 1)
            zeros = (0,) * MINUTES
            cum = (0,) * (MINUTES + 1)
            return DayPath(pre, up, down, flat, zeros, cum, zeros, cum, flat, flat)
        rng = random.Random(_seed(self.seed, code, "path", day.isoformat()))
        walk = [0.0]
        for _ in range(MINUTES):
            walk.append(walk[-1] + rng.gauss(0.0, 1.0))
        scale = pre * item.daily_vol / math.sqrt(MINUTES) * 0.6
        end = walk[-1]
        anchors = [pre]
        for m in range(1, MINUTES):
            frac = m / MINUTES
            raw = pre + (close - pre) * frac + (walk[m] - frac * end) * scale
            anchors.append(min(up, max(down, round(raw / tick) * tick)))
        anchors.append(close)
        lot = 100 * QUOTES_PER_MINUTE
        volumes = tuple(lot * rng.randint(1, 30) for _ in range(MINUTES))
        amounts = tuple(v * (anchors[m] + anchors[m + 1]) // 2 for m, v in enumerate(volumes))
        cum_v, cum_a = [0], [0]
        for v, a in zip(volumes, amounts, strict=True):
            cum_v.append(cum_v[-1] + v)
            cum_a.append(cum_a[-1] + a)
        day_open = _interp(anchors[0], anchors[1], 0, tick)
        highs, lows = [day_open], [day_open]
        for m in range(1, MINUTES + 1):
            highs.append(max(highs[-1], anchors[m]))
            lows.append(min(lows[-1], anchors[m]))
        return DayPath(
            pre, up, down, tuple(anchors), volumes, tuple(cum_v), amounts, tuple(cum_a),
            tuple(highs), tuple(lows),
        )

    # ----- quotes
    @staticmethod
    def quote_index(at: datetime) -> tuple[date, int]:
        local = at.astimezone(CN_TZ)
        secs = local.hour * 3600 + local.minute * 60 + local.second
        return local.date(), secs // 3

    def quote(self, code: str, at: datetime) -> Quote:
        """The quote in force at `at` (the one published at the last 3-s boundary)."""
        day, i = self.quote_index(at)
        item = self.listing(code)
        if day < FIRST_DAY:
            raise UnknownInstrument(f"no simulated data before {FIRST_DAY}")
        path = self._path(code, day)
        tick = self.tick_li(code)
        m, k = divmod(i, QUOTES_PER_MINUTE)
        last = path.quote_price(m, k, tick)
        day_open = path.quote_price(0, 0, tick)
        hi, lo = path.high_before[m], path.low_before[m]
        first_in_minute = path.quote_price(m, 0, tick)
        hi, lo = max(hi, first_in_minute, last), min(lo, first_in_minute, last)
        volume = path.cum_volume[m] + path.minute_volume[m] * (k + 1) // QUOTES_PER_MINUTE
        amount_li = path.cum_amount[m] + path.minute_amount[m] * (k + 1) // QUOTES_PER_MINUTE
        stamp = datetime.combine(day, time(), CN_TZ) + timedelta(seconds=i * 3)
        bids, asks = self._book(code, day, i, last, path, tick, item.suspended)
        return Quote(
            code=code, name=item.name, time=stamp, last=_dec(last), open=_dec(day_open),
            high=_dec(hi), low=_dec(lo), pre_close=_dec(path.pre_close), volume=volume,
            amount=_dec(amount_li).quantize(Decimal("0.01")), bids=bids, asks=asks,
            up_limit=_dec(path.up), down_limit=_dec(path.down),
            status="suspended" if item.suspended else "trading",
        )

    def _book(
        self, code: str, day: date, i: int, last: int, path: DayPath, tick: int, suspended: bool
    ) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
        if suspended:
            return (), ()
        rng = random.Random(_seed(self.seed, code, "book", day.isoformat(), i))
        bids: list[Level] = []
        asks: list[Level] = []
        # At the up limit nobody sells below it: the ask side is empty. Mirror at the down limit.
        ask1 = last + tick if last < path.up else None
        bid1 = last if last > path.down else None
        for lvl in range(5):
            if ask1 is not None and ask1 + lvl * tick <= path.up:
                asks.append(Level(_dec(ask1 + lvl * tick), 100 * rng.randint(1, 60) * (lvl + 1)))
            if bid1 is not None and bid1 - lvl * tick >= path.down:
                bids.append(Level(_dec(bid1 - lvl * tick), 100 * rng.randint(1, 60) * (lvl + 1)))
        return tuple(bids), tuple(asks)

    # ----- bars
    def minute_bars(self, code: str, start: datetime, end: datetime, minutes: int) -> list[Bar]:
        """Bars of `minutes` (1..60) whose start lies in [start, end], in time order. The bar that
        holds `end` stops at the quote in force at `end`, so no bar shows a future quote."""
        tick = self.tick_li(code)
        out: list[Bar] = []
        first = max(start.astimezone(CN_TZ), datetime.combine(FIRST_DAY, time(), CN_TZ))
        cursor = first.replace(second=0, microsecond=0)
        cursor -= timedelta(minutes=(cursor.hour * 60 + cursor.minute) % minutes)
        if cursor < first:
            cursor += timedelta(minutes=minutes)
        while cursor <= end:
            path = self._path(code, cursor.date())
            m0 = cursor.hour * 60 + cursor.minute
            _, i_end = self.quote_index(end)
            same_day = cursor.date() == end.astimezone(CN_TZ).date()
            parts = []
            for m in range(m0, min(m0 + minutes, MINUTES)):
                if same_day and m * QUOTES_PER_MINUTE > i_end:
                    break
                if same_day and i_end < (m + 1) * QUOTES_PER_MINUTE:
                    parts.append(path.partial_minute(m, i_end - m * QUOTES_PER_MINUTE, tick))
                    break
                parts.append(path.minute_bar(m, tick))
            out.append(_merge(cursor, parts))
            cursor += timedelta(minutes=minutes)
        return out

    def day_bar(self, code: str, day: date) -> Bar:
        tick = self.tick_li(code)
        path = self._path(code, day)
        parts = [path.minute_bar(m, tick) for m in range(MINUTES)]
        return _merge(datetime.combine(day, time(), CN_TZ), parts)


def _merge(start: datetime, parts: list[tuple[int, int, int, int, int, int]]) -> Bar:
    o = parts[0][0]
    c = parts[-1][3]
    hi = max(p[1] for p in parts)
    lo = min(p[2] for p in parts)
    vol = sum(p[4] for p in parts)
    amt = sum(p[5] for p in parts)
    return Bar(start, _dec(o), _dec(hi), _dec(lo), _dec(c), vol, _dec(amt).quantize(Decimal("0.01")))
