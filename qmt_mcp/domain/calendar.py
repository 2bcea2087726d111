"""The SSE/SZSE/BSE trading calendar: weekdays minus the exchanges' announced holiday closures.

The closures are the weekdays of each year's notice (《…部分节假日休市安排的通知》, published every
December for the next year). Past the last year listed, only weekends are known to be closed:
`KNOWN_THROUGH` says how far the list reaches, and a new year's dates must be added here.
"""

from __future__ import annotations

from datetime import date, timedelta


def _days(*spans: tuple[str, str]) -> frozenset[date]:
    out: set[date] = set()
    for first, last in spans:
        d, end = date.fromisoformat(first), date.fromisoformat(last)
        while d <= end:
            if d.weekday() < 5:
                out.add(d)
            d += timedelta(days=1)
    return frozenset(out)


HOLIDAYS: frozenset[date] = _days(
    # 2024
    ("2024-01-01", "2024-01-01"), ("2024-02-09", "2024-02-17"), ("2024-04-04", "2024-04-06"),
    ("2024-05-01", "2024-05-05"), ("2024-06-10", "2024-06-10"), ("2024-09-15", "2024-09-17"),
    ("2024-10-01", "2024-10-07"),
    # 2025
    ("2025-01-01", "2025-01-01"), ("2025-01-28", "2025-02-04"), ("2025-04-04", "2025-04-06"),
    ("2025-05-01", "2025-05-05"), ("2025-05-31", "2025-06-02"), ("2025-10-01", "2025-10-08"),
    # 2026 (notice of 2025-12-22)
    ("2026-01-01", "2026-01-03"), ("2026-02-15", "2026-02-23"), ("2026-04-04", "2026-04-06"),
    ("2026-05-01", "2026-05-05"), ("2026-06-19", "2026-06-21"), ("2026-09-25", "2026-09-27"),
    ("2026-10-01", "2026-10-07"),
)
KNOWN_THROUGH = date(2026, 12, 31)


def is_trading_day(d: date) -> bool:
    return d.weekday() < 5 and d not in HOLIDAYS


def next_trading_day(d: date) -> date:
    """The first trading day strictly after `d`."""
    d += timedelta(days=1)
    while not is_trading_day(d):
        d += timedelta(days=1)
    return d


def prev_trading_day(d: date) -> date:
    """The last trading day strictly before `d`."""
    d -= timedelta(days=1)
    while not is_trading_day(d):
        d -= timedelta(days=1)
    return d


def trading_days_between(first: date, last: date) -> int:
    """How many trading days lie in [first, last]."""
    n, d = 0, first
    while d <= last:
        n += is_trading_day(d)
        d += timedelta(days=1)
    return n
