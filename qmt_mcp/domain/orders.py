"""Order requests, records, trades and events: the values that cross every layer."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from .codes import Exchange, exchange_of, normalize_code
from .errors import ErrorCode, InvalidArgument, OrderRefused
from .money import to_decimal
from .status import OrderStatus, advance


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    LIMIT = "limit"
    MARKET = "market"


class MarketType(StrEnum):
    BEST5_CANCEL = "best5_cancel"
    BEST5_LIMIT = "best5_limit"
    COUNTERPARTY_BEST = "counterparty_best"
    OWN_BEST = "own_best"
    IOC = "ioc"
    FOK = "fok"


# The market order types each exchange has (SSE/SZSE/BSE rules). xtquant's number for each pair is
# backends/xtq/constants.py's: the domain names order types, a vendor numbers them.
MARKET_TYPES: frozenset[tuple[Exchange, MarketType]] = frozenset({
    (Exchange.SH, MarketType.BEST5_CANCEL), (Exchange.BJ, MarketType.BEST5_CANCEL),
    (Exchange.SH, MarketType.BEST5_LIMIT), (Exchange.BJ, MarketType.BEST5_LIMIT),
    (Exchange.SH, MarketType.COUNTERPARTY_BEST), (Exchange.SZ, MarketType.COUNTERPARTY_BEST),
    (Exchange.BJ, MarketType.COUNTERPARTY_BEST),
    (Exchange.SH, MarketType.OWN_BEST), (Exchange.SZ, MarketType.OWN_BEST), (Exchange.BJ, MarketType.OWN_BEST),
    (Exchange.SZ, MarketType.IOC), (Exchange.SZ, MarketType.BEST5_CANCEL), (Exchange.SZ, MarketType.FOK),
})

# The market types that carry a protective price (the worst price they may trade at; without one the
# counter uses the daily limit). Own-best and counterparty-best are priced from the book alone on
# every exchange, and no Shenzhen market order takes a price, so a price sent with one would bound
# nothing: it is refused rather than shown to a person as a bound it is not.
PROTECTIVE_PRICE: frozenset[tuple[Exchange, MarketType]] = frozenset({
    (Exchange.SH, MarketType.BEST5_CANCEL), (Exchange.SH, MarketType.BEST5_LIMIT),
    (Exchange.BJ, MarketType.BEST5_CANCEL), (Exchange.BJ, MarketType.BEST5_LIMIT),
})

CLIENT_ORDER_ID = re.compile(r"^[A-Za-z0-9_-]{1,24}$")
# Orders typed by hand at the counter are recorded as `ext-<order id>`: agents may not use the prefix,
# so an agent's id can never be taken by (or take) an imported order.
EXTERNAL_PREFIX = "ext-"
MAX_VOLUME = 10_000_000
# How far the counter's clock may lag ours and still have a broker order be the one we recorded
# (the order reaches the counter after we record it, so a broker time well before the record is
# another order; generous, because refusing our own order would import it as a stranger's); and how
# long after the record a broker order may still be it (A-share orders live one trading day).
CLOCK_SKEW = timedelta(hours=1)
ORDER_LIFETIME = timedelta(hours=16)


def takes_protective_price(code: str, market_type: MarketType) -> bool:
    """Whether a market order of this type on this code's exchange is bounded by its `price`."""
    return (exchange_of(code), market_type) in PROTECTIVE_PRICE


def _enum(enum: type[StrEnum], raw: object, argument: str) -> Any:
    if isinstance(raw, str):
        try:
            return enum(raw.strip().lower())
        except ValueError:
            pass
    allowed = ", ".join(m.value for m in enum)
    raise InvalidArgument(
        f"{argument} must be one of {allowed}", hint=f"Use one of: {allowed}.", details={"argument": argument}
    )


@dataclass(frozen=True)
class OrderRequest:
    """A normalized order: canonical code, int shares, Decimal price (None for market without protection)."""

    account: str
    code: str
    side: Side
    volume: int
    order_type: OrderType
    price: Decimal | None
    market_type: MarketType | None

    def fingerprint(self) -> dict[str, str]:
        """The fields an idempotency key and a confirm token are bound to."""
        return {
            "account": self.account,
            "code": self.code,
            "side": self.side.value,
            "volume": str(self.volume),
            "price": "" if self.price is None else format(self.price.normalize(), "f"),
            "order_type": self.order_type.value,
            "market_type": "" if self.market_type is None else self.market_type.value,
        }


