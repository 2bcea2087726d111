"""What the worker decides about one order, as a value.

`decide` is pure: the worker reads the instrument, the top of the book, the account (once) and the
risk state, and this module turns them into the estimate, every rule-book check and every risk
rule's decision. Preview shows the whole `OrderDecision`; placing raises the first failed check, then
(after the confirm token) the first denial.
"""

from __future__ import annotations

from dataclasses import dataclass

from .fees import FeeSchedule
from .instruments import Instrument
from .orders import OrderRequest
from .risk import Decision, RiskContext, RiskLimits, RiskState, RiskUsage, evaluate
from .validation import AccountView, Check, Estimate, MarketState, estimate, run_checks


@dataclass(frozen=True)
class OrderDecision:
    inst: Instrument
    est: Estimate
    checks: tuple[Check, ...]        # the rule book's, in its order
    decisions: tuple[Decision, ...]  # the risk rules', in RULES order
    usage: RiskUsage                 # today's usage before this order

    @property
    def would_accept(self) -> bool:
        return all(c.ok for c in self.checks) and all(d.ok for d in self.decisions)


def decide(
    req: OrderRequest, inst: Instrument, mkt: MarketState, account: AccountView, fees: FeeSchedule,
    limits: RiskLimits, state: RiskState, usage: RiskUsage,
) -> OrderDecision:
    """`req` against the rule book and the risk rules, costed with `fees`. `state` is today's (its
    baseline captured and its breaker brought up to `account.total_asset`)."""
    est = estimate(req, inst, mkt.best_ask, mkt.best_bid, fees, mkt.on)
    checks = run_checks(req, inst, account, est, mkt)
    ctx = RiskContext(
        order=req, order_value=est.amount, limits=limits, usage=usage, breaker_tripped=state.tripped,
        baseline_total_asset=state.baseline, total_asset=account.total_asset, position_value=account.market_value,
    )
    return OrderDecision(inst, est, tuple(checks), tuple(evaluate(ctx)), usage)
