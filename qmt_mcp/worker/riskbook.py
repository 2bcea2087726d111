"""Risk state per account: today's baseline, the daily-loss breaker, usage counters.

All of it lives in the journal, so a restart keeps a tripped breaker tripped. The breaker stays
tripped until `reset_risk` (with a note) lifts it, whatever the day.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from ..backends.port import BrokerPort
from ..clock import Clock
from ..domain.money import yuan_text
from ..domain.orders import OrderRecord, Side
from ..domain.risk import RiskLimits, RiskUsage, breaker_should_trip
from ..domain.status import TERMINAL, OrderStatus
from ..domain.timeutil import iso, iso_ms
from .journal import Journal, OrderFigures

_NOT_SENT = {OrderStatus.JUNK}


def order_exposure(r: OrderRecord | OrderFigures) -> Decimal:
    """Yuan an order uses of the daily turnover: what traded, plus what may still trade."""
    if r.status in TERMINAL:
        return r.traded_amount
    return r.traded_amount + r.price * (r.volume - r.traded_volume)


class RiskBook:
    def __init__(self, journal: Journal, broker: BrokerPort, clock: Clock) -> None:
        self.journal = journal
        self.broker = broker
        self.clock = clock

    def _state(self, account: str) -> dict[str, Any]:
        today = self.clock.now().date().isoformat()
        state = self.journal.risk_state(account)
        if state is None:
            state = {"day": today, "baseline": None, "tripped": False, "reason": "", "tripped_at": None}
        if state["day"] != today:
            state = {**state, "day": today, "baseline": None}
        return state

    async def refresh(self, account: str, account_id: str, limits: RiskLimits) -> dict[str, Any]:
        """Capture today's baseline if needed and trip the breaker on a loss past the limit."""
        state = self._state(account)
        total = (await self.broker.asset(account_id)).total_asset
        changed = False
        if state["baseline"] is None:
            state["baseline"] = total
            changed = True
        if not state["tripped"] and breaker_should_trip(state["baseline"], total, limits):
            loss = state["baseline"] - total
            reason = f"daily loss {yuan_text(loss)} reached the limit {yuan_text(limits.max_daily_loss)}"
            state.update(tripped=True, reason=reason, tripped_at=iso(self.clock.now()))
            changed = True
            self.journal.append_event(account, iso(self.clock.now()), "risk", None, None,
                                      {"rule": "DAILY_LOSS_BREAKER", "message": state["reason"]})
        if changed or self.journal.risk_state(account) is None:
            self.journal.put_risk_state(account, state)
        state["total_asset"] = total
        return state

    def reset(self, account: str, note: str) -> str:
        state = self._state(account)
        at = iso(self.clock.now())
        state.update(tripped=False, reason="", tripped_at=None, reset_at=at, reset_note=note)
        self.journal.put_risk_state(account, state)
        self.journal.append_event(account, at, "risk", None, None, {"rule": "RESET", "message": note})
        return at

    async def usage(self, account: str, account_id: str) -> RiskUsage:
        now = self.clock.now()
        day_start = iso_ms(now.replace(hour=0, minute=0, second=0, microsecond=0))
        minute_ago = iso_ms(now - timedelta(seconds=60))
        today = [r for r in self.journal.order_figures(account, since=day_start) if r.status not in _NOT_SENT]
        held = {p.code for p in await self.broker.positions(account_id)}
        open_buys = [r for r in today if r.side is Side.BUY and r.status not in TERMINAL]
        pending: dict[str, Decimal] = {}
        for r in open_buys:
            pending[r.code] = pending.get(r.code, Decimal(0)) + r.price * (r.volume - r.traded_volume)
        return RiskUsage(
            orders_last_minute=sum(1 for r in today if r.created_at >= minute_ago),
            orders_today=len(today),
            turnover_today=sum((order_exposure(r) for r in today), Decimal(0)),
            position_codes=frozenset(held | {r.code for r in open_buys}),
            pending_buys=pending,
        )

    @staticmethod
    def usage_wire(u: RiskUsage) -> dict[str, object]:
        return {
            "orders_last_minute": u.orders_last_minute, "orders_today": u.orders_today,
            "turnover_today": float(u.turnover_today), "positions": len(u.position_codes),
        }


def day_start(now: datetime) -> str:
    return iso_ms(now.replace(hour=0, minute=0, second=0, microsecond=0))
