"""Risk rules: one small class each, run in the fixed order of `RULES`.

Every rule sees the same `RiskContext` and answers allow or deny with its own rule code. Pending
orders count toward usage (the caller folds them into `RiskUsage`). The kill switch and the
daily-loss breaker stop orders that open or grow a position; sells that reduce one pass, so risk
never traps an account in a position.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Protocol

from .errors import RiskReject
from .money import yuan_text
from .orders import OrderRequest, Side


@dataclass(frozen=True)
class RiskLimits:
    enabled: bool = True
    max_order_value: Decimal = Decimal(100_000)
    max_daily_turnover: Decimal = Decimal(500_000)
    max_orders_per_minute: int = 10
    max_daily_orders: int = 100
    max_positions: int = 10
    max_position_pct: Decimal = Decimal(30)
    max_daily_loss: Decimal = Decimal(50_000)
    kill_switch: bool = False
    blocked_codes: frozenset[str] = frozenset()

    def to_wire(self) -> dict[str, object]:
        return {
            "enabled": self.enabled,
            "max_order_value": float(self.max_order_value),
            "max_daily_turnover": float(self.max_daily_turnover),
            "max_orders_per_minute": self.max_orders_per_minute,
            "max_daily_orders": self.max_daily_orders,
            "max_positions": self.max_positions,
            "max_position_pct": float(self.max_position_pct),
            "max_daily_loss": float(self.max_daily_loss),
            "kill_switch": self.kill_switch,
            "blocked_codes": sorted(self.blocked_codes),
        }


@dataclass(frozen=True)
class RiskUsage:
    orders_last_minute: int = 0
    orders_today: int = 0
    turnover_today: Decimal = Decimal(0)
    position_codes: frozenset[str] = frozenset()  # held or with a pending buy
    # code -> yuan that open buy orders may still add (price x untraded volume): a position grows by
    # what rests as well as by what filled, or a string of resting buys walks past MAX_POSITION_PCT.
    pending_buys: dict[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class RiskState:
    """An account's recorded risk state: the day's baseline total asset (yuan; None until captured)
    and the daily-loss breaker, which stays tripped until a reset lifts it, whatever the day.
    Times are ISO-8601 text, as they are recorded and answered."""

    day: date
    baseline: Decimal | None = None
    tripped: bool = False
    reason: str = ""
    tripped_at: str | None = None
    reset_at: str | None = None
    reset_note: str | None = None
    # Total asset when a person last reset the breaker today: the loss that trips it again is
    # counted from there, or a reset while the day is still down would trip again at the next look.
    rearm_total: Decimal | None = None

    def on(self, today: date) -> RiskState:
        """The state as `today` sees it: a new day has no baseline yet; the breaker carries over."""
        return self if self.day == today else replace(self, day=today, baseline=None, rearm_total=None)

    def loss_reference(self) -> Decimal | None:
        """What the daily-loss breaker measures from: the last reset today, else the day's baseline."""
        return self.rearm_total if self.rearm_total is not None else self.baseline


@dataclass(frozen=True)
class RiskContext:
    order: OrderRequest
    order_value: Decimal  # yuan, at the estimated price
    limits: RiskLimits
    usage: RiskUsage
    breaker_tripped: bool
    baseline_total_asset: Decimal | None
    total_asset: Decimal
    position_value: dict[str, Decimal] = field(default_factory=dict)  # code -> market value, yuan

    @property
    def opens(self) -> bool:
        return self.order.side is Side.BUY


@dataclass(frozen=True)
class Decision:
    rule: str
    ok: bool
    message: str

    def to_wire(self) -> dict[str, object]:
        return {"rule": self.rule, "ok": self.ok, "message": self.message}


class Rule(Protocol):
    name: str

    def decide(self, ctx: RiskContext) -> Decision: ...


class KillSwitch:
    name = "KILL_SWITCH"

    def decide(self, ctx: RiskContext) -> Decision:
        if ctx.limits.kill_switch and ctx.opens:
            return Decision(self.name, False, "the kill switch is on: only position-reducing sells pass")
        return Decision(self.name, True, "kill switch off" if not ctx.limits.kill_switch else "sell passes")


class DailyLossBreaker:
    name = "DAILY_LOSS_BREAKER"

    def decide(self, ctx: RiskContext) -> Decision:
        if ctx.breaker_tripped and ctx.opens:
            return Decision(self.name, False, "the daily-loss breaker has tripped; reset_risk lifts it")
        return Decision(self.name, True, "breaker ok" if not ctx.breaker_tripped else "sell passes")


