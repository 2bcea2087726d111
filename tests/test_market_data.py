"""The synthetic market: deterministic per seed, within daily limits, bars that aggregate the quotes."""

from __future__ import annotations

from datetime import datetime, timedelta

from qmt_mcp.backends.sim.market import SimMarket
from qmt_mcp.domain.timeutil import CN_TZ

T0 = datetime(2026, 11, 20, 10, 0, 0, tzinfo=CN_TZ)


def test_same_seed_same_market_and_another_seed_differs() -> None:
    a, b, c = SimMarket(42), SimMarket(42), SimMarket(7)
    assert a.quote("600519.SH", T0) == b.quote("600519.SH", T0)
    assert a.quote("600519.SH", T0).last != c.quote("600519.SH", T0).last


def test_quotes_every_3_seconds_stay_within_limits_with_a_5_level_book() -> None:
    m = SimMarket(42)
    for code in m.listings:
        for i in range(0, 3600, 3):
            q = m.quote(code, T0 + timedelta(seconds=i))
            assert q.down_limit <= q.last <= q.up_limit
            assert all(q.down_limit <= lv.price <= q.up_limit for lv in q.bids + q.asks)
            if q.status == "trading" and q.down_limit < q.last < q.up_limit:
                assert len(q.asks) == 5 and len(q.bids) == 5
                assert q.bids[0].price < q.asks[0].price


def test_one_minute_bars_aggregate_the_quotes_exactly() -> None:
    m = SimMarket(42)
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


def test_daily_bar_matches_the_last_quote_of_the_day_and_its_minutes() -> None:
    m = SimMarket(42)
    day = T0.date()
    bar = m.day_bar("300750.SZ", day)
    last = m.quote("300750.SZ", datetime(2026, 11, 20, 23, 59, 57, tzinfo=CN_TZ))
    assert (bar.close, bar.high, bar.low, bar.volume) == (last.last, last.high, last.low, last.volume)
    hours = m.minute_bars("300750.SZ", datetime(2026, 11, 20, tzinfo=CN_TZ),
                          datetime(2026, 11, 20, 23, 59, 59, tzinfo=CN_TZ), 60)
    assert sum(b.volume for b in hours) == bar.volume
    assert max(b.high for b in hours) == bar.high


def test_the_bar_in_progress_shows_no_future_quote() -> None:
    m = SimMarket(42)
    now = T0 + timedelta(seconds=31)
    bar = m.minute_bars("600000.SH", T0, now, 1)[-1]
    q = m.quote("600000.SH", now)
    assert bar.close == q.last and bar.volume == q.volume - m.quote("600000.SH", T0 - timedelta(seconds=3)).volume


def test_next_days_pre_close_is_todays_close() -> None:
    m = SimMarket(42)
    bar = m.day_bar("600000.SH", T0.date())
    assert m.instrument("600000.SH", T0.date() + timedelta(days=1)).pre_close == bar.close.quantize(bar.close)


def test_universe_covers_each_board_st_etf_and_suspension() -> None:
    m = SimMarket(42)
    boards = {m.instrument(c, T0.date()).board.value for c in m.listings}
    assert boards == {"sh_main", "sz_main", "chinext", "star", "bse", "fund"}
    insts = [m.instrument(c, T0.date()) for c in m.listings]
    assert any(i.st for i in insts) and any(i.suspended for i in insts)
    assert {"600000.SH", "600519.SH", "000001.SZ", "300750.SZ", "688981.SH", "510300.SH"} <= set(m.listings)
