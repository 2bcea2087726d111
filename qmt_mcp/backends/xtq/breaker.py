"""A circuit breaker per xtquant API: after repeated timeouts the API is refused at once
(`CIRCUIT_OPEN`) for a cool-down, then one trial call decides. One wedged API (say a query the
counter never answers) thus stops costing a deadline per call, while the other APIs keep working."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass
class Breaker:
    failures_to_open: int
    cooldown: timedelta
    failures: int = 0
    open_until: datetime | None = None
    trial: bool = False

    def allow(self, now: datetime) -> bool:
        if self.open_until is None:
            return True
        if now >= self.open_until and not self.trial:
            self.trial = True   # half-open: let one call through
            return True
        return False

    def success(self) -> None:
        self.failures, self.open_until, self.trial = 0, None, False

    def undecided(self) -> None:
        """The call ended without telling whether the API works: the next call is the trial."""
        self.trial = False

    def failure(self, now: datetime) -> None:
        self.failures += 1
        if self.trial or self.failures >= self.failures_to_open:
            self.open_until, self.trial = now + self.cooldown, False


@dataclass
class Breakers:
    failures_to_open: int
    cooldown_s: float
    by_api: dict[str, Breaker] = field(default_factory=dict)

    def get(self, api: str) -> Breaker:
        if api not in self.by_api:
            self.by_api[api] = Breaker(self.failures_to_open, timedelta(seconds=self.cooldown_s))
        return self.by_api[api]

    def open_apis(self, now: datetime) -> list[str]:
        return sorted(a for a, b in self.by_api.items() if b.open_until is not None and now < b.open_until)
