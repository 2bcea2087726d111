"""Quotes to subscribers: `qmt://quotes/{code}` and `qmt://klines/{code}/{period}`.

While any client follows a code (legacy `resources/subscribe` or a `subscriptions/listen` stream),
the server follows it at the worker: one stream, GET /v1/quotes (worker/quotes.py), and a
`watch_quotes` call with the whole set whenever it changes and after every reconnect (a restarted
worker is told again, and answers with the current quotes at once). The last unsubscribe empties
the set and the worker stops reading those codes.

The server holds the latest quote (or forming bar) of each followed code; `get_quote` for codes that
are all held answers from here with `age_ms` (how long ago the server got it), without a round
trip. Nothing is held while the stream is down: answers then come from the worker again.

Backpressure: each update is a `notifications/resources/updated` per subscribed URI. A subscriber
that reads slowly has at most one notification per URI waiting for it (later updates fold into it)
and the one it gets says in `_meta["qmt/dropped"]` how many updates it stands for beyond itself
(`qmt/seq` and `qmt/worker_at`: which update, and when the worker had it); a read of the resource
is always the latest. The worker's stream folds the same way toward the server.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
from anyio.abc import TaskGroup
from mcp.server.subscriptions import InMemorySubscriptionBus, ResourceUpdated
from mcp.types import CallToolResult, TextContent

from ..domain.codes import normalize_code
from ..domain.errors import QmtError
from ..domain.market import PERIODS
from ..sse import sse_events
from .events import LegacySubscriptions
from .listen import DROPPED_META
from .results import DATA_NOTICE
from .wire import WireError
from .wire_stream import get_stream
from .worker_client import WorkerClient

log = logging.getLogger("qmt_mcp.server")
QUOTES, KLINES = "qmt://quotes/", "qmt://klines/"
SEQ_META, WORKER_AT_META = "qmt/seq", "qmt/worker_at"   # on each quote notification, with qmt/dropped
Key = tuple[str, str]   # (code, "") for a quote, (code, period) for a forming bar


def key_of(uri: str) -> Key | None:
    """The held value a URI names (canonical code), or None for any other URI or a malformed one."""
    try:
        if uri.startswith(QUOTES):
            return normalize_code(uri[len(QUOTES):]), ""
        if uri.startswith(KLINES):
            code, _, period = uri[len(KLINES):].partition("/")
            return (normalize_code(code), period) if period in PERIODS else None
    except QmtError:
        return None
    return None


def folds(uri: str) -> bool:
    return uri.startswith((QUOTES, KLINES))


class Notifiable(Protocol):
    """A client connection as the legacy era sees it (the SDK's `Connection`)."""

    async def send_resource_updated(self, uri: str, *, meta: dict[str, Any] | None = None) -> None: ...


@dataclass
class Held:
    frame: dict[str, Any]   # the worker's frame: code, quote or bar, seq, worker_at
    at: float               # when the server got it (its monotonic clock, seconds)
    upstream_dropped: int   # updates the worker's stream folded away on the way here, in all


@dataclass
class _Outbox:
    """One legacy client's unsent quote notifications: at most one per URI."""

    pending: dict[str, int] = field(default_factory=dict)   # uri -> updates folded into it
    wake: anyio.Event = field(default_factory=anyio.Event)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)

    def offer(self, uri: str) -> None:
        if uri in self.pending:
            self.pending[uri] += 1
        else:
            self.pending[uri] = 0
        self.wake.set()

    async def run(self, client: Notifiable, describe: Callable[[str], dict[str, Any]]) -> None:
        with self.scope:
            while True:
                while not self.pending:
                    self.wake = anyio.Event()
                    await self.wake.wait()
                uri = next(iter(self.pending))
                dropped = self.pending.pop(uri)
                try:
                    await client.send_resource_updated(uri, meta={**describe(uri), DROPPED_META: dropped})
                except Exception:  # a closed stream is dropped by the SDK; anything else: say so, go on
                    log.warning("could not notify a quote subscriber of %s", uri, exc_info=True)


