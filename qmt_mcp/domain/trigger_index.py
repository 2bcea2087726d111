"""One code's armed conditions indexed by trigger price, so that the watcher asks a quote's
candidates whether they fire instead of asking every condition of the code (pure).

A price trigger's level never changes once armed: a `price_at_or_below` fires on a last price at or
under its price, a `price_at_or_above` at or over it (domain/conditions.py `fires`). Sorted by price,
those a quote at `last` can fire are a slice, found by bisection. Every other condition (a trailing
stop, whose level moves with its mark; a time trigger) is always a candidate. Candidates come back
as positions in the code's list as the index was built from it, in that order, so firings happen in
the order a walk over the whole list would have made them.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from .conditions import Condition, TriggerType

BELOW, ABOVE = TriggerType.PRICE_AT_OR_BELOW, TriggerType.PRICE_AT_OR_ABOVE


@dataclass(frozen=True)
class TriggerIndex:
    below: tuple[Decimal, ...]      # price_at_or_below prices, ascending
    below_at: tuple[int, ...]       # their positions in the list, in the same order
    above: tuple[Decimal, ...]      # price_at_or_above prices, ascending
    above_at: tuple[int, ...]
    always: tuple[int, ...]         # positions of the rest, ascending

    @classmethod
    def of(cls, conds: Sequence[Condition]) -> TriggerIndex:
        below: list[int] = []
        above: list[int] = []
        always: list[int] = []
        prices: list[Decimal] = [Decimal(0)] * len(conds)
        for k, c in enumerate(conds):
            t = c.trigger
            kind = t.type
            if kind is BELOW or kind is ABOVE:
                if t.price is not None:   # (a price trigger without a price never fires)
                    prices[k] = t.price
                    (below if kind is BELOW else above).append(k)
            else:
                always.append(k)
        # By price; a stable sort keeps equal prices in the list's order.
        price = prices.__getitem__
        below.sort(key=price)
        above.sort(key=price)
        return cls(tuple(map(price, below)), tuple(below), tuple(map(price, above)), tuple(above), tuple(always))

    def candidates(self, last: Decimal | None) -> list[int]:
        """Positions, ascending, of every condition that may fire on a quote at `last` (None: no new
        traded quote, when only the always-asked can)."""
        if last is None:
            return list(self.always)
        met = [*self.always, *self.below_at[bisect_left(self.below, last):],
               *self.above_at[:bisect_right(self.above, last)]]
        met.sort()
        return met
