"""How the simulated exchange prices each order type, and what a market order does with what the book
could not fill at once.

The exchange's rule, from the domain's table (`PROTECTIVE_PRICE`): SH/BJ best-5 market orders trade
no worse than their protective price (none: the daily limit); own-best and counterparty-best take one
price from the book and ignore any price sent with them, as does every Shenzhen market order.
"""

from __future__ import annotations

from decimal import Decimal
from enum import Enum

from ...domain.instruments import Instrument
from ...domain.market import Quote
from ...domain.orders import MarketType, OrderRequest, OrderType, Side, takes_protective_price
from ...domain.sessions import ACCEPTS_ORDERS, Phase, describe
from .paper import SimOrder


class Rest(Enum):
    """What the unfilled rest of a market order becomes."""

    STAYS = "stays"          # rests as a limit order at the price it took
    AT_LAST_FILL = "limit"   # becomes a limit order at its last fill price
    CANCELED = "canceled"


def limit_price(req: OrderRequest, inst: Instrument, quote: Quote) -> Decimal | None:
    """The worst price an order may trade at; None when the book offers it no price at all."""
    if req.order_type is OrderType.LIMIT:
        return req.price
    buy = req.side is Side.BUY
    mt = req.market_type or MarketType.BEST5_CANCEL
    if mt is MarketType.COUNTERPARTY_BEST:
        side = quote.asks if buy else quote.bids
        return side[0].price if side else None
    if mt is MarketType.OWN_BEST:
        side = quote.bids if buy else quote.asks
        return side[0].price if side else None
    # Best-5 / IOC / FOK: trade through the book, bounded by the protective price where the type takes
    # one, else by the daily limit; with neither (a new listing), by whatever the five levels hold.
    if req.price is not None and takes_protective_price(req.code, mt):
        return req.price
    bound = inst.up_limit if buy else inst.down_limit
    if bound is None:
        levels = quote.asks if buy else quote.bids
        return levels[-1].price if levels else None
    return bound


def session_refusal(o: SimOrder, phase: Phase) -> str | None:
    if phase not in ACCEPTS_ORDERS:
        return f"非交易时间 {describe(phase)}"
    if o.order_type is OrderType.MARKET and phase is not Phase.CONTINUOUS:
        return "集合竞价不接受市价委托 market orders are taken only in the continuous auction"
    return None


def after_sweep(o: SimOrder) -> Rest:
    """What a market order does with volume the book could not fill at once."""
    mt = o.market_type
    if mt in (MarketType.COUNTERPARTY_BEST, MarketType.OWN_BEST):
        return Rest.STAYS
    if mt is MarketType.BEST5_LIMIT and o.traded_volume:
        return Rest.AT_LAST_FILL
    return Rest.CANCELED
