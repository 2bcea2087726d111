"""Today's usage from running sums (worker/day_figures.py) equals the walk over every order of the day
it replaced, whatever order the records are written in, written again after they ended, or excluded."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from qmt_mcp.domain.orders import Side
from qmt_mcp.domain.status import TERMINAL, OrderStatus
from qmt_mcp.worker.day_figures import NOT_SENT, DayFigures, OrderFigures

SINCE = "2026-11-20T00:00:00.000+08:00"
MINUTE_AGO = "2026-11-20T10:00:00.000+08:00"
TIMES = ["2026-11-19T14:59:00.000+08:00", "2026-11-20T09:59:00.000+08:00", MINUTE_AGO,
         "2026-11-20T10:00:30.000+08:00"]

figures = st.builds(
    OrderFigures, status=st.sampled_from(list(OrderStatus)), side=st.sampled_from(list(Side)),
    code=st.sampled_from(["600000.SH", "000001.SZ"]), created_at=st.sampled_from(TIMES),
    price=st.sampled_from([Decimal("10.01"), Decimal("9.5")]), volume=st.sampled_from([100, 300]),
    traded_volume=st.sampled_from([0, 100]), traded_amount=st.sampled_from([Decimal(0), Decimal("1001.00")]))
writes = st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d", "e"]), figures), max_size=25)


def walked(latest: dict[str, OrderFigures], excluding: str | None) -> tuple[int, int, Decimal, list[OrderFigures]]:
    """The walk over the day's orders that riskbook.usage made before the running sums."""
    count = recent = 0
    turnover = Decimal(0)
    open_orders = []
    for cid, f in latest.items():
        if cid == excluding or f.created_at < SINCE or f.status in NOT_SENT:
            continue
        count += 1
        recent += f.created_at >= MINUTE_AGO
        if f.status in TERMINAL:
            turnover += f.traded_amount
        else:
            open_orders.append(f)
    return count, recent, turnover, open_orders


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(writes, st.sampled_from([None, "a", "c"]), st.booleans())
def test_running_sums_equal_the_walk_over_the_day(
    sequence: list[tuple[str, OrderFigures]], excluding: str | None, loaded: bool,
) -> None:
    latest: dict[str, OrderFigures] = {}
    day = DayFigures(SINCE)
    for cid, f in sequence:
        latest[cid] = f
        if not loaded:
            day.put(cid, f)
    if loaded:   # as built from the journal's records at the first decision of a worker
        day = DayFigures(SINCE, latest.items())
    count, recent, turnover, open_orders = walked(latest, excluding)
    closed = day.closed(MINUTE_AGO, excluding)
    open_now = day.open_orders(excluding)
    assert sorted(open_now, key=repr) == sorted([f for f in open_orders if f.status not in NOT_SENT], key=repr)
    assert closed.count + len(open_now) == count
    assert closed.last_minute + sum(f.created_at >= MINUTE_AGO for f in open_now) == recent
    assert closed.turnover == turnover


def test_the_next_day_counts_none_of_the_day_before() -> None:
    ended = OrderFigures(OrderStatus.SUCCEEDED, Side.BUY, "600000.SH", TIMES[1], Decimal("10"), 100, 100,
                         Decimal("1000"))
    day = DayFigures(SINCE, [("a", ended), ("b", ended)])
    assert day.closed(MINUTE_AGO).count == 2
    tomorrow = day.trimmed("2026-11-21T00:00:00.000+08:00")
    assert tomorrow.closed(MINUTE_AGO).count == 0 and tomorrow.open_orders() == []
    tomorrow.put("c", ended)   # a late write of yesterday's order
    assert tomorrow.closed(MINUTE_AGO).turnover == 0
