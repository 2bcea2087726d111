"""The synthetic market: deterministic per seed, within daily limits, bars that aggregate the quotes,
on both clocks, and the rule paths its universe covers (limit-up day, new listing, ST, suspension)."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import pytest

from qmt_mcp.backends.sim.market import SimMarket, _seed
from qmt_mcp.backends.sim.timeline import ContinuousTimeline, ExchangeTimeline, Timeline
from qmt_mcp.domain.timeutil import CN_TZ

T0 = datetime(2026, 11, 20, 10, 0, 0, tzinfo=CN_TZ)   # a Friday, a trading day
CLOCKS = pytest.mark.parametrize("timeline", [ContinuousTimeline(), ExchangeTimeline()], ids=lambda t: t.name)


def at(d: date, hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime.combine(d, time(hh, mm, ss), CN_TZ)


@CLOCKS
def test_same_seed_same_market_and_another_seed_differs(timeline: Timeline) -> None:
    a, b, c = SimMarket(42, timeline=timeline), SimMarket(42, timeline=timeline), SimMarket(7, timeline=timeline)
    assert a.quote("600519.SH", T0) == b.quote("600519.SH", T0)
    assert a.quote("600519.SH", T0).last != c.quote("600519.SH", T0).last


@CLOCKS
def test_quotes_every_3_seconds_stay_within_limits_with_a_5_level_book(timeline: Timeline) -> None:
    m = SimMarket(42, timeline=timeline)
    for code in m.listings:
        for i in range(0, 3600, 3):
            q = m.quote(code, T0 + timedelta(seconds=i))
            if q.up_limit is None or q.down_limit is None:
                assert code == "688799.SH"   # the new listing, in its days without a limit
                continue
            assert q.down_limit <= q.last <= q.up_limit
            assert all(q.down_limit <= lv.price <= q.up_limit for lv in q.bids + q.asks)
            if q.status == "trading" and q.down_limit < q.last < q.up_limit:
                assert len(q.asks) == 5 and len(q.bids) == 5
                assert q.bids[0].price < q.asks[0].price


@CLOCKS
def test_one_minute_bars_aggregate_the_quotes_exactly(timeline: Timeline) -> None:
    m = SimMarket(42, timeline=timeline)
    start = T0.replace(minute=5)
    bars = m.minute_bars("600000.SH", start, start + timedelta(minutes=9, seconds=59), 1)
    assert len(bars) == 10
    for bar in bars:
        quotes = [m.quote("600000.SH", bar.time + timedelta(seconds=3 * k)) for k in range(20)]
        prev = m.quote("600000.SH", bar.time - timedelta(seconds=3))
        assert bar.open == quotes[0].last and bar.close == quotes[-1].last
        assert bar.high == max(q.last for q in quotes) and bar.low == min(q.last for q in quotes)
        assert bar.volume == quotes[-1].volume - prev.volume
        assert bar.amount == quotes[-1].amount - prev.amount


@CLOCKS
def test_daily_bar_matches_the_last_quote_of_the_day_and_its_minutes(timeline: Timeline) -> None:
    m = SimMarket(42, timeline=timeline)
    day = T0.date()
    bar = m.day_bar("300750.SZ", day)
    last = m.quote("300750.SZ", at(day, 23, 59, 57))
    assert (bar.close, bar.high, bar.low, bar.volume) == (last.last, last.high, last.low, last.volume)
    hours = m.minute_bars("300750.SZ", at(day, 0, 0), at(day, 23, 59, 59), 60)
    assert len(hours) == (24 if timeline.name == "continuous" else 4)
    assert sum(b.volume for b in hours) == bar.volume
    assert max(b.high for b in hours) == bar.high
    ticks = m.ticks("300750.SZ", at(day, 0, 0), at(day, 23, 59, 59), 100_000)
    assert len(ticks) == timeline.minutes * 20
    assert ticks[-1] == last and sum(1 for _ in ticks) == len({t.time for t in ticks})


@CLOCKS
def test_the_bar_in_progress_shows_no_future_quote(timeline: Timeline) -> None:
    m = SimMarket(42, timeline=timeline)
    now = T0 + timedelta(seconds=31)
    bar = m.minute_bars("600000.SH", T0, now, 1)[-1]
    q = m.quote("600000.SH", now)
    assert bar.close == q.last and bar.volume == q.volume - m.quote("600000.SH", T0 - timedelta(seconds=3)).volume


@CLOCKS
def test_next_trading_days_pre_close_is_todays_close(timeline: Timeline) -> None:
    m = SimMarket(42, timeline=timeline)
    bar = m.day_bar("600000.SH", T0.date())
    following = T0.date() + timedelta(days=1 if timeline.name == "continuous" else 3)   # Friday → Monday
    assert m.instrument("600000.SH", following).pre_close == bar.close


def test_exchange_clock_quotes_stand_still_outside_the_sessions() -> None:
    m = SimMarket(42, timeline=ExchangeTimeline())
    d = T0.date()
    pre = m.quote("600000.SH", at(d, 9, 20))
    assert pre.volume == 0 and pre.bids == () and pre.last == pre.pre_close
    assert pre.status == "opening_auction_no_cancel"
    opening = m.quote("600000.SH", at(d, 9, 25))
    assert opening.time == at(d, 9, 25) and opening.volume > 0 and opening.status == "pre_open_hold"
    assert m.quote("600000.SH", at(d, 9, 29, 59)).last == opening.last
    assert m.quote("600000.SH", at(d, 12, 0)) == replace(m.quote("600000.SH", at(d, 11, 29, 59)), status="lunch_break")
    auction = [m.quote("600000.SH", at(d, 14, 57, 0) + timedelta(seconds=s)) for s in range(0, 180, 3)]
    assert len({(q.last, q.volume) for q in auction}) == 1          # nothing trades in the closing auction
    final = m.quote("600000.SH", at(d, 15, 0))
    assert final.time == at(d, 15, 0) and final.volume > auction[0].volume
    assert m.quote("600000.SH", at(date(2026, 11, 21), 10, 0)).last == final.last   # Saturday: Friday's close


def test_limit_up_day_closes_sealed_with_no_sellers() -> None:
    m = SimMarket(42, timeline=ExchangeTimeline())
    days = [d for d in (T0.date() - timedelta(days=i) for i in range(10)) if m.timeline.is_trading_day(d)]
    sealed = [d for d in days if m.day_bar("002888.SZ", d).close == m.instrument("002888.SZ", d).up_limit]
    assert sealed, "002888.SZ should close at its up limit every third trading day"
    d = sealed[0]
    q = m.quote("002888.SZ", at(d, 14, 0))
    assert q.last == q.up_limit and q.asks == () and q.bids[0].price == q.up_limit


def test_new_listing_has_no_daily_limit_in_its_first_five_trading_days() -> None:
    m = SimMarket(42, timeline=ExchangeTimeline())
    listed = date(2026, 11, 16)
    days = [listed + timedelta(days=i) for i in range(5)] + [date(2026, 11, 23)]
    insts = [m.instrument("688799.SH", d) for d in days]
    assert [i.limited for i in insts] == [False] * 5 + [True]
    first = m.day_bar("688799.SH", listed)
    assert first.close > insts[0].pre_close * Decimal("1.2")   # a first-day pop beyond any 20% limit
    assert insts[-1].up_limit == (insts[-1].pre_close * Decimal("1.2")).quantize(Decimal("0.01"))


def test_universe_covers_each_board_st_etf_t0_fund_and_suspension() -> None:
    m = SimMarket(42)
    boards = {m.instrument(c, T0.date()).board.value for c in m.listings}
    assert boards == {"sh_main", "sz_main", "chinext", "star", "bse", "fund"}
    insts = [m.instrument(c, T0.date()) for c in m.listings]
    assert any(i.st for i in insts) and any(i.suspended for i in insts) and any(i.t_plus == 0 for i in insts)
    assert {"600000.SH", "600519.SH", "000001.SZ", "300750.SZ", "688981.SH", "510300.SH"} <= set(m.listings)


@CLOCKS
def test_a_quote_read_again_is_the_one_a_fresh_market_builds_until_the_next_one_or_the_phase_changes(
    timeline: Timeline,
) -> None:
    m = SimMarket(42, timeline=timeline)
    day = T0.date()
    # Within a quote's 3 s, across it, and across the lunch break (the exchange clock's quote index
    # stands still while its phase, and so the quote's status, changes).
    times = [T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=3), at(day, 11, 29, 59), at(day, 11, 30, 30),
             at(day, 11, 29, 59)]
    for when in times:
        for code in ("600519.SH", "000001.SZ"):
            assert m.quote(code, when) == SimMarket(42, timeline=timeline).quote(code, when), (code, when)
    assert m.quote("600519.SH", T0) is m.quote("600519.SH", T0 + timedelta(seconds=1))   # built once
    if timeline.name == "exchange":
        assert m.quote("600519.SH", at(day, 11, 30, 30)).status != m.quote("600519.SH", at(day, 11, 29, 59)).status


def test_the_book_sizes_are_the_draws_of_randint() -> None:
    """The book's sizes are drawn as `random.Random(seed).randint(1, 60)` would draw them (the market
    inlines the draw): the same seed gives the same book as before it did."""
    m = SimMarket(42)
    for k in range(200):
        when = T0 + timedelta(seconds=3 * k)
        q = m.quote("600519.SH", when)
        day, i = m.timeline.locate(when)
        rng = random.Random(_seed(42, "600519.SH", "book", day.isoformat(), i))  # noqa: S311 (the market's own)
        want = []
        for lvl in range(5):   # asks, then bids, level by level, as the book draws them
            for side in (q.asks, q.bids):
                if lvl < len(side):
                    want.append((side, lvl, 100 * rng.randint(1, 60) * (lvl + 1)))
        assert all(side[lvl].volume == size for side, lvl, size in want)
