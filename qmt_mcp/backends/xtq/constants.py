"""xtquant's numbers, and the only place they are written down.

The values are xtconstant.py's (wheel 250807.1.2) and xtdata's documented codes; the names follow
xtconstant where it has one. Everything else speaks the domain's enums (OrderStatus, OrderType,
MarketType, Side, Phase): the adapter (translate.py, adapter.py) and the stand-ins that play
xtquant's side over the simulator (simnative.py, simxtdata.py) translate through the tables and
functions here, so a number that changes upstream changes in one line.

One number crosses the port on purpose: the contract's `Order.price_type` is xtquant's price type
whichever backend runs (CONTRACT.md). `xt_price_type()` is how anyone above this package gets it,
and nothing up there reads it back: it is shown, never decided on.
"""

from __future__ import annotations

from ...domain.codes import Exchange, exchange_of
from ...domain.events import AccountStatus
from ...domain.orders import MarketType, OrderType, Side
from ...domain.sessions import Phase
from ...domain.status import OrderStatus

# ----- return codes of xtquant's calls: connect(), subscribe, cancel results; an order id of -1
OK = 0
FAILED = -1

# ----- account types (StockAccount(id, "STOCK"|"CREDIT"); XtAccountInfo.broker_type is the same)
SECURITY_ACCOUNT = 2
CREDIT_ACCOUNT = 3
ACCOUNT_TYPES: dict[str, int] = {"STOCK": SECURITY_ACCOUNT, "CREDIT": CREDIT_ACCOUNT}

# ----- account status (on_account_status, query_account_status; XtAccountInfo.login_status)
ACCOUNT_STATUS_INVALID = -1
ACCOUNT_STATUS_OK = 0
ACCOUNT_STATUS_WAITING_LOGIN = 1
ACCOUNT_STATUSING = 2   # logging in (xtconstant's spelling)
ACCOUNT_STATUS_FAIL = 3
ACCOUNT_STATUS_INITING = 4
ACCOUNT_STATUS_CORRECTING = 5
ACCOUNT_STATUS_CLOSED = 6
ACCOUNT_STATUS_ASSIS_FAIL = 7
ACCOUNT_STATUS_DISABLEBYSYS = 8
ACCOUNT_STATUS_DISABLEBYUSER = 9
# As the words of the `account_status` event (a number not here is AccountStatus.UNKNOWN).
ACCOUNT_STATUS: dict[int, AccountStatus] = {
    ACCOUNT_STATUS_INVALID: AccountStatus.INVALID,
    ACCOUNT_STATUS_OK: AccountStatus.OK,
    ACCOUNT_STATUS_WAITING_LOGIN: AccountStatus.WAITING_LOGIN,
    ACCOUNT_STATUSING: AccountStatus.LOGGING_IN,
    ACCOUNT_STATUS_FAIL: AccountStatus.FAILED,
    ACCOUNT_STATUS_INITING: AccountStatus.INITIALIZING,
    ACCOUNT_STATUS_CORRECTING: AccountStatus.CORRECTING,
    ACCOUNT_STATUS_CLOSED: AccountStatus.CLOSED,
    ACCOUNT_STATUS_ASSIS_FAIL: AccountStatus.ASSIST_FAILED,
    ACCOUNT_STATUS_DISABLEBYSYS: AccountStatus.DISABLED_BY_SYSTEM,
    ACCOUNT_STATUS_DISABLEBYUSER: AccountStatus.DISABLED_BY_USER,
}


# ----- markets (XtCancelError.market, cancel_order_stock_sysid)
SH_MARKET = 0
SZ_MARKET = 1
MARKET_ENUM_BEIJING = 70
MARKETS: dict[Exchange, int] = {Exchange.SH: SH_MARKET, Exchange.SZ: SZ_MARKET, Exchange.BJ: MARKET_ENUM_BEIJING}

