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
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import BACKENDS, Session, make_worker, open_session, serve_worker
from mcp import MCPDeprecationWarning
from mcp.client._memory import InMemoryTransport  # the SDK's own in-process transport, wrapped below
from mcp.types import ResourceUpdatedNotification

from qmt_mcp.clock import ManualClock
from qmt_mcp.config import Config
from qmt_mcp.server.listen import DROPPED_META

pytestmark = pytest.mark.anyio
CODES = ("600000.SH", "000001.SZ")
MOVERS = ("600519.SH", "000001.SZ")   # 600519.SH moves a tick within a few quotes
QUOTE = "qmt://quotes/{}"


class Notes:
    """The quote notifications one client got, in order: (uri, dropped)."""

    def __init__(self) -> None:
        self.got: list[tuple[str, int]] = []
        self.seqs: dict[str, list[int]] = {}   # uri -> the worker seq each notification said it stands for
        self._arrived = anyio.Event()
        self.gate: anyio.Event | None = None   # while set to an unset event, the client stops reading

    async def on_message(self, message: Any) -> None:
        if isinstance(message, ResourceUpdatedNotification) and str(message.params.uri).startswith("qmt://"):
            meta = message.params.meta or {}
            self.got.append((str(message.params.uri), int(meta.get(DROPPED_META, 0))))
            self.seqs.setdefault(str(message.params.uri), []).append(int(meta.get("qmt/seq", 0)))
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

    def accounted(self, uri: str) -> int:
        """Updates of `uri` the client knows of: each notification stands for itself and those it folded."""
        return sum(1 + d for u, d in self.got if u == uri)

    async def wait_accounted(self, uri: str, n: int) -> None:
        with anyio.fail_after(30):
            while self.accounted(uri) < n:
                await self._arrived.wait()


class GatedTransport:
    """The SDK's in-memory transport, with a client that can stop reading: while `reading` is unset
    nothing more is taken off the server's stream (which buffers one message), so the server's
    writes wait, as they do on a stdio pipe or socket a client has stopped reading."""

    def __init__(self) -> None:
        self.reading = anyio.Event()
        self.reading.set()
        self._stack = AsyncExitStack()

    def __call__(self, server: Any) -> GatedTransport:
        self._inner = InMemoryTransport(server)
        return self

    async def __aenter__(self) -> Any:
        read, write = await self._stack.enter_async_context(self._inner)
        send, recv = anyio.create_memory_object_stream[Any](0)
        tg = await self._stack.enter_async_context(anyio.create_task_group())
        self._stack.callback(tg.cancel_scope.cancel)

        async def pump() -> None:
            async with send:
                async for message in read:
                    await self.reading.wait()
                    await send.send(message)

        tg.start_soon(pump)
        return recv, write

    async def __aexit__(self, *exc: Any) -> None:
        await self._stack.__aexit__(*exc)


@asynccontextmanager
async def quote_session(clock: ManualClock, home: Path, cfg: Config | None = None, mode: str = "legacy",
                        transport: Any = None) -> AsyncIterator[tuple[Session, Notes]]:
    notes = Notes()
    worker = make_worker(cfg or Config(), home, clock)
    try:
        async with open_session(worker, clock, mode=mode, message_handler=notes.on_message,
                                transport=transport) as s:
            with anyio.fail_after(5):
                await s.server.quotes.connected_now()   # the hub's stream to the worker is up
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
        assert [notes.seqs[u] for u in uris] == [list(range(1, 7))] * 2   # one per update of each code, in order
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


