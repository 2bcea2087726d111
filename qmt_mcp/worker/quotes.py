"""Quotes and forming bars pushed to the servers that follow them: GET /v1/quotes, while someone
follows a code.

A server opens one stream (`GET /v1/quotes?watcher=ID`, Server-Sent Events) and then says what it
follows with the `watch_quotes` call ({watcher, codes, klines}); it sends the whole set each time, so
after a reconnect it simply says it again. The worker reads quotes only for the codes some open stream
follows: on the simulator at each tick, on xtquant through `subscribe_quote` (the broker's
`QuoteFeed`), and drops a code once no stream follows it (the last unsubscribe stops the pushes).

Frames: `hello` {watcher}, then `quote` {code, quote, seq, dropped, worker_at} and `kline` {code,
period, bar, seq, dropped, worker_at}, and `heartbeat` when nothing changed for a while. A stream
holds at most one unsent frame per code (or code and period): a server that reads slowly gets the
latest, never a queue, and `dropped` says how many it skipped since its last frame for that code.
`seq` counts this worker's updates of that code from 1; `worker_at` is the wall time (epoch seconds)
the worker had it, for measuring the push path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import anyio

from ..backends.port import BrokerPort, QuoteFeed
from ..calls import WatchQuotesArgs
from ..clock import Clock
from ..domain.codes import normalize_code
from ..domain.errors import InvalidArgument, QmtError, UnknownInstrument
from ..domain.market import PERIODS, Bar, Quote
from .stream import sse

log = logging.getLogger("qmt_mcp.worker")
Key = tuple[str, str]   # (code, "") for a quote, (code, period) for a forming bar
# How far back a forming bar is asked for: enough to hold the bar in progress of every period
# (a week, or a day after a long holiday), little enough that a real xtdata need not fetch history.
_BAR_LOOKBACK = {p: timedelta(days=16 if p == "1w" else 8) for p in PERIODS}


@dataclass
class _Outbox:
    """One stream's unsent frames: the latest per key, and how many were overwritten unsent."""

    codes: frozenset[str] = frozenset()
    klines: frozenset[tuple[str, str]] = frozenset()
    pending: dict[Key, dict[str, Any]] = field(default_factory=dict)
    dropped: dict[Key, int] = field(default_factory=dict)
    wake: anyio.Event = field(default_factory=anyio.Event)

    def wants(self, key: Key) -> bool:
        return key[0] in self.codes if key[1] == "" else key in self.klines

    def offer(self, key: Key, frame: dict[str, Any]) -> None:
        if key in self.pending:
            self.dropped[key] = self.dropped.get(key, 0) + 1
        self.pending[key] = frame
        self.wake.set()

    def take(self) -> list[tuple[Key, dict[str, Any], int]]:
        out = [(k, f, self.dropped.pop(k, 0)) for k, f in self.pending.items()]
        self.pending.clear()
        self.wake = anyio.Event()
        return out