# ----- order types (XtOrder.order_type, XtTrade.order_type): what side a stock order is on
STOCK_BUY = 23
STOCK_SELL = 24
ORDER_TYPES: dict[Side, int] = {Side.BUY: STOCK_BUY, Side.SELL: STOCK_SELL}

# ----- direction and offset flags (XtOrder/XtTrade/XtPosition.direction, offset_flag)
DIRECTION_FLAG_LONG = 48
OFFSET_FLAG_OPEN = 48
OFFSET_FLAG_CLOSE = 49

# ----- price types (order_stock's price_type, XtOrder.price_type)
LATEST_PRICE = 5   # a limit order at the latest price (typed by hand in QMT; we never send it)
FIX_PRICE = 11     # limit
MARKET_SH_CONVERT_5_CANCEL = 42      # SH/BJ best five levels, rest canceled
MARKET_SH_CONVERT_5_LIMIT = 43       # SH/BJ best five levels, rest becomes a limit order
MARKET_PEER_PRICE_FIRST = 44         # counterparty best (SH/SZ/BJ)
MARKET_MINE_PRICE_FIRST = 45         # own-side best (SH/SZ/BJ)
MARKET_SZ_INSTBUSI_RESTCANCEL = 46   # SZ immediate or cancel, every level
MARKET_SZ_CONVERT_5_CANCEL = 47      # SZ best five levels, rest canceled
MARKET_SZ_FULL_OR_CANCEL = 48        # SZ fill or kill
# Keyed by the domain's MARKET_TYPES (the market orders each exchange has); a test holds the two equal.
MARKET_PRICE_TYPES: dict[tuple[Exchange, MarketType], int] = {
    (Exchange.SH, MarketType.BEST5_CANCEL): MARKET_SH_CONVERT_5_CANCEL,
    (Exchange.BJ, MarketType.BEST5_CANCEL): MARKET_SH_CONVERT_5_CANCEL,
    (Exchange.SH, MarketType.BEST5_LIMIT): MARKET_SH_CONVERT_5_LIMIT,
    (Exchange.BJ, MarketType.BEST5_LIMIT): MARKET_SH_CONVERT_5_LIMIT,
    (Exchange.SH, MarketType.COUNTERPARTY_BEST): MARKET_PEER_PRICE_FIRST,
    (Exchange.SZ, MarketType.COUNTERPARTY_BEST): MARKET_PEER_PRICE_FIRST,
    (Exchange.BJ, MarketType.COUNTERPARTY_BEST): MARKET_PEER_PRICE_FIRST,
    (Exchange.SH, MarketType.OWN_BEST): MARKET_MINE_PRICE_FIRST,
    (Exchange.SZ, MarketType.OWN_BEST): MARKET_MINE_PRICE_FIRST,
    (Exchange.BJ, MarketType.OWN_BEST): MARKET_MINE_PRICE_FIRST,
    (Exchange.SZ, MarketType.IOC): MARKET_SZ_INSTBUSI_RESTCANCEL,
    (Exchange.SZ, MarketType.BEST5_CANCEL): MARKET_SZ_CONVERT_5_CANCEL,
    (Exchange.SZ, MarketType.FOK): MARKET_SZ_FULL_OR_CANCEL,
}
# Each price type names one market type (42 and 47 are best-5-then-cancel on their exchanges), so a
# counter can read the type back without knowing the exchange.
_MARKET_TYPE_OF: dict[int, MarketType] = {pt: mt for (_, mt), pt in MARKET_PRICE_TYPES.items()}


def xt_price_type(order_type: OrderType, market_type: MarketType | None, code: str) -> int:
    """xtquant's price type for an order of `code` (canonical, 600000.SH); a market order without a
    type is best-5-then-cancel, as the order parser defaults it. KeyError for a market type the
    code's exchange does not have (the parser refuses those first)."""
    if order_type is OrderType.LIMIT:
        return FIX_PRICE
    return MARKET_PRICE_TYPES[(exchange_of(code), market_type or MarketType.BEST5_CANCEL)]