def parse_order_request(args: dict[str, Any]) -> OrderRequest:
    """An order from raw arguments, as typed by hand (scripts, tests): each one is parsed into its
    type here, then `order_request` applies the order's rules. The worker's arguments arrive checked
    by the catalogue's model (qmt_mcp/calls.py) and go to `order_request` directly.
    Raises InvalidArgument, or OrderRefused with ORDER_TYPE_UNSUPPORTED."""
    side = _enum(Side, args.get("side"), "side")
    volume = args.get("volume")
    if isinstance(volume, float) and volume.is_integer():
        volume = int(volume)
    if not isinstance(volume, int) or isinstance(volume, bool):
        raise InvalidArgument("volume must be a whole number of shares", details={"argument": "volume"})
    order_type = _enum(OrderType, args.get("order_type") or "limit", "order_type")
    raw_price = args.get("price")
    price = None if raw_price is None else to_decimal(raw_price, "price")
    if price is not None and price <= 0:
        raise InvalidArgument("price must be positive (yuan per share)", details={"argument": "price"})
    raw_type = args.get("market_type")
    market_type = None if raw_type is None else _enum(MarketType, raw_type or "best5_cancel", "market_type")
    return order_request(args.get("account"), args.get("code"), side, volume, order_type, price, market_type)


def order_request(
    account: object, code: object, side: Side, volume: int, order_type: OrderType, price: Decimal | None,
    market_type: MarketType | None,
) -> OrderRequest:
    """The normalized order from typed fields (`price` yuan per share, `volume` shares), with the
    rules no argument type can state: the account named, the code in one of its forms, at most
    MAX_VOLUME shares, and what each order type and exchange take (a limit order's price, a market
    order's type and protective price). Raises InvalidArgument, or OrderRefused with
    ORDER_TYPE_UNSUPPORTED."""
    if not isinstance(account, str) or not account.strip():
        raise InvalidArgument("account is required", details={"argument": "account"})
    canon = normalize_code(code)
    if volume <= 0 or volume > MAX_VOLUME:
        # The domain's own bound (an order's size at the counter), which no argument model repeats.
        raise InvalidArgument(
            f"volume must be between 1 and {MAX_VOLUME} shares", details={"argument": "volume"}
        )
    if order_type is OrderType.LIMIT:
        if price is None:
            raise InvalidArgument(
                "a limit order needs a price (yuan per share)",
                hint="Give price, or use order_type='market'.",
                details={"argument": "price"},
            )
        if market_type is not None:
            raise InvalidArgument(
                "market_type applies to market orders only", details={"argument": "market_type"}
            )
    else:
        market_type = market_type or MarketType.BEST5_CANCEL
        exchange = exchange_of(canon)
        if (exchange, market_type) not in MARKET_TYPES:
            raise OrderRefused(
                f"{market_type.value} market orders are not available on {exchange.value}",
                code=ErrorCode.ORDER_TYPE_UNSUPPORTED,
                details={"market_type": market_type.value, "exchange": exchange.value},
            )
        if price is not None and (exchange, market_type) not in PROTECTIVE_PRICE:
            if exchange is Exchange.SZ:
                raise InvalidArgument("Shenzhen market orders take no price", details={"argument": "price"})
            raise InvalidArgument(
                f"{market_type.value} market orders on {exchange.value} take no protective price: the exchange "
                "prices them from the book, up to the daily limit",
                hint="Drop price (the order is then costed at the daily limit), or use best5_cancel or "
                     "best5_limit with a protective price, or a limit order.",
                details={"argument": "price", "market_type": market_type.value},
            )
    return OrderRequest(account.strip(), canon, side, volume, order_type, price, market_type)


def check_client_order_id(raw: object) -> str | None:
    """A well-formed client_order_id to look an order up by (imported `ext-` ids included)."""
    if raw is None:
        return None
    if not isinstance(raw, str) or not CLIENT_ORDER_ID.match(raw):
        raise InvalidArgument(
            "client_order_id must be 1-24 ASCII letters, digits, '-' or '_'",
            details={"argument": "client_order_id"},
        )
    return raw


