"""How the console writes values for a person: escaped, money in yuan to the fen, shares as integers.

The worker's JSON carries money as numbers rounded to the fen. Python reads each as the float whose
shortest repr is the figure the worker wrote, so going through that repr to Decimal (domain.money)
gets the exact figure back: 0.1 + 0.2 never shows as 0.30000000000000004, and 1e6 shows as
1,000,000.00. Which field is money, a price or shares is said here once, by its wire name.
"""

from __future__ import annotations

import html
from decimal import Decimal
from typing import Any

from ..domain.errors import InvalidArgument
from ..domain.money import round_fen, to_decimal

MONEY = frozenset({
    "cash", "frozen_cash", "market_value", "total_asset", "amount", "commission", "stamp_duty", "transfer_fee",
    "total", "unrealized_pnl", "realized_pnl", "baseline_total_asset", "current_total_asset", "daily_pnl",
    "max_order_value", "max_daily_turnover", "max_daily_loss", "turnover_today",
})
PRICE = frozenset({"price", "avg_price", "last_price", "traded_price", "open", "high", "low", "close", "last",
                   "pre_close", "up_limit", "down_limit"})
SHARES = frozenset({"volume", "can_use_volume", "traded_volume"})


def esc(value: Any) -> str:
    """Text for HTML: everything from the broker, the market or a person is escaped, quotes too."""
    return html.escape("" if value is None else str(value), quote=True)


def _exact(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        return to_decimal(value, "value")
    except InvalidArgument:
        return None


def yuan(value: Any) -> str:
    """Money: `1,234,567.80` (yuan, half-up to the fen, thousands separated; no "-0.00")."""
    d = _exact(value)
    if d is None:
        return "" if value is None else str(value)
    fen = round_fen(d)
    return f"{abs(fen) if fen == 0 else fen:,.2f}"


def price(value: Any) -> str:
    """A price in yuan per share: at least two decimals, more where the tick has them (ETFs: 0.001)."""
    d = _exact(value)
    if d is None:
        return "" if value is None else str(value)
    return f"{d:.2f}" if d == round_fen(d) else f"{d.normalize():f}"


def shares(value: Any) -> str:
    d = _exact(value)
    if d is None or d != d.to_integral_value():
        return "" if value is None else str(value)
    return str(int(d))


def text(key: str, value: Any) -> str:
    """`value` of the field `key` as a person reads it (not yet escaped)."""
    if key in MONEY:
        return yuan(value)
    if key in PRICE:
        return price(value)
    if key in SHARES:
        return shares(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else str(value)


def cell(key: str, value: Any) -> str:
    """One table cell's contents: formatted and escaped, money and shares right-aligned."""
    cls = " class='num'" if key in MONEY or key in PRICE or key in SHARES else ""
    return f"<td{cls} data-field='{esc(key)}'>{esc(text(key, value))}</td>"


def table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    if not rows:
        return "<p>none</p>"
    cols = columns or list(dict.fromkeys(k for r in rows for k in r if not isinstance(r[k], dict | list)))
    head = "".join(f"<th>{esc(c)}{' (yuan)' if c in MONEY else ''}</th>" for c in cols)
    body = "".join("<tr>" + "".join(cell(c, r.get(c)) for c in cols) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def pairs(d: dict[str, Any]) -> str:
    rows = "".join(f"<tr><th>{esc(k)}{' (yuan)' if k in MONEY else ''}</th>{cell(k, v)}</tr>" for k, v in d.items())
    return f"<table>{rows}</table>"
