"""Conditional orders held by the gateway (CONTRACT.md 0.2): the `Condition` record, its lifecycle and
the trigger logic, pure.

miniQMT has no stop, take-profit or trailing orders; the worker holds them (worker/conditions.py) and
asks this module, for each new quote, whether a condition fires:

- `price_at_or_above` / `price_at_or_below`: the quote's last traded price against `price`. A level,
  not a crossing: a gap through the trigger (the price jumps from above it to well below it between
  two quotes) fires on the first quote beyond it, and the order then goes at its own price rules
  (a limit order at its price, clipped to the day's band and the cage; a market order at the book).
- `trailing_stop`: a stop that follows the market. For a sell, the high-water mark is the highest
  last price since arming and the stop sits `trail_percent` % or `trail_amount` yuan below it; for a
  buy, the mark is the lowest last price and the stop sits above it. The mark moves only one way.
- `time`: fires at or after `at` (Asia/Shanghai).
A condition without an order is an alert: it fires once (`condition_triggered` with no order).

Lifecycle: armed -> triggered | canceled | expired | failed, each once, in `TRANSITIONS`; a triggered
condition whose order could not go after a restart may still fail (its order was never sent). A
condition waiting for a person (`pending_approval`, where `[approval]` asks for one) becomes armed,
or canceled when denied or expired.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from .errors import ErrorCode, InternalError, InvalidArgument, OrderRefused
from .instruments import Instrument, cage_base, price_cage
from .orders import MarketType, OrderRequest, OrderType, Side, order_request
from .timeutil import iso


class TriggerType(StrEnum):
    PRICE_AT_OR_ABOVE = "price_at_or_above"
    PRICE_AT_OR_BELOW = "price_at_or_below"
    TRAILING_STOP = "trailing_stop"
    TIME = "time"


class ConditionStatus(StrEnum):
    PENDING_APPROVAL = "pending_approval"   # armed once a person approves (local; [approval] only)
    ARMED = "armed"
    TRIGGERED = "triggered"
    CANCELED = "canceled"
    EXPIRED = "expired"
    FAILED = "failed"


C = ConditionStatus
TRANSITIONS: dict[ConditionStatus, frozenset[ConditionStatus]] = {
    C.PENDING_APPROVAL: frozenset({C.ARMED, C.CANCELED}),
    C.ARMED: frozenset({C.TRIGGERED, C.CANCELED, C.EXPIRED, C.FAILED}),
    # Only the order of a triggered condition that was never sent (a restart between the trigger and
    # the order record) can still be refused by the checks at sending: it fails then, unsent.
    C.TRIGGERED: frozenset({C.FAILED}),
    C.CANCELED: frozenset(),
    C.EXPIRED: frozenset(),
    C.FAILED: frozenset(),
}
ACTIVE = frozenset({C.PENDING_APPROVAL, C.ARMED})
HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Trigger:
    type: TriggerType
    price: Decimal | None = None          # yuan per share (price triggers)
    trail_percent: Decimal | None = None  # trailing: % of the mark
    trail_amount: Decimal | None = None   # trailing: yuan per share
    at: datetime | None = None            # time trigger

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type.value}
        for name in ("price", "trail_percent", "trail_amount"):
            value = getattr(self, name)
            if value is not None:
                out[name] = float(value)
        if self.at is not None:
            out["at"] = iso(self.at)
        return out

    def fingerprint(self) -> dict[str, str]:
        def text(d: Decimal | None) -> str:
            return "" if d is None else format(d.normalize(), "f")
        return {"trigger": self.type.value, "trigger_price": text(self.price),
                "trail_percent": text(self.trail_percent), "trail_amount": text(self.trail_amount),
                "at": "" if self.at is None else iso(self.at)}


@dataclass(frozen=True)
class OrderSpec:
    """The order a condition sends: its type and price rules (code, side, volume are the condition's)."""

    order_type: OrderType
    price: Decimal | None = None
    market_type: MarketType | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"order_type": self.order_type.value, "price": None if self.price is None else float(self.price),
                "market_type": None if self.market_type is None else self.market_type.value}


