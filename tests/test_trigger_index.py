"""The watcher's trigger index (domain/trigger_index.py): a quote's candidates are exactly the price
triggers it meets, plus every other condition, in the list's order; so no condition that `fires`
would fire is ever left unasked."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal

from qmt_mcp.domain.conditions import Condition, ConditionStatus, OrderSpec, Trigger, TriggerType, fires
from qmt_mcp.domain.orders import OrderType, Side
from qmt_mcp.domain.timeutil import CN_TZ
from qmt_mcp.domain.trigger_index import TriggerIndex

NOW = datetime(2024, 3, 1, 10, 0, tzinfo=CN_TZ)


def _condition(k: int, rng: random.Random) -> Condition:
    kind = rng.choice(list(TriggerType))
    price = Decimal(rng.randint(95, 105)) / 10   # few distinct prices: ties with the quote are common
    trigger = {TriggerType.PRICE_AT_OR_ABOVE: Trigger(kind, price=price),
               TriggerType.PRICE_AT_OR_BELOW: Trigger(kind, price=price),
               TriggerType.TRAILING_STOP: Trigger(kind, trail_amount=Decimal("0.2")),
               TriggerType.TIME: Trigger(kind, at=NOW + timedelta(minutes=rng.randint(-2, 2)))}[kind]
    return Condition(f"cond-{k}", f"c-{k}", "sim", "600000.SH", "n", rng.choice(list(Side)), 100, trigger,
                     OrderSpec(OrderType.LIMIT, Decimal("10")), ConditionStatus.ARMED, "2024-03-01T09:30:00+08:00",
                     high_water=price if kind is TriggerType.TRAILING_STOP else None)


def test_the_candidates_are_every_condition_that_fires_and_only_price_triggers_that_cannot_are_left_out() -> None:
    rng = random.Random(7)  # noqa: S311 (a seeded test, not a secret)
    for _ in range(200):
        conds = [_condition(k, rng) for k in range(rng.randint(0, 40))]
        index = TriggerIndex.of(conds)
        for last in [None, *(Decimal(p) / 10 for p in range(94, 107))]:
            got = index.candidates(last)
            assert got == sorted(set(got))   # the list's order, each once
            firing = [k for k, c in enumerate(conds) if fires(c, last, NOW)]
            assert set(firing) <= set(got)
            price_kinds = (TriggerType.PRICE_AT_OR_ABOVE, TriggerType.PRICE_AT_OR_BELOW)
            # Left out: only price triggers, and only those this quote does not meet.
            assert all(conds[k].trigger.type in price_kinds and not fires(conds[k], last, NOW)
                       for k in set(range(len(conds))) - set(got))
            # Of the price triggers, exactly those that fire are asked.
            assert [k for k in got if conds[k].trigger.type in price_kinds] == \
                [k for k in firing if conds[k].trigger.type in price_kinds]