class QuoteWatch:
    """Which codes the open quote streams follow, and the pushes to them."""

    def __init__(self, broker: BrokerPort, clock: Clock, stamp: Callable[[], float] = time.time) -> None:
        """`stamp` is the wall clock (epoch seconds) put on each frame as `worker_at`."""
        self.broker = broker
        self.clock = clock
        self.stamp = stamp
        self.feed = broker if isinstance(broker, QuoteFeed) else None
        self._streams: dict[str, _Outbox] = {}
        self._last: dict[Key, Quote | Bar] = {}
        self._seq: dict[Key, int] = {}
        self._dirty: set[str] = set()   # codes with a new quote whose forming bars are to be read again
        self._fed: frozenset[str] = frozenset()
        self._fed_codes: frozenset[str] = frozenset()   # what codes() answers: kept, as every quote asks

    # ----- what is followed
    def codes(self) -> frozenset[str]:
        """Every code an open stream follows, by its quote or by a forming bar."""
        return self._fed_codes

    def _followed(self) -> frozenset[str]:
        out: set[str] = set()
        for box in self._streams.values():
            out |= box.codes
            out |= {c for c, _ in box.klines}
        return frozenset(out)

    def klines(self) -> frozenset[tuple[str, str]]:
        return frozenset(k for box in self._streams.values() for k in box.klines)

    async def watch_quotes(self, args: WatchQuotesArgs) -> dict[str, Any]:
        """Set what the stream `args.watcher` follows. Raises InvalidArgument when no such stream is
        open (open GET /v1/quotes first). Unknown codes are left out and named in `unknown`."""
        box = self._streams.get(args.watcher)
        if box is None:
            raise InvalidArgument("no quote stream is open for this watcher: open GET /v1/quotes?watcher=... first",
                                  details={"argument": "watcher"})
        codes = [normalize_code(c) for c in args.codes]
        klines = [(normalize_code(k.code), k.period) for k in args.klines]
        unknown: list[str] = []
        known: set[str] = set()
        for code in {*codes, *(c for c, _ in klines)}:
            try:
                await self.broker.instrument(code)
                known.add(code)
            except UnknownInstrument:
                unknown.append(code)
        before_codes, before_klines = box.codes, box.klines
        box.codes = frozenset(c for c in codes if c in known)
        box.klines = frozenset(k for k in klines if k[0] in known)
        self._refeed()
        # What is newly followed gets its current state at once: a subscriber need not wait for the
        # next quote to have one, and after a reconnect the server holds fresh values again.
        new_codes = sorted(box.codes - before_codes)
        if new_codes:
            for q in await self._read(new_codes):
                self._publish((q.code, ""), q, only=box)
        for code, period in sorted(box.klines - before_klines):
            bar = await self._forming_bar(code, period)
            if bar is not None:
                self._publish((code, period), bar, only=box)
        for key in [k for k in self._last if k[0] not in self.codes() and k not in self.klines()]:
            del self._last[key]   # nobody follows it: forget it (seq goes on, it never restarts)
        return {"codes": sorted(box.codes), "klines": [f"{c}/{p}" for c, p in sorted(box.klines)],
                "unknown": sorted(unknown)}

    def _refeed(self) -> None:
        """After any change of what is followed: keep codes() and tell a pushing broker (xtquant's
        subscribe_quote) the codes followed now."""
        codes = self._fed_codes = self._followed()
        if self.feed is not None and codes != self._fed:
            self._fed = codes
            self.feed.watch_quotes(codes, self.on_quote)

    # ----- new values
    async def _read(self, codes: list[str]) -> list[Quote]:
        try:
            return await self.broker.quotes(codes)
        except QmtError as exc:
            log.info("quotes for the quote streams not read: %s %s", exc.code.value, exc.message)
            return []

    async def poll(self) -> None:
        """At each tick: read the followed codes' quotes where the broker does not push them (the
        simulator), let a pushing broker check for silent codes, then read the forming bars of codes
        whose quote changed."""
        if not self._streams:
            return
        if self.feed is None:
            for q in await self._read(sorted(self.codes())):
                self.on_quote(q)
        else:
            self.feed.check_quotes()
        dirty, self._dirty = self._dirty, set()
        for code, period in sorted(self.klines()):
            if code in dirty:
                bar = await self._forming_bar(code, period)
                if bar is not None:
                    self._publish((code, period), bar)

    def on_quote(self, q: Quote) -> None:
        """A quote of a followed code (from a poll, or pushed by the broker on the event loop)."""
        key = (q.code, "")
        if q.code not in self.codes() or self._last.get(key) == q:
            return
        self._dirty.add(q.code)
        self._publish(key, q)

    async def _forming_bar(self, code: str, period: str) -> Bar | None:
        now = self.clock.now()
        try:
            bars = await self.broker.bars(code, period, now - _BAR_LOOKBACK[period], now, 1)
        except QmtError as exc:
            log.info("forming %s bar of %s not read: %s", period, code, exc.code.value)
            return None
        return bars[-1] if bars else None

    def _publish(self, key: Key, value: Quote | Bar, only: _Outbox | None = None) -> None:
        if only is None and self._last.get(key) == value:
            return
        self._last[key] = value
        seq = self._seq[key] = self._seq.get(key, 0) + 1
        at = self.stamp()
        code, period = key
        frame: dict[str, Any] = ({"code": code, "quote": value.to_wire()} if period == ""
                                 else {"code": code, "period": period, "bar": value.to_wire()})
        frame.update(seq=seq, worker_at=at)
        for box in self._streams.values() if only is None else (only,):
            if box.wants(key):
                box.offer(key, frame)

    # ----- the stream
    async def frames(self, watcher: str, heartbeat_s: float) -> AsyncIterator[bytes]:
        """GET /v1/quotes for `watcher`: a second stream with that id replaces the first."""
        box = self._streams[watcher] = _Outbox()
        try:
            yield sse("hello", {"watcher": watcher})
            while True:
                if not box.pending:
                    with anyio.move_on_after(heartbeat_s) as scope:
                        await box.wake.wait()
                    if scope.cancelled_caught:
                        yield sse("heartbeat", {})
                        continue
                # One write for everything waiting: a burst of codes is one chunk, not one per code.
                yield b"".join(sse("quote" if period == "" else "kline", {**frame, "dropped": dropped})
                               for (_, period), frame, dropped in box.take())
        finally:
            if self._streams.get(watcher) is box:
                del self._streams[watcher]
                self._refeed()

    def open_streams(self) -> int:
        return len(self._streams)

    def held_frames(self) -> int:
        """Unsent frames over every stream (bounded by the keys followed, whatever the pace)."""
        return sum(len(b.pending) for b in self._streams.values())