@dataclass(frozen=True)
class Condition:
    condition_id: str
    client_order_id: str      # what the fired order carries (recorded before it is sent)
    account: str
    code: str
    name: str
    side: Side
    volume: int               # shares
    trigger: Trigger
    order: OrderSpec | None   # None: an alert
    status: ConditionStatus
    created_at: str
    status_msg: str = ""
    expires_at: str | None = None     # None: good till canceled (survives the day roll)
    oco_group: str | None = None
    high_water: Decimal | None = None  # trailing: the mark (a sell's high, a buy's low) since arming
    triggered_at: str | None = None
    triggered_price: Decimal | None = None   # the last price that fired it (None: a time trigger)
    order_id: int | None = None
    live: bool = False
    approval: dict[str, Any] | None = None

    def advanced(self, status: ConditionStatus, **changes: Any) -> Condition:
        """A copy in `status`; InternalError for a move the lifecycle does not have."""
        if status not in TRANSITIONS[self.status]:
            raise InternalError(f"condition {self.condition_id}: {self.status.value} -> {status.value} is not a move "
                                "a condition makes")
        return replace(self, status=status, **changes)

    @property
    def alert(self) -> bool:
        return self.order is None

    def fingerprint(self) -> dict[str, str]:
        """The whole condition as armed: what a confirm token is bound to and a replay compares."""
        spec = self.order
        return {"account": self.account, "code": self.code, "side": self.side.value, "volume": str(self.volume),
                **self.trigger.fingerprint(),
                "order_type": "" if spec is None else spec.order_type.value,
                "price": "" if spec is None or spec.price is None else format(spec.price.normalize(), "f"),
                "market_type": "" if spec is None or spec.market_type is None else spec.market_type.value,
                "expires_at": self.expires_at or "", "oco_group": self.oco_group or ""}

    def request(self, price: Decimal | None = None) -> OrderRequest:
        """The order it sends, at `price` (a limit order's price after clipping; default its own)."""
        spec = self.order
        if spec is None:
            raise InternalError("an alert sends no order")
        return OrderRequest(self.account, self.code, self.side, self.volume, spec.order_type,
                            spec.price if price is None else price, spec.market_type)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "condition_id": self.condition_id, "client_order_id": self.client_order_id, "account": self.account,
            "code": self.code, "name": self.name, "side": self.side.value, "volume": self.volume,
            "trigger": self.trigger.to_wire(), "order": None if self.order is None else self.order.to_wire(),
            "status": self.status.value, "status_msg": self.status_msg, "created_at": self.created_at,
            "expires_at": self.expires_at, "triggered_at": self.triggered_at, "order_id": self.order_id,
            "oco_group": self.oco_group, "live": self.live,
        }
        if self.trigger.type is TriggerType.TRAILING_STOP:
            out["high_water"] = None if self.high_water is None else float(self.high_water)
            out["stop_price"] = None if self.high_water is None else float(stop_level(self))
        if self.triggered_price is not None:
            out["triggered_price"] = float(self.triggered_price)
        if self.approval is not None:
            out["approval"] = self.approval
        return out


def make_trigger(kind: str, price: Decimal | None, trail_percent: Decimal | None, trail_amount: Decimal | None,
                 at: datetime | None) -> Trigger:
    """A trigger with what its type needs and nothing it does not; InvalidArgument naming the field."""
    t = TriggerType(kind)

    def refuse(field: str, why: str) -> InvalidArgument:
        return InvalidArgument(f"trigger.{field}: {why}", details={"argument": f"trigger.{field}"})

    extra = {"price": price, "trail_percent": trail_percent, "trail_amount": trail_amount, "at": at}
    wanted = {TriggerType.PRICE_AT_OR_ABOVE: {"price"}, TriggerType.PRICE_AT_OR_BELOW: {"price"},
              TriggerType.TRAILING_STOP: {"trail_percent", "trail_amount"}, TriggerType.TIME: {"at"}}[t]
    for field, value in extra.items():
        if value is not None and field not in wanted:
            raise refuse(field, f"a {t.value} trigger does not take it")
    if t in (TriggerType.PRICE_AT_OR_ABOVE, TriggerType.PRICE_AT_OR_BELOW) and (price is None or price <= 0):
        raise refuse("price", "a price trigger needs a positive price (yuan per share)")
    if t is TriggerType.TRAILING_STOP:
        if (trail_percent is None) == (trail_amount is None):
            raise refuse("trail_percent", "a trailing stop takes exactly one of trail_percent and trail_amount")
        if trail_percent is not None and not Decimal(0) < trail_percent < HUNDRED:
            raise refuse("trail_percent", "must be between 0 and 100 (percent of the mark)")
        if trail_amount is not None and trail_amount <= 0:
            raise refuse("trail_amount", "must be positive (yuan per share)")
    if t is TriggerType.TIME and at is None:
        raise refuse("at", "a time trigger needs `at` (Asia/Shanghai)")
    return Trigger(t, price, trail_percent, trail_amount, at)