class QuoteHub:
    def __init__(self, client: WorkerClient | None, bus: InMemorySubscriptionBus, legacy: LegacySubscriptions, *,
                 now: Callable[[], float] = time.monotonic, watcher: str | None = None) -> None:
        """`client`: the worker's (set when the server connects to it); `now`: the server's clock for
        age_ms (seconds, monotonic); `watcher` names this server's stream at the worker (random when
        omitted)."""
        self.client = client
        self.bus = bus
        self.legacy = legacy
        self.now = now
        self.watcher = watcher or f"s{secrets.token_hex(6)}"
        self.held: dict[Key, Held] = {}
        self.connected = False
        self.frames = 0
        self.bad_frames = 0
        self._listen: dict[object, frozenset[str]] = {}
        self._uris: dict[Key, list[str]] = {}          # held key -> the URIs subscribed that name it
        self._wanted: frozenset[Key] = frozenset()
        self._acked: frozenset[Key] | None = None      # what the worker last took, on this stream
        self._changed = anyio.Event()
        self._arrived = anyio.Event()
        self._outboxes: dict[Notifiable, _Outbox] = {}
        self._tg: TaskGroup | None = None
        self._up = anyio.Event()
        legacy.on_change = self.demand_changed

    # ----- who follows what
    def listen_demand(self, stream: object, uris: frozenset[str] | None) -> None:
        """From the listen handler: a stream opened with `uris`, or ended (None)."""
        if uris is None:
            self._listen.pop(stream, None)
        elif any(folds(u) for u in uris):
            self._listen[stream] = frozenset(u for u in uris if folds(u))
        else:
            return
        self.demand_changed()

    def demand_changed(self) -> None:
        uris = {u for u in self.legacy.uris() if folds(u)}
        for followed in self._listen.values():
            uris |= followed
        by_key: dict[Key, list[str]] = {}
        for uri in sorted(uris):
            key = key_of(uri)
            if key is not None:
                by_key.setdefault(key, []).append(uri)
        self._uris = by_key
        for key in [k for k in self.held if k not in by_key]:
            del self.held[key]
        following: dict[Any, set[str]] = {}   # legacy client (a Connection) -> its quote URIs
        for uri in uris:
            for client in self.legacy.subscribers(uri):
                following.setdefault(client, set()).add(uri)
        for client, box in list(self._outboxes.items()):
            if client not in following:
                self._outboxes.pop(client).scope.cancel()
                continue
            for uri in [u for u in box.pending if u not in following[client]]:
                del box.pending[uri]   # unsubscribed: what was waiting for it is not sent
        wanted = frozenset(by_key)
        if wanted != self._wanted:
            self._wanted = wanted
            self._changed.set()

    def wanted(self) -> frozenset[Key]:
        return self._wanted

    # ----- answers
    def quotes_held(self, codes: list[str]) -> list[dict[str, Any]] | None:
        """The held quotes of `codes` (deduplicated, in order) with age_ms, or None unless all are held."""
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        now = self.now()
        for raw in codes:
            try:
                code = normalize_code(raw)
            except QmtError:
                return None
            if code in seen:
                continue
            seen.add(code)
            held = self.held.get((code, ""))
            if held is None:
                return None
            out.append({**held.frame["quote"], "age_ms": int((now - held.at) * 1000)})
        return out

    def quote_result(self, codes: list[str]) -> CallToolResult | None:
        """get_quote's result from what is held, or None when some code is not held."""
        quotes = self.quotes_held(codes)
        if quotes is None:
            return None
        data = {"ok": True, "quotes": quotes}
        text = f"{DATA_NOTICE}\n{json.dumps(data, ensure_ascii=False)}"
        return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data, is_error=False)

    def describe(self, uri: str) -> dict[str, Any]:
        """What a notification of `uri` stands for: the update held now (seq, and when the worker had it)."""
        key = key_of(uri)
        held = None if key is None else self.held.get(key)
        if held is None:
            return {}
        return {SEQ_META: held.frame["seq"], WORKER_AT_META: held.frame["worker_at"]}

    def content(self, key: Key) -> dict[str, Any] | None:
        held = self.held.get(key)
        if held is None:
            return None
        f = held.frame
        body = {"quote": f["quote"]} if key[1] == "" else {"period": key[1], "bar": f["bar"]}
        return {"code": key[0], **body, "seq": f["seq"], "age_ms": int((self.now() - held.at) * 1000),
                "worker_at": f["worker_at"], "held": True, "upstream_dropped": held.upstream_dropped}

    # ----- following the worker
    async def run(self) -> None:
        """Follow the worker's quote stream for ever, reconnecting after every drop."""
        self._outboxes.clear()   # senders of an earlier run ended with it
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                await self._follow_for_ever()
        finally:
            self._tg = None
            self._lost()

    async def _follow_for_ever(self) -> None:
        delay = 0.05
        while True:
            try:
                await self._follow()
                delay = 0.05
            except (WireError, OSError, _Refused) as exc:
                log.debug("quote stream dropped: %r", exc)
            except Exception:
                log.exception("quote stream frame could not be handled; reconnecting")
            self._lost()
            await anyio.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _lost(self) -> None:
        # Nothing held is known to be current once the stream is gone: answer from the worker.
        self.connected = False
        self._acked = None
        self.held.clear()
        if self._up.is_set():
            self._up = anyio.Event()

    async def _follow(self) -> None:
        wire = None if self.client is None else self.client.wire
        if self.client is None or wire is None:
            raise OSError("no worker yet")
        async with get_stream(wire, "/v1/quotes", {"watcher": self.watcher}, self.client.headers,
                              connect_s=10.0, read_s=90.0) as (status, body), \
                anyio.create_task_group() as tg:
            if status != 200:
                raise _Refused(f"quote stream answered HTTP {status}")
            async for kind, data in sse_events(body):
                if kind == "hello":
                    self.connected = True
                    self._up.set()
                    tg.start_soon(self._sync)
                elif kind in ("quote", "kline"):
                    try:
                        await self._frame(kind, json.loads(data))
                    except (ValueError, KeyError, TypeError) as exc:   # skipped, never fatal
                        self.bad_frames += 1
                        log.warning("skipped a quote frame the server cannot read: %r", exc)
            tg.cancel_scope.cancel()

    async def _sync(self) -> None:
        """Tell the worker what this server follows now; again whenever that changes."""
        while True:
            changed = self._changed
            wanted = self._wanted
            if wanted != self._acked:
                args = {"watcher": self.watcher, "codes": sorted(c for c, p in wanted if p == ""),
                        "klines": [{"code": c, "period": p} for c, p in sorted(wanted) if p != ""]}
                try:
                    if self.client is None:
                        raise QmtError("no worker yet")
                    await self.client.call("watch_quotes", args)
                    self._acked = wanted
                except QmtError as exc:
                    log.info("watch_quotes not taken (%s); trying again", exc.code.value)
                    with anyio.move_on_after(0.5):
                        await changed.wait()
                    continue
            await changed.wait()
            if changed is self._changed:
                self._changed = anyio.Event()

    async def _frame(self, kind: str, data: dict[str, Any]) -> None:
        code = normalize_code(data["code"])
        key: Key = (code, "" if kind == "quote" else str(data["period"]))
        uris = self._uris.get(key)
        self.frames += 1
        if uris is None:
            return   # no longer followed here (an unsubscribe crossed the frame)
        before = self.held.get(key)
        if before is not None and int(data["seq"]) <= int(before.frame["seq"]):
            # The worker sends a followed code's current quote again when the set it is told changes
            # (another code followed): one update, one notification. (held is cleared when the
            # stream is lost, so a restarted worker's seq, starting again, is taken.)
            return
        dropped = int(data.get("dropped") or 0)
        self.held[key] = Held(data, self.now(), (before.upstream_dropped if before else 0) + dropped)
        for uri in uris:
            await self.bus.publish(ResourceUpdated(uri=uri))
            for client in self.legacy.subscribers(uri):
                self._outbox(client).offer(uri)
        self._arrived.set()
        self._arrived = anyio.Event()

    def _outbox(self, client: Any) -> _Outbox:
        box = self._outboxes.get(client)
        if box is None:
            box = self._outboxes[client] = _Outbox()
            if self._tg is not None:
                self._tg.start_soon(box.run, client, self.describe)
        return box

    # ----- for tests and health
    async def reached(self, code: str, seq: int, period: str = "") -> None:
        """Return once the held value of `code` (or its `period` bar) has worker seq >= `seq`."""
        key = (normalize_code(code), period)
        while (held := self.held.get(key)) is None or int(held.frame["seq"]) < seq:
            arrived = self._arrived
            await arrived.wait()

    async def connected_now(self) -> None:
        """Return once the stream to the worker is up."""
        await self._up.wait()

    async def synced(self, settled: Callable[[frozenset[Key]], bool] = lambda wanted: True) -> None:
        """Return once the worker follows what this server's subscribers follow now, and that is
        `settled` (say, empty after a stream's end, which the server learns a moment later)."""
        while self._acked != self._wanted or not settled(self._wanted):
            arrived = self._arrived
            with anyio.move_on_after(0.01):
                await arrived.wait()

    def pending_notifications(self) -> int:
        """Legacy notifications waiting to be written, over every client (at most one per URI each)."""
        return sum(len(b.pending) for b in self._outboxes.values())


class _Refused(Exception):
    """The worker answered the quote stream request with an error."""
