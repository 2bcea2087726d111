"""A lane of its own for slow market-data reads, so they never hold up orders, cancels or health.

The worker serves every call on one event loop. On the simulator, bars and ticks are computed in
Python: years of daily bars for a code take seconds the first time, and computed on the loop they
would stop every other call of every server sharing the worker for that long (long enough for an
attached server to think the worker hung). Here they run in a thread of their own, with a deadline:

- one thread, so heavy reads queue behind each other and do not multiply the load;
- a caller waits at most `deadline_s` (then TIMEOUT, retryable); the read it gave up on finishes in the
  background and still holds its place, so a caller that retries at once cannot pile up work;
- at most MAX_WAITING reads queued or running; beyond that a read is refused at once (TIMEOUT).

Backends whose reads already leave the loop (xtquant: its own data threads with deadlines and
breakers) are called directly; a backend opts in by offering the blocking forms (`LocalMarketData`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Protocol, TypeVar, runtime_checkable

import anyio

from ..domain.errors import ErrorCode, Unavailable
from ..domain.market import Bar, Quote

log = logging.getLogger("qmt_mcp.worker")
T = TypeVar("T")
MAX_WAITING = 8


@runtime_checkable
class LocalMarketData(Protocol):
    """A backend whose bars and ticks are computed in this process (the simulator): their blocking forms,
    safe to call from a thread other than the event loop's."""

    def bar_list(self, code: str, period: str, start: datetime, end: datetime, count: int) -> list[Bar]: ...

    def tick_list(self, code: str, start: datetime, end: datetime, limit: int) -> list[Quote]: ...


class ReadLane:
    def __init__(self, deadline_s: float, threads: int = 1) -> None:
        self.deadline_s = deadline_s
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None   # made at the first read: most workers in tests never read
        self._waiting = 0

    async def run(self, what: str, fn: Callable[[], T]) -> T:
        """fn() in the lane's thread; raises Unavailable(TIMEOUT) past the deadline or when the lane is full."""
        if self._waiting >= MAX_WAITING:
            raise Unavailable(f"{what}: the worker is busy with other long reads", code=ErrorCode.TIMEOUT,
                              details={"api": what})
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="qmt-read")
        loop = asyncio.get_running_loop()
        self._waiting += 1
        job: Future[T] = self._pool.submit(fn)
        # The place is given back when the read really ends, not when its caller stops waiting.
        job.add_done_callback(lambda _: self._done_from_thread(loop))
        try:
            with anyio.fail_after(self.deadline_s):
                # Cancelling the wait drops a read that has not started; one that has runs to its end.
                return await asyncio.wrap_future(job)
        except TimeoutError:
            log.warning("%s took longer than %.0f s; answering TIMEOUT (it finishes in the background)",
                        what, self.deadline_s)
            raise Unavailable(f"{what} did not finish in {self.deadline_s:.0f} s", code=ErrorCode.TIMEOUT,
                              details={"api": what}) from None

    def _done_from_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        # A closed loop (RuntimeError): the worker is shutting down and nobody counts any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._done)

    def _done(self) -> None:
        self._waiting -= 1

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
