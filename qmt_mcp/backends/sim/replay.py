"""Replay of a person's own market data from CSV files, in place of the synthetic market for those codes.

One file per instrument, named `<code>.csv` (`600000.SH.csv`), UTF-8, a header row, times in
Asia/Shanghai (`2024-03-01 09:30:03` or ISO-8601). Two layouts, told apart by the header:

- ticks: `time,last,volume,amount` and optionally `bid1,bid1_volume … bid5,bid5_volume,ask1,ask1_volume …
  ask5,ask5_volume`. `volume` (shares) and `amount` (yuan) are the day's running totals, as xtquant
  reports them. Without book columns the simulator quotes one tick either side of `last`.
- 1-minute bars: `time,open,high,low,close,volume,amount` with `time` the bar's start, `volume` and
  `amount` for the minute. Each bar becomes four quotes (open, the nearer extreme, the farther one,
  close) 15 s apart, so bars built back from the quotes equal the file's.

The previous close of a day is the last price of the day before in the file (the first day: its
first price). A quote holds until the next one; before the first there is no data.
"""

from __future__ import annotations

import bisect
import csv
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from ...domain.codes import normalize_code
from ...domain.errors import InvalidArgument, UnknownInstrument
from ...domain.market import Bar, Level
from ...domain.timeutil import parse_time

TICK_COLUMNS = ("time", "last", "volume", "amount")
BAR_COLUMNS = ("time", "open", "high", "low", "close", "volume", "amount")


class ReplayError(ValueError):
    """A replay file cannot be read; the message names the file and the line."""


@dataclass(frozen=True)
class Tick:
    time: datetime
    last: Decimal
    volume: int        # day's running total, shares
    amount: Decimal    # day's running total, yuan
    bids: tuple[Level, ...] = ()
    asks: tuple[Level, ...] = ()