def check_new_client_order_id(raw: object) -> str | None:
    """A client_order_id an agent may give a new order: well-formed and not of the reserved `ext-` form."""
    return check_not_reserved(check_client_order_id(raw))


def check_not_reserved(cid: str | None) -> str | None:
    """`cid` (well-formed already) unless it is of the reserved `ext-` form: InvalidArgument then."""
    if cid is not None and is_reserved_id(cid):
        raise InvalidArgument(
            f"client_order_id may not start with {EXTERNAL_PREFIX!r}: that form names orders typed by hand",
            hint="Choose another client_order_id (1-24 letters, digits, - _ not starting with 'ext-').",
            details={"argument": "client_order_id"},
        )
    return cid


def is_reserved_id(cid: str) -> bool:
    return cid[: len(EXTERNAL_PREFIX)].lower() == EXTERNAL_PREFIX


def client_id_of_remark(remark: str) -> str | None:
    """The client_order_id a broker remark names, or None: only a well-formed id is one."""
    return remark if CLIENT_ORDER_ID.match(remark) else None


@dataclass(frozen=True)
class OrderRecord:
    """The worker's record of one order. `order_id` is the broker's id once it has one."""

    account: str
    client_order_id: str
    code: str
    name: str
    side: Side
    order_type: OrderType
    market_type: MarketType | None
    # The contract's `price_type`, xtquant's number for the order (CONTRACT.md), kept in the record so
    # the journal and the wire show what was sent or, for an order typed by hand, what the broker
    # reported (a type we have no name for). Set from backends/xtq/constants.py; never read here.
    price_type: int
    price: Decimal
    volume: int
    status: OrderStatus
    created_at: str
    order_id: int | None = None
    traded_volume: int = 0
    traded_amount: Decimal = Decimal(0)
    status_msg: str = ""
    live: bool = False
    fingerprint: dict[str, str] = field(default_factory=dict)
    cancel_requested_at: str = ""   # when a cancel was last sent for it (ISO), "" never
    # Where a person must decide it (worker/approvals.py): {approval_id, expires_at, channels, hint};
    # kept after the decision, so the record says it waited. None: it never needed one.
    approval: dict[str, Any] | None = None

    @property
    def external(self) -> bool:
        """An order the broker had that we never placed (typed by hand in QMT), imported."""
        return self.fingerprint.get("external") == "true"

    def fits(self, code: str, side: Side, volume: int, at: datetime) -> bool:
        """Whether a broker order with these fields, placed at `at`, can be the order of this record.

        An imported record was made from the broker's own order, so its time is the broker's to the
        second; ours is stamped just before sending, so the broker's comes after it (give or take the
        counter's clock) and within the order's day."""
        if volume != self.volume:
            return False
        if self.external:
            return (code, side) == (self.code, self.side) and abs(at - self._created()) < timedelta(seconds=1)
        return self.fits_fill(code, side, at)

    def fits_fill(self, code: str, side: Side, at: datetime) -> bool:
        """Whether a fill of `code` on `side` at `at` can be one of this order's."""
        created = self._created()
        return (code, side) == (self.code, self.side) and created - CLOCK_SKEW <= at <= created + ORDER_LIFETIME

    def _created(self) -> datetime:
        return datetime.fromisoformat(self.created_at)

    def advanced(self, status: OrderStatus, **changes: Any) -> OrderRecord:
        """A copy in the new status; IllegalTransition leaves this record as it was."""
        return replace(self, status=advance(self.status, status), **changes)

    @property
    def traded_price(self) -> Decimal:
        if self.traded_volume == 0:
            return Decimal(0)
        return (self.traded_amount / self.traded_volume).quantize(Decimal("0.001"))

    def to_wire(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "client_order_id": self.client_order_id,
            "code": self.code,
            "name": self.name,
            "side": self.side.value,
            "order_type": self.order_type.value,
            "price_type": self.price_type,
            "price": float(self.price),
            "volume": self.volume,
            "traded_volume": self.traded_volume,
            "traded_price": float(self.traded_price),
            "status": self.status.value,
            "status_msg": self.status_msg,
            "time": self.created_at,
            "live": self.live,
            **({"approval": self.approval} if self.approval is not None else {}),
        }
