"""What each published quote still offers: the counter's orders share a quote's levels, so
two orders against one quote cannot both take its whole first level."""

from __future__ import annotations

from decimal import Decimal

from ...domain.market import Level


class Liquidity:
    def __init__(self) -> None:
        self._taken: dict[tuple[str, int, str], list[int]] = {}

    def take(
        self, code: str, index: int, levels: tuple[Level, ...], buy: bool, limit: Decimal, want: int,
        all_or_none: bool = False,
    ) -> list[tuple[Decimal, int]]:
        """Fills (price, shares) for up to `want` shares from `levels` (best first) no worse than
        `limit`, level by level at each level's price; none at all if `all_or_none` cannot be met."""
        taken = self._taken.setdefault((code, index, "ask" if buy else "bid"), [0] * len(levels))
        reachable = [i for i, lv in enumerate(levels) if (lv.price <= limit if buy else lv.price >= limit)]
        if all_or_none and sum(levels[i].volume - taken[i] for i in reachable) < want:
            return []
        fills: list[tuple[Decimal, int]] = []
        for i in reachable:
            free = levels[i].volume - taken[i]
            if want == 0:
                break
            if free <= 0:
                continue
            qty = min(free, want)
            taken[i] += qty
            want -= qty
            fills.append((levels[i].price, qty))
        return fills

    def forget_before(self, index: int) -> None:
        """Quotes older than the one before `index` can no longer be traded against."""
        for key in [k for k in self._taken if k[1] < index - 1]:
            del self._taken[key]
