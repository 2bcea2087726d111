"""Injected time and ids: the domain and the worker never read the wall clock themselves."""

from __future__ import annotations

import secrets
import time
from datetime import datetime, timedelta
from typing import Protocol

from .domain.timeutil import CN_TZ


class Clock(Protocol):
    def now(self) -> datetime: ...

    def wall(self) -> float:
        """Real seconds since the epoch. Differs from `now()` where time is simulated: what must
        never come back after a restart (a confirm token's expiry) is held to this as well."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(CN_TZ)

    def wall(self) -> float:
        return time.time()


class ShiftedClock:
    """Simulated time that starts at `start` when the process starts and runs `speed` times as fast as
    the wall clock: rehearsing a past trading day, or a replay, in real time or faster."""

    def __init__(self, start: datetime, speed: float = 1.0) -> None:
        self._start = start if start.tzinfo else start.replace(tzinfo=CN_TZ)
        self._origin = datetime.now(CN_TZ)
        self._speed = speed

    def now(self) -> datetime:
        return self._start + (datetime.now(CN_TZ) - self._origin) * self._speed

    def wall(self) -> float:
        return time.time()  # simulated time starts over at each start; real time does not


class ManualClock:
    """A clock that moves only when told to (tests, scripted sessions)."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def wall(self) -> float:
        return self._now.timestamp()

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        return self._now

    def set(self, at: datetime) -> None:
        self._now = at


class IdSource(Protocol):
    def client_order_id(self) -> str: ...


class RandomIds:
    def client_order_id(self) -> str:
        return "q" + secrets.token_hex(8)
