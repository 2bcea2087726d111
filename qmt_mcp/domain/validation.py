"""Rule-book checks of one order against the instrument and the account, in a fixed order.

Each check yields a `Check`; `first_failure()` turns the first failed check into the error the
contract names for it. Preview shows every check; placing stops at the first failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from .errors import ErrorCode, OrderRefused
from .fees import Fees, FeeSchedule, compute_fees
from .instruments import Instrument, cage_base, price_cage
from .money import is_on_tick, yuan_text
from .orders import OrderRequest, OrderType, Side, takes_protective_price
from .sessions import ACCEPTS_ORDERS, Phase, describe


@dataclass(frozen=True)
class Check:
    rule: str
    ok: bool
    message: str
    code: ErrorCode | None = None

    def to_wire(self) -> dict[str, object]:
        return {"rule": self.rule, "ok": self.ok, "message": self.message}


@dataclass(frozen=True)
class AccountView:
    """An account as one order decision sees it, read from the broker once: available cash (yuan),
    and per code the shares held and the shares sellable now; for the risk rules, the total asset and
    each holding's market value (yuan), which the rule-book checks do not read."""

    cash: Decimal
    can_use_volume: dict[str, int]
    volume: dict[str, int]
    total_asset: Decimal = Decimal(0)
    market_value: dict[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class MarketState:
    """The market as an order meets it: the session phase and the top of the book."""

    phase: Phase
    on: date
    best_bid: Decimal | None
    best_ask: Decimal | None
    last: Decimal | None


@dataclass(frozen=True)
class Estimate:
    price: Decimal
    amount: Decimal
    fees: Fees

    @property
    def total(self) -> Decimal:
        """Cash out for a buy (amount + fees); cash in for a sell (amount - fees)."""
        return self.amount + self.fees.total

    def to_wire(self, side: Side) -> dict[str, float]:
        total = self.amount + self.fees.total if side is Side.BUY else self.amount - self.fees.total
        return {
            "price": float(self.price),
            "amount": float(self.amount),
            "commission": float(self.fees.commission),
            "stamp_duty": float(self.fees.stamp_duty),
            "transfer_fee": float(self.fees.transfer_fee),
            "total": float(total),
        }


def estimate(
    req: OrderRequest,
    inst: Instrument,
    best_ask: Decimal | None,
    best_bid: Decimal | None,
    schedule: FeeSchedule,
    on: date,
) -> Estimate:
    """Price and cost estimate, at the worst price the exchange lets the order take. Market buys are
    costed at the protective price where the market type takes one (SH/BJ best-5), else at the up
    limit (what the counter freezes, and as far as own-best or counterparty-best can go); market sells
    at the best bid (the most they can take now, so value limits stay conservative), else the
    protective price, else the down limit."""
    bound = _protective(req)
    if req.order_type is OrderType.LIMIT and req.price is not None:
        price = req.price
    elif req.side is Side.BUY:
        # No protective price and no daily limit (a new listing): cost it at the cage ceiling.
        price = bound or inst.up_limit or _cage_or_tick(inst, True, best_bid, best_ask, on)
    else:
        price = best_bid or bound or inst.down_limit or inst.price_tick
    amount = price * req.volume
    return Estimate(price, amount, compute_fees(schedule, inst.board, req.side.value, amount, on))


def _protective(req: OrderRequest) -> Decimal | None:
    """The price that bounds a market order, if its type takes one."""
    if req.order_type is not OrderType.MARKET or req.market_type is None:
        return None
    return req.price if takes_protective_price(req.code, req.market_type) else None


def _market_check(req: OrderRequest, inst: Instrument) -> Check | None:
    """What bounds a market order's price, said before anyone relies on it."""
    if req.order_type is not OrderType.MARKET or req.market_type is None:
        return None
    buy = req.side is Side.BUY
    bound = _protective(req)
    kind = req.market_type.value
    if bound is not None:
        return Check("market_price", True, f"{kind}: trades no {'higher' if buy else 'lower'} than the "
                     f"protective price {bound}")
    limit = inst.up_limit if buy else inst.down_limit
    why = ("takes no protective price" if not takes_protective_price(req.code, req.market_type)
           else "has no protective price given")
    if limit is None:
        return Check("market_price", True, f"{kind} {why} and there is no daily limit today: it takes "
                     "what the book offers")
    return Check("market_price", True, f"{kind} {why}: it may trade {'up to the up' if buy else 'down to the down'} "
                 f"limit {limit}{', the price it is costed at' if buy else ''}")


def _cage_or_tick(inst: Instrument, buy: bool, bid: Decimal | None, ask: Decimal | None, on: date) -> Decimal:
    base = cage_base(buy, bid, ask, None, inst.pre_close)
    return price_cage(inst.board, buy, base, inst.price_tick, on) or base


def _session_checks(req: OrderRequest, mkt: MarketState) -> list[Check]:
    if mkt.phase not in ACCEPTS_ORDERS:
        return [Check("session", False, f"no orders now: {describe(mkt.phase)}", ErrorCode.MARKET_CLOSED)]
    out = [Check("session", True, f"orders are taken now ({mkt.phase.value})")]
    if req.order_type is OrderType.MARKET and mkt.phase is not Phase.CONTINUOUS:
        out.append(Check("order_type", False, "market orders are taken only in the continuous auction "
                         "(09:30–11:30, 13:00–14:57); use a limit order", ErrorCode.ORDER_TYPE_UNSUPPORTED))
    return out


def _volume_check(req: OrderRequest, inst: Instrument) -> Check:
    cap = inst.max_volume(req.order_type is OrderType.MARKET)
    ok = req.volume <= cap
    msg = (f"volume within the {cap}-share maximum of one order" if ok
           else f"one {req.order_type.value} order on this board takes at most {cap} shares")
    return Check("max_order_volume", ok, msg, None if ok else ErrorCode.LOT_SIZE)


def _cage_check(req: OrderRequest, inst: Instrument, mkt: MarketState) -> Check | None:
    """Continuous-auction limit orders must lie inside the price cage. The exchanges park an
    out-of-cage order unmatched; the gateway refuses it so an agent never leaves one parked unknowingly."""
    if req.order_type is not OrderType.LIMIT or req.price is None or mkt.phase is not Phase.CONTINUOUS:
        return None
    buy = req.side is Side.BUY
    base = cage_base(buy, mkt.best_bid, mkt.best_ask, mkt.last, inst.pre_close)
    bound = price_cage(inst.board, buy, base, inst.price_tick, mkt.on)
    if bound is None:
        return None
    ok = req.price <= bound if buy else req.price >= bound
    if ok:
        return Check("price_cage", True, f"price inside the cage ({'≤' if buy else '≥'} {bound})")
    word = "above the ceiling" if buy else "below the floor"
    return Check("price_cage", False, f"price {req.price} is {word} {bound} of the price cage "
                 f"(base {base}); the exchange would not match it", ErrorCode.PRICE_CAGE)


def _lot_check(req: OrderRequest, inst: Instrument, view: AccountView) -> Check:
    lot = inst.lot
    if req.side is Side.BUY:
        ok = lot.allows_buy(req.volume)
        msg = (
            f"buy volume {req.volume} fits the lot rule"
            if ok
            else f"buy volume must be at least {lot.minimum} shares, then steps of {lot.step}"
        )
        return Check("lot_size", ok, msg, None if ok else ErrorCode.LOT_SIZE)
    held = view.can_use_volume.get(req.code, 0)
    # Odd lots may only be sold to close out what is left of the position.
    ok = lot.allows_buy(req.volume) or req.volume == held
    if ok:
        msg = f"sell volume {req.volume} is allowed"
    else:
        msg = (
            f"sell volume must follow the lot rule ({lot.minimum}, then steps of {lot.step}) "
            f"unless it sells all {held} sellable shares"
        )
    return Check("lot_size", ok, msg, None if ok else ErrorCode.LOT_SIZE)


def run_checks(
    req: OrderRequest, inst: Instrument, view: AccountView, est: Estimate, mkt: MarketState
) -> list[Check]:
    checks = [
        *_session_checks(req, mkt),
        Check(
            "suspension",
            not inst.suspended,
            f"{inst.code} is suspended today" if inst.suspended else "trading",
            ErrorCode.SUSPENDED if inst.suspended else None,
        ),
        _lot_check(req, inst, view),
        _volume_check(req, inst),
    ]
    market = _market_check(req, inst)
    if market is not None:
        checks.append(market)
    if req.price is not None:
        on_tick = is_on_tick(req.price, inst.price_tick)
        checks.append(
            Check(
                "price_tick",
                on_tick,
                f"price {req.price} is on the {inst.price_tick} tick"
                if on_tick
                else f"price {req.price} is not a multiple of the tick {inst.price_tick}",
                None if on_tick else ErrorCode.PRICE_TICK,
            )
        )
        within = inst.within_limits(req.price)
        bounds = f"[{inst.down_limit}, {inst.up_limit}]" if inst.limited else "(no daily limit today)"
        checks.append(
            Check(
                "price_limit",
                within,
                f"price within today's limits {bounds}"
                if within
                else f"price {req.price} is outside today's limits {bounds}",
                None if within else ErrorCode.PRICE_LIMIT,
            )
        )
        cage = _cage_check(req, inst, mkt)
        if cage is not None:
            checks.append(cage)
    if req.side is Side.BUY:
        need = est.total
        ok = view.cash >= need
        checks.append(
            Check(
                "cash",
                ok,
                f"needs {yuan_text(need)}, {yuan_text(view.cash)} available"
                if ok
                else f"needs {yuan_text(need)} but only {yuan_text(view.cash)} is available",
                None if ok else ErrorCode.INSUFFICIENT_CASH,
            )
        )
    else:
        usable = view.can_use_volume.get(req.code, 0)
        held = view.volume.get(req.code, 0)
        ok = usable >= req.volume
        if ok:
            msg = f"{usable} shares sellable"
        elif held > usable:
            msg = (
                f"only {usable} of {held} shares are sellable today "
                "(shares bought today sell from the next trading day, T+1)"
            )
        else:
            msg = f"only {usable} shares sellable"
        checks.append(Check("position", ok, msg, None if ok else ErrorCode.INSUFFICIENT_POSITION))
    return checks


def first_failure(checks: Sequence[Check]) -> OrderRefused | None:
    for c in checks:
        if not c.ok:
            return OrderRefused(
                c.message, code=c.code or ErrorCode.INVALID_ARGUMENT, details={"rule": c.rule}
            )
    return None
