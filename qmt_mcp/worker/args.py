"""What the worker checks of a call's arguments beyond their model, and the order they describe.

Every type and bound is the catalogue's (qmt_mcp/calls.py), checked before a handler runs. What is
left here: an account name and text that must say something (a model bounds a string's length, not
whether it is blank; both are taken without surrounding spaces), the domain's order from place and
preview arguments, and the checks of the worker's own calls that have no model (latest_events,
note_gap). Every refusal is INVALID_ARGUMENT naming the argument.
"""

from __future__ import annotations

from typing import Any, overload

from ..calls import PreviewArgs
from ..domain.errors import InvalidArgument
from ..domain.money import to_decimal
from ..domain.orders import MarketType, OrderRequest, OrderType, Side, order_request

MAX_ACCOUNT_NAME = 64


def account_name(raw: object) -> str:
    """The account name given: a string of at most MAX_ACCOUNT_NAME characters, not blank."""
    if not isinstance(raw, str) or not raw.strip() or len(raw) > MAX_ACCOUNT_NAME:
        raise InvalidArgument(f"account is required (a string of at most {MAX_ACCOUNT_NAME} characters)",
                              details={"argument": "account"})
    return raw.strip()


@overload
def nonblank(raw: str, name: str) -> str: ...
@overload
def nonblank(raw: str | None, name: str) -> str | None: ...
def nonblank(raw: str | None, name: str) -> str | None:
    """`raw` without surrounding spaces (None stays None); InvalidArgument when nothing else is left."""
    if raw is None:
        return None
    if not raw.strip():
        raise InvalidArgument(f"{name} must not be blank", details={"argument": name})
    return raw.strip()


def order_of(args: PreviewArgs) -> OrderRequest:
    """The order that preview or place arguments describe: the model has checked each one; the domain
    adds the order's own rules (orders.order_request). The price becomes Decimal here, once."""
    price = None if args.price is None else to_decimal(args.price, "price")   # finite, from its shortest repr
    market_type = None if args.market_type is None else MarketType(args.market_type)
    return order_request(args.account, args.code, Side(args.side), args.volume, OrderType(args.order_type),
                         price, market_type)


def opt_int(args: dict[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    """For a call without a model: a whole number from `lo` to `hi`, `default` when not given."""
    raw = args.get(name)
    if raw is None:
        return default
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if not isinstance(raw, int) or isinstance(raw, bool) or not lo <= raw <= hi:
        raise InvalidArgument(f"{name} must be a whole number from {lo} to {hi}", details={"argument": name})
    return raw
