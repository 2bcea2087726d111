"""Order requests, records, trades and events: the values that cross every layer."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
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


# xtconstant price types.
FIX_PRICE = 11
MARKET_PRICE_TYPES: dict[tuple[Exchange, MarketType], int] = {
    (Exchange.SH, MarketType.BEST5_CANCEL): 42,
    (Exchange.BJ, MarketType.BEST5_CANCEL): 42,
    (Exchange.SH, MarketType.BEST5_LIMIT): 43,
    (Exchange.BJ, MarketType.BEST5_LIMIT): 43,
    (Exchange.SH, MarketType.COUNTERPARTY_BEST): 44,
    (Exchange.SZ, MarketType.COUNTERPARTY_BEST): 44,
    (Exchange.BJ, MarketType.COUNTERPARTY_BEST): 44,
    (Exchange.SH, MarketType.OWN_BEST): 45,
    (Exchange.SZ, MarketType.OWN_BEST): 45,
    (Exchange.BJ, MarketType.OWN_BEST): 45,
    (Exchange.SZ, MarketType.IOC): 46,
    (Exchange.SZ, MarketType.BEST5_CANCEL): 47,
    (Exchange.SZ, MarketType.FOK): 48,
}

CLIENT_ORDER_ID = re.compile(r"^[A-Za-z0-9_-]{1,24}$")
MAX_VOLUME = 10_000_000


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

    @property
    def price_type(self) -> int:
        if self.order_type is OrderType.LIMIT:
            return FIX_PRICE
        market_type = self.market_type or MarketType.BEST5_CANCEL
        return MARKET_PRICE_TYPES[(exchange_of(self.code), market_type)]

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
    """Normalize raw order arguments; InvalidArgument / ORDER_TYPE_UNSUPPORTED on bad input."""
    account = args.get("account")
    if not isinstance(account, str) or not account.strip():
        raise InvalidArgument("account is required", details={"argument": "account"})
    code = normalize_code(args.get("code"))
    side = _enum(Side, args.get("side"), "side")
    volume = args.get("volume")
    if isinstance(volume, float) and volume.is_integer():
        volume = int(volume)
    if not isinstance(volume, int) or isinstance(volume, bool):
        raise InvalidArgument("volume must be a whole number of shares", details={"argument": "volume"})
    if volume <= 0 or volume > MAX_VOLUME:
        raise InvalidArgument(
            f"volume must be between 1 and {MAX_VOLUME} shares", details={"argument": "volume"}
        )
    order_type = _enum(OrderType, args.get("order_type") or "limit", "order_type")
    raw_price = args.get("price")
    price = None if raw_price is None else to_decimal(raw_price, "price")
    if price is not None and price <= 0:
        raise InvalidArgument("price must be positive (yuan per share)", details={"argument": "price"})
    market_type: MarketType | None = None
    if order_type is OrderType.LIMIT:
        if price is None:
            raise InvalidArgument(
                "a limit order needs a price (yuan per share)",
                hint="Give price, or use order_type='market'.",
                details={"argument": "price"},
            )
        if args.get("market_type") is not None:
            raise InvalidArgument(
                "market_type applies to market orders only", details={"argument": "market_type"}
            )
    else:
        market_type = _enum(MarketType, args.get("market_type") or "best5_cancel", "market_type")
        exchange = exchange_of(code)
        if (exchange, market_type) not in MARKET_PRICE_TYPES:
            raise OrderRefused(
                f"{market_type.value} market orders are not available on {exchange.value}",
                code=ErrorCode.ORDER_TYPE_UNSUPPORTED,
                details={"market_type": market_type.value, "exchange": exchange.value},
            )
        if exchange is Exchange.SZ and price is not None:
            raise InvalidArgument("Shenzhen market orders take no price", details={"argument": "price"})
    return OrderRequest(account.strip(), code, side, volume, order_type, price, market_type)


def check_client_order_id(raw: object) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not CLIENT_ORDER_ID.match(raw):
        raise InvalidArgument(
            "client_order_id must be 1-24 ASCII letters, digits, '-' or '_'",
            details={"argument": "client_order_id"},
        )
    return raw


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
        }