def order_type_of(price_type: int) -> OrderType:
    """A reported price type in the domain's terms: only FIX_PRICE is a limit order (LATEST_PRICE and
    the other types QMT offers by hand count as market orders, as they always have here)."""
    return OrderType.LIMIT if price_type == FIX_PRICE else OrderType.MARKET


def market_type_of(price_type: int) -> MarketType | None:
    """The market type a price type names, or None (a limit order, or a type we never send)."""
    return _MARKET_TYPE_OF.get(price_type)


# ----- order status (XtOrder.order_status)
ORDER_UNREPORTED = 48
ORDER_WAIT_REPORTING = 49
ORDER_REPORTED = 50
ORDER_REPORTED_CANCEL = 51
ORDER_PARTSUCC_CANCEL = 52
ORDER_PART_CANCEL = 53
ORDER_CANCELED = 54
ORDER_PART_SUCC = 55
ORDER_SUCCEEDED = 56
ORDER_JUNK = 57
ORDER_UNKNOWN = 255
XT_STATUS: dict[int, OrderStatus] = {
    ORDER_UNREPORTED: OrderStatus.UNREPORTED,
    ORDER_WAIT_REPORTING: OrderStatus.WAIT_REPORTING,
    ORDER_REPORTED: OrderStatus.REPORTED,
    ORDER_REPORTED_CANCEL: OrderStatus.REPORTED_CANCEL,
    ORDER_PARTSUCC_CANCEL: OrderStatus.PARTSUCC_CANCEL,
    ORDER_PART_CANCEL: OrderStatus.PART_CANCEL,
    ORDER_CANCELED: OrderStatus.CANCELED,
    ORDER_PART_SUCC: OrderStatus.PART_SUCC,
    ORDER_SUCCEEDED: OrderStatus.SUCCEEDED,
    ORDER_JUNK: OrderStatus.JUNK,
    ORDER_UNKNOWN: OrderStatus.UNKNOWN,
}
# The local statuses (pending_submit, indeterminate) have no code: no broker ever reports them.
STATUS_XT: dict[OrderStatus, int] = {v: k for k, v in XT_STATUS.items()}


def from_xt(order_status: int) -> OrderStatus:
    """The domain's status for a reported code; a code xtquant may add later reads as unknown."""
    return XT_STATUS.get(order_status, OrderStatus.UNKNOWN)


# ----- xtdata
LOT = 100   # xtdata reports stock volumes in lots (手) of 100 shares
# get_full_tick's stockStatus (doc/xtdata.md 证券状态): the codes quotes are read with.
STOCK_PRE_OPEN = 11
STOCK_CALL_AUCTION = 12
STOCK_TRADING = 13
STOCK_BREAK = 14
STOCK_CLOSED = 15
STOCK_SUSPENDED = 17
STOCK_CLOSING_AUCTION = 18
STOCK_STATUS: dict[int, str] = {
    STOCK_PRE_OPEN: "pre_open", STOCK_CALL_AUCTION: "opening_auction", STOCK_TRADING: "trading",
    STOCK_BREAK: "lunch_break", STOCK_CLOSED: "closed", STOCK_SUSPENDED: "suspended",
    STOCK_CLOSING_AUCTION: "closing_auction",
}
# The stockStatus xtdata shows in each session phase (the stand-in's side of STOCK_STATUS).
PHASE_STOCK_STATUS: dict[Phase, int] = {
    Phase.CLOSED: STOCK_CLOSED, Phase.OPENING_AUCTION: STOCK_CALL_AUCTION,
    Phase.OPENING_AUCTION_NO_CANCEL: STOCK_CALL_AUCTION, Phase.PRE_OPEN_HOLD: STOCK_CALL_AUCTION,
    Phase.CONTINUOUS: STOCK_TRADING, Phase.LUNCH_BREAK: STOCK_BREAK, Phase.CLOSING_AUCTION: STOCK_CLOSING_AUCTION,
}