def make_spec(account: str, code: str, side: Side, volume: int, order_type: str, price: Decimal | None,
              market_type: str | None) -> OrderSpec:
    """The order part, checked by the order rules themselves (orders.order_request): a limit order's
    price, the market types this exchange has and what takes a protective price."""
    req = order_request(account, code, side, volume, OrderType(order_type), price,
                        None if market_type is None else MarketType(market_type))
    return OrderSpec(req.order_type, req.price, req.market_type)


# ----- the trigger logic
def stop_level(c: Condition) -> Decimal:
    """Where a trailing stop sits now: below a sell's high-water mark, above a buy's low."""
    t, mark = c.trigger, c.high_water
    if mark is None:
        raise InternalError("a trailing stop without a mark")
    gap = t.trail_amount if t.trail_amount is not None else mark * (t.trail_percent or Decimal(0)) / HUNDRED
    return mark - gap if c.side is Side.SELL else mark + gap


def moved_mark(c: Condition, last: Decimal) -> Decimal | None:
    """The trailing mark after a quote at `last`: a new one when the quote beats it, else None."""
    if c.trigger.type is not TriggerType.TRAILING_STOP:
        return None
    mark = c.high_water
    if mark is None or (last > mark if c.side is Side.SELL else last < mark):
        return last
    return None


def fires(c: Condition, last: Decimal | None, now: datetime) -> bool:
    """Whether `c` (its mark already moved by this quote) fires on a quote at `last`, at `now`.
    `last` None: no new traded quote (only a time trigger can fire then)."""
    t = c.trigger
    if t.type is TriggerType.TIME:
        return t.at is not None and now >= t.at
    if last is None:
        return False
    if t.type is TriggerType.PRICE_AT_OR_ABOVE:
        return t.price is not None and last >= t.price
    if t.type is TriggerType.PRICE_AT_OR_BELOW:
        return t.price is not None and last <= t.price
    level = stop_level(c)
    return last <= level if c.side is Side.SELL else last >= level


def expired(c: Condition, now: datetime) -> bool:
    return c.expires_at is not None and now >= datetime.fromisoformat(c.expires_at)


def check_trigger_in_band(t: Trigger, inst: Instrument) -> None:
    """A price trigger beyond today's limits can never fire today: refused at arming (PRICE_LIMIT)."""
    if t.price is None or not inst.limited or inst.within_limits(t.price):
        return
    raise OrderRefused(
        f"trigger price {t.price} is outside today's limits [{inst.down_limit}, {inst.up_limit}] of {inst.code}: "
        "the last price cannot reach it today",
        code=ErrorCode.PRICE_LIMIT,
        hint=f"Choose a trigger price within [{inst.down_limit}, {inst.up_limit}] (get_instrument shows today's "
             "limits), or arm it on a day whose band holds it.",
        details={"rule": "price_limit", "argument": "trigger.price"})


def fire_price(c: Condition, inst: Instrument, best_bid: Decimal | None, best_ask: Decimal | None,
               last: Decimal | None, continuous: bool, on: date) -> tuple[Decimal | None, str]:
    """The price a limit order of `c` goes at, and what was changed, in words ("" if nothing): inside
    today's band and, in the continuous auction, the price cage, so a stop priced through the market
    still reaches the exchange instead of being refused there. Market orders keep their own price."""
    spec = c.order
    if spec is None or spec.order_type is not OrderType.LIMIT or spec.price is None:
        return None if spec is None else spec.price, ""
    price, notes = spec.price, []
    if inst.up_limit is not None and price > inst.up_limit:
        price = inst.up_limit
        notes.append(f"clipped to the up limit {inst.up_limit}")
    if inst.down_limit is not None and price < inst.down_limit:
        price = inst.down_limit
        notes.append(f"clipped to the down limit {inst.down_limit}")
    if continuous:
        buy = c.side is Side.BUY
        bound = price_cage(inst.board, buy, cage_base(buy, best_bid, best_ask, last, inst.pre_close),
                           inst.price_tick, on)
        if bound is not None and (price > bound if buy else price < bound):
            price = bound
            notes.append(f"moved to the price cage's {'ceiling' if buy else 'floor'} {bound}")
    if not notes:
        return price, ""
    return price, f"limit price {spec.price} " + " and ".join(notes)


def t1_note(usable: int, held: int) -> str:
    """Why a sell condition waits: its shares are held but not sellable yet."""
    return (f"waits: only {usable} of {held} shares are sellable today (T+1: shares bought today sell from the "
            "next trading day); it fires on the first quote that meets the trigger once they are")