async def test_get_quote_for_a_subscribed_code_answers_the_workers_quote_as_held_with_its_age(
    clock: ManualClock, tmp_path: Path,
) -> None:
    async with quote_session(clock, tmp_path / "h") as (s, _):
        hub = s.server.quotes
        t = [100.0]
        hub.now = lambda: t[0]   # the server's clock for age_ms
        await subscribe(s, QUOTE.format("600000.SH"))
        await step(s, 2, "600000.SH")
        t[0] += 1.5
        quotes = (await s.ok("get_quote", codes=["600000.SH", "sh600000"]))["quotes"]
        assert len(quotes) == 1 and quotes[0].pop("age_ms") == 1500
        assert quotes[0] == await worker_quote(s, "600000.SH")
        # Held, not read: time passes at the worker with no push yet, and the answer stays the held one.
        clock.advance(3)
        again = (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
        assert again["time"] == quotes[0]["time"] != (await worker_quote(s, "600000.SH"))["time"]
        await s.worker.service.tick()
        await hub.reached("600000.SH", 3)
        now = (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
        assert now.pop("age_ms") == 0 and now == await worker_quote(s, "600000.SH")
        # A code nobody follows (alone or beside a held one) is read from the worker for the call.
        mixed = (await s.ok("get_quote", codes=["600000.SH", "000001.SZ"]))["quotes"]
        assert [q.pop("age_ms") for q in mixed] == [0, 0]
        assert mixed == [await worker_quote(s, c) for c in ("600000.SH", "000001.SZ")]


async def test_a_slow_legacy_subscriber_holds_one_notification_per_code_and_is_told_how_many_it_skipped(
    clock: ManualClock, tmp_path: Path,
) -> None:
    gated = GatedTransport()
    async with quote_session(clock, tmp_path / "h", transport=gated) as (s, notes):
        hub = s.server.quotes
        uris = [QUOTE.format(c) for c in CODES]
        await subscribe(s, *uris)
        for uri in uris:
            await notes.wait_for(uri, 1)
        gated.reading = anyio.Event()   # the client stops reading
        tracemalloc.start()
        try:
            sizes = []
            for seq in range(2, 302):
                await step(s, seq, *CODES)
                assert hub.pending_notifications() <= len(uris)   # one per URI at most, whatever the pace
                if seq in (52, 301):
                    sizes.append(tracemalloc.get_traced_memory()[0])

        finally:
            tracemalloc.stop()
        assert sizes[1] - sizes[0] < 100_000   # 250 more updates each: no queue grew (one would be ~1 KB each)
        assert len(notes.got) <= 6   # what was on its way when it stopped
        gated.reading.set()
        for uri in uris:   # every update is either notified or counted in a notification's dropped
            await notes.wait_accounted(uri, 301)
            assert notes.accounted(uri) == 301 and notes.count(uri) < 10
            assert (await read(s, uri))["seq"] == 301   # and a read is the latest


async def test_a_slow_listen_stream_holds_one_update_per_code_and_is_told_how_many_it_skipped(
    clock: ManualClock, tmp_path: Path,
) -> None:
    async with quote_session(clock, tmp_path / "h", mode="2026-07-28") as (s, notes):
        hub, handler = s.server.quotes, s.server.listen_handler
        uris = [QUOTE.format(c) for c in CODES]
        with anyio.fail_after(60):
            async with s.client.listen(resource_subscriptions=uris):
                await hub.synced()
                for uri in uris:
                    await notes.wait_for(uri, 1)
                notes.gate = anyio.Event()
                for seq in range(2, 202):
                    await step(s, seq, *CODES)
                    assert max(len(b) for b in handler.backlogs()) <= len(uris)
                notes.gate.set()
                for uri in uris:
                    await notes.wait_accounted(uri, 201)
                    assert notes.accounted(uri) == 201 and notes.count(uri) < 10
            await hub.synced(lambda wanted: not wanted)
        assert s.worker.service.quotes.codes() == frozenset()   # the stream's end stopped the reads


async def test_listen_stream_gets_each_quote_in_order_and_none_after_it_ends(
    clock: ManualClock, tmp_path: Path,
) -> None:
    async with quote_session(clock, tmp_path / "h", mode="2026-07-28") as (s, notes):
        hub = s.server.quotes
        uris = [QUOTE.format(c) for c in CODES]
        with anyio.fail_after(60):
            async with s.client.listen(resource_subscriptions=uris):
                await hub.synced()
                for seq in range(2, 5):
                    await step(s, seq, *CODES)
                    for code, uri in zip(CODES, uris, strict=True):
                        await notes.wait_for(uri, seq)
                        assert (await read(s, uri))["quote"] == await worker_quote(s, code)
            await hub.synced(lambda wanted: not wanted)
            got = list(notes.got)
            await s.advance(3)
            sentinel = QUOTE.format("600519.SH")
            async with s.client.listen(resource_subscriptions=[sentinel]):
                await notes.wait_for(sentinel, 1)
        assert [notes.count(u) for u in uris] == [4, 4]
        assert notes.got == [*got, (sentinel, 0)]


async def test_a_forming_bar_subscription_follows_the_bar_in_progress(clock: ManualClock, tmp_path: Path) -> None:
    uri = "qmt://klines/600000.SH/1m"
    async with quote_session(clock, tmp_path / "h") as (s, notes):
        hub = s.server.quotes
        await subscribe(s, uri)
        await hub.reached("600000.SH", 1, "1m")
        times = []
        for seq in range(2, 26):   # 72 simulated seconds: the minute's bar forms, then the next one's
            await s.advance(3)
            with anyio.fail_after(10):
                await hub.reached("600000.SH", seq, "1m")
            body = await read(s, uri)
            bars = (await s.ok("get_klines", code="600000.SH", period="1m", count=1))["bars"]
            assert body["bar"] == bars[-1] and body["seq"] == seq
            times.append(body["bar"]["time"])
        assert 2 <= len(set(times)) <= 3 and times == sorted(times)
        await notes.wait_for(uri, 25)
        await unsubscribe(s, uri)
        assert s.worker.service.quotes.klines() == frozenset()


async def test_on_xtquant_quotes_ride_subscribe_quote_and_the_stale_detector_marks_a_wedged_code(
    clock: ManualClock, tmp_path: Path,
) -> None:
    async with quote_session(clock, tmp_path / "h", BACKENDS["xtquant"]) as (s, notes):
        hub = s.server.quotes
        xtdata = s.worker.broker.data.xtdata   # the stand-in beneath xtquant's own layer
        uris = [QUOTE.format(c) for c in MOVERS]
        await subscribe(s, *uris)
        assert xtdata.subscriptions() == sorted(MOVERS)
        for seq in range(2, 4):
            await step(s, seq, *MOVERS)
        for code in MOVERS:
            q = (await s.ok("get_quote", codes=[code]))["quotes"][0]
            assert q.pop("age_ms") >= 0 and q == await worker_quote(s, code) and q["stale"] is False
        xtdata.freeze("600519.SH")   # its timetag stops while the price moves: a wedged quote cache
        frozen_at = hub.held[("600519.SH", "")].frame["quote"]
        seq = 4
        while hub.held[("600519.SH", "")].frame["quote"]["last"] == frozen_at["last"]:
            await step(s, seq, "600519.SH")   # bounded: the price moves within a few quotes
            seq += 1
            assert seq < 40
        held = (await s.ok("get_quote", codes=["600519.SH"]))["quotes"][0]
        assert held["stale"] is True and held["time"] == frozen_at["time"]
        assert "600519.SH" in (await s.ok("health"))["data"]["stale_codes"]
        xtdata.silent.add("000001.SZ")   # its pushes stop altogether
        seq = int(hub.held[("000001.SZ", "")].frame["seq"])
        clock.advance(61)
        await s.worker.service.tick()
        with anyio.fail_after(10):
            await hub.reached("000001.SZ", seq + 1)
        assert (await s.ok("get_quote", codes=["000001.SZ"]))["quotes"][0]["stale"] is True
        await unsubscribe(s, *uris)
        assert xtdata.subscriptions() == []   # the last unsubscribe ends xtdata's subscriptions
        assert notes.count(uris[0]) >= 3


async def test_a_server_that_reads_the_workers_quote_stream_slowly_gets_the_latest_and_the_count_it_skipped(
    clock: ManualClock, tmp_path: Path,
) -> None:
    worker = make_worker(Config(), tmp_path / "h", clock)
    watch = worker.service.quotes
    sock = tmp_path / "w.sock"
    try:
        async with serve_worker(worker, sock) as wc:
            assert wc.http is not None
            async with wc.http.stream("GET", "/v1/quotes", params={"watcher": "slow"}, headers=wc.headers) as resp:
                frames = _frames(resp)
                assert (await anext(frames))[0] == "hello"
                await wc.call("watch_quotes", {"watcher": "slow", "codes": list(CODES)})
                for _ in range(400):   # nobody reads: the socket fills, then the stream folds
                    clock.advance(3)
                    await worker.service.tick()
                    assert watch.held_frames() <= len(CODES)
                seen: dict[str, list[dict[str, Any]]] = {c: [] for c in CODES}
                with anyio.fail_after(30):
                    while any(not f or f[-1]["seq"] < 401 for f in seen.values()):
                        kind, data = await anext(frames)
                        if kind == "quote":
                            seen[data["code"]].append(data)
                for code, got in seen.items():
                    assert [f["seq"] for f in got] == sorted({f["seq"] for f in got})   # in order
                    assert sum(1 + f["dropped"] for f in got) == 401   # every update sent or counted
                    assert got[-1]["quote"] == await worker_quote_of(worker, code)
                    assert any(f["dropped"] for f in got)   # it did fall behind
        assert watch.open_streams() == 0 and watch.codes() == frozenset()   # the stream's end stopped the reads
    finally:
        await worker.close()


async def worker_quote_of(worker: Any, code: str) -> dict[str, Any]:
    return dict((await worker.broker.quotes([code]))[0].to_wire())


async def _frames(resp: Any) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    kind, data = "", ""
    buffer = b""
    async for chunk in resp.aiter_bytes():
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            line = raw.decode()
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif line == "" and kind:
                yield kind, json.loads(data)
                kind, data = "", ""
