"""Risk state per account: today's baseline, the daily-loss breaker, usage counters.

All of it lives in the journal, so a restart keeps a tripped breaker tripped. The breaker stays
tripped until `reset_risk` (with a note) lifts it, whatever the day. The account's figures come in
from one read of the broker per decision (`account_view`), so the baseline, the breaker and the
rules see the same asset and positions.

A person's controls (the operator calls, worker/operator.py) sit over the config's limits: an
`Override` of the kill switch and of the block list, in the journal too, so they hold across
restarts. Where a person has set one, it wins both ways (a config's kill_switch = true can be
switched off from the CLI): the person at the terminal is the authority the config stands in for,
and get_risk_status shows which applies.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal

from ..backends.port import BrokerPort
from ..clock import Clock
from ..domain.events import RiskEvent
from ..domain.money import yuan_text
from ..domain.orders import Side
from ..domain.risk import RiskLimits, RiskState, RiskUsage, breaker_should_trip
from ..domain.timeutil import iso, iso_ms
from ..domain.validation import AccountView
from .journal import Journal


async def account_view(broker: BrokerPort, account_id: str) -> AccountView:
    """The account as one decision sees it: its asset and its positions, read once."""
    asset = await broker.asset(account_id)
    positions = await broker.positions(account_id)
    return AccountView(
        cash=asset.cash,
        can_use_volume={p.code: p.can_use_volume for p in positions},
        volume={p.code: p.volume for p in positions},
        total_asset=asset.total_asset,
        market_value={p.code: p.market_value for p in positions},
    )


@dataclass(frozen=True)
class Override:
    """A person's setting of an account's kill switch and block list; None: the config's."""

    kill_switch: bool | None = None
    blocked_codes: frozenset[str] | None = None
    updated_at: str | None = None
    note: str = ""
    channel: str = ""

    def over(self, limits: RiskLimits) -> RiskLimits:
        return replace(
            limits,
            kill_switch=limits.kill_switch if self.kill_switch is None else self.kill_switch,
            blocked_codes=limits.blocked_codes if self.blocked_codes is None else self.blocked_codes,
        )

    def to_wire(self) -> dict[str, object]:
        return {"kill_switch": self.kill_switch,
                "blocked_codes": None if self.blocked_codes is None else sorted(self.blocked_codes),
                "updated_at": self.updated_at, "note": self.note, "channel": self.channel}


class RiskBook:
    def __init__(self, journal: Journal, clock: Clock) -> None:
        self.journal = journal
        self.clock = clock
        # Read once; every change goes through set_override, which writes the journal first.
        self._overrides = {a: Override(**o) for a, o in journal.risk_overrides().items()}
        # Each account's state as last read or written (every decision reads it; only _put writes it).
        self._states: dict[str, RiskState | None] = {}

    def override(self, account: str) -> Override:
        return self._overrides.get(account, Override())

    def limits(self, account: str, configured: RiskLimits) -> RiskLimits:
        """The limits that decide `account`'s orders now: the config's, with a person's controls over them."""
        return self.override(account).over(configured)

    def set_override(self, account: str, override: Override) -> None:
        self.journal.put_risk_override(account, asdict(override))
        self._overrides[account] = override

    def stored(self, account: str) -> RiskState | None:
        """The state as last recorded (None before the account's first decision)."""
        if account in self._states:
            return self._states[account]
        row = self.journal.risk_state(account)
        state = None if row is None else RiskState(
            day=date.fromisoformat(row["day"]), baseline=row["baseline"], tripped=row["tripped"],
            reason=row["reason"], tripped_at=row["tripped_at"], reset_at=row["reset_at"],
            reset_note=row["reset_note"], rearm_total=row["rearm_total"])
        self._states[account] = state
        return state

    def _put(self, account: str, state: RiskState) -> None:
        self.journal.put_risk_state(account, {
            "day": state.day.isoformat(), "baseline": state.baseline, "tripped": state.tripped,
            "reason": state.reason, "tripped_at": state.tripped_at, "reset_at": state.reset_at,
            "reset_note": state.reset_note, "rearm_total": state.rearm_total,
        })
        self._states[account] = state
        # Written inside a batch that then fails, the journal keeps the state before: so must we.
        self.journal.on_rollback(lambda: self._forget(account))

    def _forget(self, account: str) -> None:
        self._states.pop(account, None)

    def refresh(self, account: str, total: Decimal, limits: RiskLimits) -> RiskState:
        """Today's state at total asset `total` (yuan): the baseline captured if it is not yet, and the
        breaker tripped on a loss past the limit; recorded when either changed it."""
        stored = self.stored(account)
        today = self.clock.now().date()
        state = (stored or RiskState(day=today)).on(today)
        baseline = total if state.baseline is None else state.baseline
        state = replace(state, baseline=baseline)
        reference = state.loss_reference()
        if not state.tripped and reference is not None and breaker_should_trip(reference, total, limits):
            loss = reference - total
            reason = f"daily loss {yuan_text(loss)} reached the limit {yuan_text(limits.max_daily_loss)}"
            state = replace(state, tripped=True, reason=reason, tripped_at=iso(self.clock.now()))
            self.journal.append(RiskEvent(account=account, rule="DAILY_LOSS_BREAKER", message=reason),
                                self.clock.now())
        if state != stored:   # a new day, a captured baseline or a tripped breaker
            self._put(account, state)
        return state

    def reset(self, account: str, note: str, total: Decimal) -> str:
        """Lift the breaker, with `note`, at total asset `total` (yuan), from which a further loss of
        the daily limit trips it again; the time of the reset (ISO)."""
        now = self.clock.now()
        at = iso(now)
        current = (self.stored(account) or RiskState(day=now.date())).on(now.date())
        self._put(account, replace(current, tripped=False, reason="", tripped_at=None, reset_at=at, reset_note=note,
                                   rearm_total=total))
        self.journal.append(RiskEvent(account=account, rule="RESET", message=note), now)
        return at

    def usage(self, account: str, held: Collection[str], excluding: str | None = None) -> RiskUsage:
        """Today's usage of `account`, which holds the codes `held` (its positions, as one decision read them),
        without the order `excluding` (a client_order_id: an approved order decided again)."""
        now = self.clock.now()
        day_start = iso_ms(now.replace(hour=0, minute=0, second=0, microsecond=0))
        minute_ago = iso_ms(now - timedelta(seconds=60))
        figures = self.journal.day_figures(account, since=day_start)
        closed = figures.closed(minute_ago, excluding)
        count, recent, turnover = closed.count, closed.last_minute, closed.turnover
        pending: dict[str, Decimal] = {}
        codes = set(held)
        for r in figures.open_orders(excluding):   # ended orders are in `closed` already
            count += 1
            if r.created_at >= minute_ago:
                recent += 1
            rest = r.price * (r.volume - r.traded_volume)
            turnover += r.traded_amount + rest   # what traded, plus what may still trade
            if r.side is Side.BUY:
                pending[r.code] = pending.get(r.code, Decimal(0)) + rest
                codes.add(r.code)
        return RiskUsage(orders_last_minute=recent, orders_today=count, turnover_today=turnover,
                         position_codes=frozenset(codes), pending_buys=pending)

    @staticmethod
    def usage_wire(u: RiskUsage) -> dict[str, object]:
        return {
            "orders_last_minute": u.orders_last_minute, "orders_today": u.orders_today,
            "turnover_today": float(u.turnover_today), "positions": len(u.position_codes),
        }


def day_start(now: datetime) -> str:
    return iso_ms(now.replace(hour=0, minute=0, second=0, microsecond=0))