class ReplaySeries:
    """One instrument's replayed quotes, and the per-day facts derived from them."""

    def __init__(self, code: str, ticks: list[Tick]) -> None:
        if not ticks:
            raise ReplayError(f"{code}: the file has no rows")
        self.code = code
        self.ticks = sorted(ticks, key=lambda t: t.time)
        self.times = [t.time for t in self.ticks]
        self.day_first: dict[date, int] = {}
        self.day_last: dict[date, int] = {}
        for i, t in enumerate(self.ticks):
            d = t.time.date()
            self.day_first.setdefault(d, i)
            self.day_last[d] = i
        self.days = sorted(self.day_first)
        # Running open/high/low of each tick's day, and each day's previous close, computed once:
        # every quote reads them.
        self._running: list[tuple[Decimal, Decimal, Decimal]] = []
        for i, t in enumerate(self.ticks):
            if i == self.day_first[t.time.date()]:
                self._running.append((t.last, t.last, t.last))
            else:
                o, hi, lo = self._running[-1]
                self._running.append((o, max(hi, t.last), min(lo, t.last)))
        self._pre: dict[date, Decimal] = {}
        prev = self.ticks[0].last
        for d in self.days:
            self._pre[d] = prev
            prev = self.ticks[self.day_last[d]].last

    def index_at(self, at: datetime) -> int:
        """Index of the quote in force at `at`; UnknownInstrument before the first."""
        i = bisect.bisect_right(self.times, at) - 1
        if i < 0:
            raise UnknownInstrument(f"the replay of {self.code} starts at {self.times[0].isoformat()}")
        return i

    def pre_close(self, day: date) -> Decimal:
        if day in self._pre:
            return self._pre[day]
        k = bisect.bisect_left(self.days, day)   # a day without data: the last close before it
        return self.ticks[self.day_last[self.days[k - 1]]].last if k else self.ticks[0].last

    def day_range(self, i: int) -> tuple[Decimal, Decimal, Decimal]:
        """(open, high, low) of tick i's day up to and including tick i."""
        return self._running[i]

    def bars(self, start: datetime, end: datetime, minutes: int) -> list[Bar]:
        """Bars cut on wall-clock boundaries of `minutes` from midnight, from the quotes in [start, end]."""
        lo = bisect.bisect_left(self.times, start)
        hi = bisect.bisect_right(self.times, end)
        buckets: dict[datetime, list[int]] = {}
        for i in range(lo, hi):
            t = self.ticks[i].time
            since = t.hour * 60 + t.minute
            midnight = t.replace(hour=0, minute=0, second=0, microsecond=0)
            bucket = midnight + timedelta(minutes=since // minutes * minutes)
            buckets.setdefault(bucket, []).append(i)
        return [self._bar(at, idx) for at, idx in sorted(buckets.items())]

    def day_bar(self, day: date) -> Bar:
        first, last = self.day_first[day], self.day_last[day]
        start = self.ticks[first].time.replace(hour=0, minute=0, second=0, microsecond=0)
        return self._bar(start, list(range(first, last + 1)))

    def _bar(self, at: datetime, idx: list[int]) -> Bar:
        ticks = [self.ticks[i] for i in idx]
        first = idx[0]
        day_start = self.day_first[ticks[0].time.date()]
        prev_v, prev_a = (0, Decimal(0)) if first == day_start else (
            self.ticks[first - 1].volume, self.ticks[first - 1].amount)
        return Bar(at, ticks[0].last, max(t.last for t in ticks), min(t.last for t in ticks), ticks[-1].last,
                   ticks[-1].volume - prev_v, (ticks[-1].amount - prev_a).quantize(Decimal("0.01")))


def load_replay_dir(folder: Path) -> dict[str, ReplaySeries]:
    out: dict[str, ReplaySeries] = {}
    if not folder.is_dir():
        raise ReplayError(f"{folder} is not a directory")
    for path in sorted(folder.glob("*.csv")):
        try:
            code = normalize_code(path.stem)
        except InvalidArgument:
            raise ReplayError(f"{path.name}: the file name must be an instrument code, e.g. 600000.SH.csv") from None
        out[code] = ReplaySeries(code, read_csv(path))
    return out


def read_csv(path: Path) -> list[Tick]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = tuple(h.strip().lower() for h in reader.fieldnames or ())
        parse: Callable[[dict[str, str], dict[date, tuple[int, Decimal]]], list[Tick]]
        if all(c in header for c in BAR_COLUMNS):
            parse = _bar_ticks
        elif all(c in header for c in TICK_COLUMNS):
            parse = _tick
        else:
            raise ReplayError(f"{path.name}: the header must hold {','.join(TICK_COLUMNS)} (ticks) "
                              f"or {','.join(BAR_COLUMNS)} (1-minute bars)")
        ticks: list[Tick] = []
        day_totals: dict[date, tuple[int, Decimal]] = {}
        for line, raw in enumerate(reader, start=2):
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
            try:
                ticks.extend(parse(row, day_totals))
            except (InvalidArgument, InvalidOperation, ValueError) as exc:
                raise ReplayError(f"{path.name} line {line}: {getattr(exc, 'message', exc)}") from None
        return ticks


def _dec(row: dict[str, str], key: str) -> Decimal:
    value = Decimal(row[key])
    if not value.is_finite() or value < 0:
        raise ValueError(f"{key} must be a non-negative number")
    return value


def _tick(row: dict[str, str], _totals: dict[date, tuple[int, Decimal]]) -> list[Tick]:
    bids = tuple(Level(_dec(row, f"bid{n}"), int(row[f"bid{n}_volume"]))
                 for n in range(1, 6) if row.get(f"bid{n}") and _dec(row, f"bid{n}") > 0)
    asks = tuple(Level(_dec(row, f"ask{n}"), int(row[f"ask{n}_volume"]))
                 for n in range(1, 6) if row.get(f"ask{n}") and _dec(row, f"ask{n}") > 0)
    return [Tick(parse_time(row["time"], "time"), _dec(row, "last"), int(row["volume"]), _dec(row, "amount"),
                 bids, asks)]


def _bar_ticks(row: dict[str, str], totals: dict[date, tuple[int, Decimal]]) -> list[Tick]:
    at = parse_time(row["time"], "time")
    o, h, low, c = (_dec(row, k) for k in ("open", "high", "low", "close"))
    if not (low <= min(o, c) and max(o, c) <= h):
        raise ValueError("high/low must bound open and close")
    volume, amount = int(row["volume"]), _dec(row, "amount")
    # Visit the extreme nearer the open first, as a price path would.
    path = (o, low, h, c) if o - low <= h - o else (o, h, low, c)
    vol0, amt0 = totals.get(at.date(), (0, Decimal(0)))
    out = []
    for k, price in enumerate(path):
        share_v = volume * (k + 1) // 4
        share_a = (amount * (k + 1) / 4).quantize(Decimal("0.01")) if k < 3 else amount
        out.append(Tick(at + timedelta(seconds=15 * k), price, vol0 + share_v, amt0 + share_a))
    totals[at.date()] = (vol0 + volume, amt0 + amount)
    return out
