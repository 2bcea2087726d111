"""Quotes to subscribers, in process (the manual clock drives the market, no sleeps): updates of two
codes arrive in order and stop at the unsubscribe, on both protocol eras; the server's held answer is
the worker's; a slow subscriber holds at most one notification per URI and is told what it skipped;
the last unsubscribe stops the worker's reads; forming bars follow the quotes; xtquant rides
subscribe_quote and its stale-quote detector."""

from __future__ import annotations

import json
import tracemalloc
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import BACKENDS, Session, make_worker, open_session
from mcp import MCPDeprecationWarning
from mcp.types import ResourceUpdatedNotification

from qmt_mcp.clock import ManualClock
from qmt_mcp.config import Config
from qmt_mcp.server.listen import DROPPED_META

pytestmark = pytest.mark.anyio
CODES = ("600000.SH", "000001.SZ")
QUOTE = "qmt://quotes/{}"


class Notes:
    """The quote notifications one client got, in order: (uri, dropped)."""

    def __init__(self) -> None:
        self.got: list[tuple[str, int]] = []
        self._arrived = anyio.Event()
        self.gate: anyio.Event | None = None   # while set to an unset event, the client stops reading

    async def on_message(self, message: Any) -> None:
        if isinstance(message, ResourceUpdatedNotification) and str(message.params.uri).startswith("qmt://"):
            meta = message.params.meta or {}
            self.got.append((str(message.params.uri), int(meta.get(DROPPED_META, 0))))
            self._arrived.set()
            self._arrived = anyio.Event()
            if self.gate is not None:
                await self.gate.wait()

    def count(self, uri: str) -> int:
        return sum(1 for u, _ in self.got if u == uri)

    async def wait_for(self, uri: str, n: int) -> None:
        with anyio.fail_after(30):
            while self.count(uri) < n:
                await self._arrived.wait()


@asynccontextmanager
async def quote_session(clock: ManualClock, home: Path, cfg: Config | None = None,
                        mode: str = "legacy") -> AsyncIterator[tuple[Session, Notes]]:
    notes = Notes()
    worker = make_worker(cfg or Config(), home, clock)
    try:
        async with open_session(worker, clock, mode=mode, message_handler=notes.on_message) as s:
            with anyio.fail_after(5):
                while not s.server.quotes.connected:   # the hub's stream to the worker is up
                    await anyio.sleep(0.01)
            yield s, notes
    finally:
        await worker.close()


async def subscribe(s: Session, *uris: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        for uri in uris:
            await s.client.subscribe_resource(uri)
    with anyio.fail_after(10):
        await s.server.quotes.synced()


async def unsubscribe(s: Session, *uris: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        for uri in uris:
            await s.client.unsubscribe_resource(uri)
    with anyio.fail_after(10):
        await s.server.quotes.synced()


async def read(s: Session, uri: str) -> dict[str, Any]:
    res = await s.client.read_resource(uri)
    return dict(json.loads(res.contents[0].text))  # type: ignore[union-attr]


async def worker_quote(s: Session, code: str) -> dict[str, Any]:
    return dict((await s.worker.broker.quotes([code]))[0].to_wire())


async def step(s: Session, seq: int, *codes: str) -> None:
    """Three simulated seconds (a new quote of every code), and the hub holding update `seq` of each."""
    await s.advance(3)
    with anyio.fail_after(10):
        for code in codes:
            await s.server.quotes.reached(code, seq)


async def test_a_subscriber_gets_each_new_quote_of_two_codes_in_order_and_none_after_unsubscribing(
    clock: ManualClock, tmp_path: Path,
) -> None:
    async with quote_session(clock, tmp_path / "h") as (s, notes):
        uris = [QUOTE.format(c) for c in CODES]
        await subscribe(s, *uris)
        for code in CODES:   # the current quote at once, before any new one
            await s.server.quotes.reached(code, 1)
        for seq in range(2, 7):
            await step(s, seq, *CODES)
            for code, uri in zip(CODES, uris, strict=True):
                await notes.wait_for(uri, seq)
                body = await read(s, uri)
                assert body["seq"] == seq and body["held"] is True
                assert {k: v for k, v in body["quote"].items()} == await worker_quote(s, code)
        assert [notes.count(u) for u in uris] == [6, 6]   # one per update of each code (seq read in order above)
        assert all(d == 0 for _, d in notes.got)       # a reader that keeps up skips nothing
        await unsubscribe(s, *uris)
        assert s.worker.service.quotes.codes() == frozenset()   # the last unsubscribe stops the reads
        got = list(notes.got)
        for _ in range(3):
            await s.advance(3)
        sentinel = QUOTE.format("600519.SH")
        await subscribe(s, sentinel)
        await notes.wait_for(sentinel, 1)
        assert notes.got == [*got, (sentinel, 0)]   # nothing of the two codes since the unsubscribe
