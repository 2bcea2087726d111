"""A kline chart as inline SVG, drawn on the server: no script, no CDN, nothing the page's CSP must open.

Candles from the worker's bars (up red, down green, the A-share convention), and the account's fills
of that code marked on the bar they fall in: a triangle at the fill's price, pointing up for a buy and
down for a sell, its `<title>` (the browser's hover text) saying side, shares, price and time. A fill
outside the bars' span (before the first bar, or later than one period after the last) is not drawn,
and the caption says how many were left out. Coordinates are floats (they are pixels); every figure
a person reads is written from the exact value (fmt.py).
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from ..domain.market import PERIODS
from .fmt import esc, price, shares

WIDTH, HEIGHT = 900, 320
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 12, 28


def _d(value: Any) -> Decimal:
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def _bar_of(times: list[datetime], at: datetime, period: str) -> int | None:
    """The index of the last bar starting at or before `at`, if `at` falls within the bars' span."""
    if not times or at < times[0] or at >= times[-1] + timedelta(minutes=PERIODS.get(period, 1)):
        return None
    return bisect_right(times, at) - 1


def kline_svg(code: str, period: str, bars: list[dict[str, Any]], fills: list[dict[str, Any]]) -> str:
    """The chart of `bars` (get_klines' bars) with `fills` (get_trades' trades of `code`) marked."""
    if not bars:
        return f"<p id='chart-empty'>no bars for {esc(code)} ({esc(period)})</p>"
    times = [datetime.fromisoformat(b["time"]) for b in bars]
    placed = [(i, f) for f in fills if (i := _bar_of(times, datetime.fromisoformat(f["time"]), period)) is not None]
    lows = [_d(b["low"]) for b in bars] + [_d(f["price"]) for _, f in placed]
    highs = [_d(b["high"]) for b in bars] + [_d(f["price"]) for _, f in placed]
    lo, hi = min(lows), max(highs)
    # Room above and below, so a marker at the highest or lowest price is drawn whole.
    pad = (hi - lo) / 10 if hi > lo else max(hi / 100, Decimal("0.01"))
    lo, hi = lo - pad, hi + pad
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / len(bars)
    body_w = max(1.0, step * 0.6)

    def y(p: Any) -> float:
        return TOP + float((hi - _d(p)) / (hi - lo)) * plot_h

    def x(i: int) -> float:
        return LEFT + step * (i + 0.5)

    parts = [f"<svg id='kline' xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{HEIGHT}' "
             f"viewBox='0 0 {WIDTH} {HEIGHT}' role='img' aria-label='{esc(code)} {esc(period)} klines'>",
             f"<rect x='{LEFT}' y='{TOP}' width='{plot_w}' height='{plot_h}' fill='#fcfcfc' stroke='#ddd'/>",
             f"<text x='{LEFT - 4}' y='{TOP + 10}' text-anchor='end' font-size='11'>{esc(price(hi))}</text>",
             f"<text x='{LEFT - 4}' y='{TOP + plot_h}' text-anchor='end' font-size='11'>{esc(price(lo))}</text>",
             f"<text x='{LEFT}' y='{HEIGHT - 8}' font-size='11'>{esc(bars[0]['time'])}</text>",
             f"<text x='{WIDTH - RIGHT}' y='{HEIGHT - 8}' text-anchor='end' font-size='11'>"
             f"{esc(bars[-1]['time'])}</text>"]
    for i, b in enumerate(bars):
        up = _d(b["close"]) >= _d(b["open"])
        colour = "#d62728" if up else "#2ca02c"
        top, bottom = y(max(_d(b["open"]), _d(b["close"]))), y(min(_d(b["open"]), _d(b["close"])))
        title = (f"{b['time']} open {price(b['open'])} high {price(b['high'])} low {price(b['low'])} "
                 f"close {price(b['close'])} volume {shares(b['volume'])}")
        parts.append(
            f"<g class='candle {'up' if up else 'down'}' data-time='{esc(b['time'])}'><title>{esc(title)}</title>"
            f"<line x1='{x(i):.1f}' x2='{x(i):.1f}' y1='{y(b['high']):.1f}' y2='{y(b['low']):.1f}' "
            f"stroke='{colour}'/><rect x='{x(i) - body_w / 2:.1f}' y='{top:.1f}' width='{body_w:.1f}' "
            f"height='{max(1.0, bottom - top):.1f}' fill='{colour}'/></g>")
    for i, f in placed:
        side = "buy" if f["side"] == "buy" else "sell"
        cx, cy, s = x(i), y(f["price"]), 7.0
        # The apex at the price: a buy's triangle stands below it, a sell's hangs above it.
        path = (f"M{cx:.1f},{cy:.1f} L{cx - s:.1f},{cy + 1.6 * s:.1f} L{cx + s:.1f},{cy + 1.6 * s:.1f} Z"
                if side == "buy" else
                f"M{cx:.1f},{cy:.1f} L{cx - s:.1f},{cy - 1.6 * s:.1f} L{cx + s:.1f},{cy - 1.6 * s:.1f} Z")
        title = f"{side} {shares(f['volume'])} shares @ {price(f['price'])} yuan, {f['time']}"
        parts.append(f"<g class='fill {side}' data-side='{side}' data-trade-id='{esc(f.get('trade_id'))}'>"
                     f"<title>{esc(title)}</title><path d='{path}' fill='{'#1f3fbf' if side == 'buy' else '#e08a00'}' "
                     f"stroke='#000' stroke-width='0.5'/></g>")
    parts.append("</svg>")
    left_out = len(fills) - len(placed)
    caption = (f"<p id='chart-caption'>{esc(code)} {esc(period)}: {len(bars)} bars, {len(placed)} fills marked"
               + (f" ({left_out} outside these bars)" if left_out else "") + " (▲ buy, ▼ sell)</p>")
    return "".join(parts) + caption