class BaselinePending:
    name = "BASELINE_PENDING"

    def decide(self, ctx: RiskContext) -> Decision:
        if ctx.baseline_total_asset is None:
            return Decision(self.name, False, "today's baseline total asset is not captured yet")
        return Decision(self.name, True, f"baseline {yuan_text(ctx.baseline_total_asset)}")


class SymbolBlocked:
    name = "SYMBOL_BLOCKED"

    def decide(self, ctx: RiskContext) -> Decision:
        if ctx.order.code in ctx.limits.blocked_codes and ctx.opens:
            return Decision(self.name, False, f"{ctx.order.code} is on the block list")
        return Decision(self.name, True, "not blocked")


class MaxOrderValue:
    name = "MAX_ORDER_VALUE"

    def decide(self, ctx: RiskContext) -> Decision:
        limit = ctx.limits.max_order_value
        ok = ctx.order_value <= limit
        return Decision(self.name, ok, f"order value {yuan_text(ctx.order_value)}, limit {yuan_text(limit)}")


class MaxDailyTurnover:
    name = "MAX_DAILY_TURNOVER"

    def decide(self, ctx: RiskContext) -> Decision:
        after = ctx.usage.turnover_today + ctx.order_value
        limit = ctx.limits.max_daily_turnover
        return Decision(self.name, after <= limit,
                        f"turnover today would be {yuan_text(after)}, limit {yuan_text(limit)}")


class MaxOrdersPerMinute:
    name = "MAX_ORDERS_PER_MINUTE"

    def decide(self, ctx: RiskContext) -> Decision:
        n = ctx.usage.orders_last_minute + 1
        limit = ctx.limits.max_orders_per_minute
        return Decision(self.name, n <= limit, f"{n} orders in the last minute, limit {limit}")


class MaxDailyOrders:
    name = "MAX_DAILY_ORDERS"

    def decide(self, ctx: RiskContext) -> Decision:
        n = ctx.usage.orders_today + 1
        limit = ctx.limits.max_daily_orders
        return Decision(self.name, n <= limit, f"{n} orders today, limit {limit}")


class MaxPositions:
    name = "MAX_POSITIONS"

    def decide(self, ctx: RiskContext) -> Decision:
        held = ctx.usage.position_codes
        limit = ctx.limits.max_positions
        if ctx.opens and ctx.order.code not in held and len(held) + 1 > limit:
            return Decision(self.name, False, f"a new position would make {len(held) + 1}, limit {limit}")
        return Decision(self.name, True, f"{len(held)} positions, limit {limit}")


class MaxPositionPct:
    name = "MAX_POSITION_PCT"

    def decide(self, ctx: RiskContext) -> Decision:
        if not ctx.opens or ctx.total_asset <= 0:
            return Decision(self.name, True, "does not grow a position")
        code = ctx.order.code
        pending = ctx.usage.pending_buys.get(code, Decimal(0))
        after = ctx.position_value.get(code, Decimal(0)) + pending + ctx.order_value
        pct = (after * 100 / ctx.total_asset).quantize(Decimal("0.01"))
        limit = ctx.limits.max_position_pct
        with_pending = f" (with {pending} yuan of open buys)" if pending else ""
        return Decision(
            self.name, pct <= limit, f"{code} would be {pct}% of total asset{with_pending}, limit {limit}%"
        )


# The order is part of the contract: the first denial is the one reported.
RULES: tuple[Rule, ...] = (
    KillSwitch(),
    DailyLossBreaker(),
    BaselinePending(),
    SymbolBlocked(),
    MaxOrderValue(),
    MaxDailyTurnover(),
    MaxOrdersPerMinute(),
    MaxDailyOrders(),
    MaxPositions(),
    MaxPositionPct(),
)


def evaluate(ctx: RiskContext) -> list[Decision]:
    """Every rule's decision, in order (for preview). Disabled risk allows everything."""
    if not ctx.limits.enabled:
        # The kill switch is a person's stop, not a limit: it holds even where the limits are off.
        return [r.decide(ctx) if isinstance(r, KillSwitch) else Decision(r.name, True, "risk checks disabled for this "
                "account") for r in RULES]
    return [r.decide(ctx) for r in RULES]


def first_denial(decisions: Sequence[Decision]) -> RiskReject | None:
    for d in decisions:
        if not d.ok:
            return RiskReject(d.message, details={"rule": d.rule})
    return None


def breaker_should_trip(baseline: Decimal | None, total_asset: Decimal, limits: RiskLimits) -> bool:
    return baseline is not None and limits.enabled and (baseline - total_asset) >= limits.max_daily_loss
