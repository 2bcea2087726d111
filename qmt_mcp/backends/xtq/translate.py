"""xtquant's values translated to the broker port's, at this boundary only.

xtquant reports prices as floats (rounded here to the 0.001 yuan the exchanges quote in), times as
epoch seconds, sides as order types, order types as price types and statuses as codes, all of them
numbers of constants.py's, turned into the domain's enums here. Every string from
the broker (names, messages, remarks, codes, trade ids) is cleaned here (domain/text.py): it is data,
and may have been typed by anyone.

Two figures need more care than a price:
- A position's cost. XtPosition has per-share prices only: `open_price` (开仓价, the average fill
  price) and `avg_price` (成本价, fees included). They are averages, not quotes, so they are read
  unrounded (a double carries the cost to far below the fen) and multiplied back by the volume to
  the fen: the cost basis is exact wherever the broker's own figure is.
- A fill's fees. XtTrade has one `commission` (手续费): all the fees of the fill. It is kept as the
  total and itemized with the statutory stamp duty and transfer fee (domain/fees.py `split_fees`),
  marked `fee_detail = "derived"`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from ...domain.codes import board_of
from ...domain.fees import split_fees
from ...domain.money import round_fen
from ...domain.orders import Side
from ...domain.text import clean_text
from ...domain.timeutil import CN_TZ
from ..port import Asset, BrokerOrder, BrokerTrade, Position
from .constants import STOCK_BUY, from_xt, market_type_of, order_type_of

LI = Decimal("0.001")


def money(x: Any) -> Decimal:
    return Decimal(str(round(float(x or 0), 3))).quantize(LI)


def fen(x: Any) -> Decimal:
    return Decimal(str(round(float(x or 0), 2))).quantize(Decimal("0.01"))


def average(x: Any) -> Decimal:
    """A per-share average (cost price) as the broker computed it: the double's shortest repr."""
    return Decimal(repr(float(x or 0)))


def when(epoch: Any) -> datetime:
    return datetime.fromtimestamp(int(epoch or 0), CN_TZ)


def order(o: Any) -> BrokerOrder:
    traded, price_type = int(o.traded_volume or 0), int(o.price_type)
    return BrokerOrder(
        account_id=str(o.account_id), order_id=int(o.order_id), code=code(o.stock_code),
        name=clean_text(str(getattr(o, "instrument_name", "") or "")),
        side=_side(o.order_type), volume=int(o.order_volume), order_type=order_type_of(price_type),
        market_type=market_type_of(price_type), price=money(o.price), traded_volume=traded,
        traded_amount=fen(float(o.traded_price or 0) * traded), status=from_xt(int(o.order_status)),
        status_msg=clean_text(str(o.status_msg or "")), remark=remark(o.order_remark), time=when(o.order_time),
        price_type=price_type,   # shown as reported: an order typed by hand may be of a type we have no name for
    )


def trade(t: Any) -> BrokerTrade:
    side = _side(t.order_type)
    stock, amount, at = code(t.stock_code), fen(t.traded_amount), when(t.traded_time)
    fees = split_fees(fen(getattr(t, "commission", 0)), board_of(stock), side.value, amount, at.date())
    return BrokerTrade(
        account_id=str(t.account_id), trade_id=clean_text(str(t.traded_id or ""), 64), order_id=int(t.order_id),
        remark=remark(t.order_remark), code=stock, side=side, price=money(t.traded_price),
        volume=int(t.traded_volume), amount=amount, commission=fees.commission, stamp_duty=fees.stamp_duty,
        transfer_fee=fees.transfer_fee, time=at, fee_detail="derived",
    )


def _side(order_type: Any) -> Side:
    # This gateway sends only STOCK_BUY and STOCK_SELL, so anything that is not a buy is a sell.
    return Side.BUY if int(order_type) == STOCK_BUY else Side.SELL


def asset(a: Any) -> Asset:
    return Asset(cash=fen(a.cash), frozen_cash=fen(a.frozen_cash), market_value=fen(a.market_value),
                 total_asset=fen(a.total_asset))


def position(p: Any) -> Position:
    volume = int(p.volume)
    cost_price = average(p.avg_price)
    # Some counters leave 开仓价 empty; the cost price is then the best fill average there is.
    fill_price = average(getattr(p, "open_price", 0)) or cost_price
    return Position(code=code(p.stock_code), name=clean_text(str(getattr(p, "instrument_name", "") or "")),
                    volume=volume, can_use_volume=int(p.can_use_volume), last_price=money(getattr(p, "last_price", 0)),
                    fill_cost=round_fen(fill_price * volume), cost=round_fen(cost_price * volume))


def clean(text: Any) -> str:
    return clean_text(str(text or ""))


def remark(text: Any) -> str:
    """The order remark, cleaned like all broker text; it is an id only where it is a well-formed one
    (the worker decides), so nothing else of it matters (QMT keeps 24 bytes)."""
    return clean_text(str(text or ""), 64)


def code(text: Any) -> str:
    return clean_text(str(text or ""), 16)
