"""Follows the worker's event stream and turns each event into MCP notifications.

One `EventFeed` per server follows GET /v1/events (SSE). It resumes from the last seq it saw after
any drop (a worker restart included: the journal is durable, so nothing is missed), and if the
worker's journal is a different one than before it says so (a `gap` notice) and tells every
resource to re-read. Each event fans out to:
- resource update notifications, on both protocol eras: the `subscriptions/listen` bus (2026-07-28)
  and the client connections that sent `resources/subscribe` (2025-11-25 and earlier), one
  notification per event and URI to each;
- watchers (place_order / get_order waiting with progress notifications).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server.subscriptions import InMemorySubscriptionBus, ResourceUpdated

from ..domain.errors import QmtError
from ..sse import sse_events
from .wire import WireError
from .wire_stream import get_stream
from .worker_client import WorkerClient

log = logging.getLogger("qmt_mcp.server")
HEALTH_URI = "qmt://health"


def uris_for(event: dict[str, Any]) -> list[str]:
    """The contract resources an event changes."""
    acct = event.get("account")
    kind = event.get("type")
    if kind in ("account_status", "disconnected", "risk", "gap"):
        uris = [HEALTH_URI]
        return uris + ([f"qmt://accounts/{acct}/events"] if acct else [])
    uris = [f"qmt://accounts/{acct}/events"]
    if isinstance(kind, str) and kind.startswith("condition_"):
        uris.append(f"qmt://accounts/{acct}/conditions")
    if event.get("order_id") is not None:
        uris.append(f"qmt://accounts/{acct}/orders/{event['order_id']}")
    if kind in ("trade", "reconciled"):
        uris += [f"qmt://accounts/{acct}/positions", f"qmt://accounts/{acct}/asset"]
    elif kind == "order_status":
        uris.append(f"qmt://accounts/{acct}/asset")  # frozen cash moves with every order status
    return uris


class Subscriber(Protocol):
    """A client connection as `resources/subscribe` sees it (the SDK's `Connection`)."""

    async def send_resource_updated(self, uri: str) -> None: ...


class LegacySubscriptions:
    """Which URIs each client follows through `resources/subscribe` (the 2025-era pipe, which
    MCPServer does not serve itself).

    Keyed by the client's connection (a stdio pipe, an SSE stream, one Mcp-Session-Id): subscribing
    to a URI again is the same subscription (the spec's subscribe is a set, not a counter), one
    unsubscribe ends it, and `forget` drops everything of a connection that closed.
    """

    def __init__(self) -> None:
        self._by_client: dict[Subscriber, set[str]] = {}
        self.on_change: Callable[[], None] | None = None   # told after every change (server/quotes.py)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def add(self, uri: str, client: Subscriber) -> bool:
        """Subscribe `client` to `uri`; True when the client is new here (so the caller can arrange
        for `forget` when it closes)."""
        new = client not in self._by_client
        self._by_client.setdefault(client, set()).add(uri)
        self._changed()
        return new

    def remove(self, uri: str, client: Subscriber) -> None:
        # The client stays known (with no URIs) until `forget`, so its close is hooked only once.
        self._by_client.get(client, set()).discard(uri)
        self._changed()

    def forget(self, client: Subscriber) -> None:
        self._by_client.pop(client, None)
        self._changed()

    def uris(self) -> list[str]:
        return sorted({uri for uris in self._by_client.values() for uri in uris})

    def subscribers(self, uri: str) -> list[Subscriber]:
        return [c for c, uris in self._by_client.items() if uri in uris]

    async def notify(self, uri: str) -> None:
        """One `notifications/resources/updated` to each client subscribed to `uri`."""
        for client in self.subscribers(uri):
            try:
                await client.send_resource_updated(uri)
            except Exception:  # the SDK drops what a closed stream cannot carry; anything else: say so, go on
                log.warning("could not notify a subscriber of %s", uri, exc_info=True)


@dataclass
class Watch:
    """One order's events as they arrive; `close()` ends the stream once what arrived is read."""

    account: str
    client_order_id: str | None
    order_id: int | None
    send: MemoryObjectSendStream[dict[str, Any]]
    receive: MemoryObjectReceiveStream[dict[str, Any]]

    def close(self) -> None:
        self.send.close()

    def matches(self, ev: dict[str, Any]) -> bool:
        if ev.get("account") != self.account:
            return False
        if self.client_order_id is not None and ev.get("client_order_id") == self.client_order_id:
            return True
        return self.order_id is not None and ev.get("order_id") == self.order_id


class _StreamRefused(Exception):
    """The worker answered the stream request with an error (restarting, or a token being replaced)."""


class _JournalChanged(Exception):
    """The stream came from a journal other than the one followed: follow it again from its start."""


@dataclass
class EventFeed:
    client: WorkerClient
    bus: InMemorySubscriptionBus
    legacy: LegacySubscriptions
    last_seq: int = 0
    journal_id: str | None = None
    connected: bool = False
    gaps: int = 0
    bad_frames: int = 0
    first_hello: anyio.Event = field(default_factory=anyio.Event)  # set once the stream first answered
    _watches: list[Watch] = field(default_factory=list)
    on_event: Callable[[dict[str, Any]], None] | None = None
    _advanced: anyio.Event = field(default_factory=anyio.Event)

    async def reached(self, seq: int) -> None:
        """Return once every event up to `seq` has been dispatched."""
        while self.last_seq < seq:
            advanced = self._advanced
            await advanced.wait()

    async def run(self) -> None:
        """Follow the stream for ever, reconnecting (and resuming by seq) after every drop."""
        delay = 0.05
        while True:
            try:
                await self._follow()
                delay = 0.05
            except _JournalChanged:
                continue
            except (WireError, OSError, _StreamRefused) as exc:
                log.debug("event stream dropped: %r", exc)
            except Exception:
                # A malformed frame must not take the server down with the feed: log, resume by seq.
                log.exception("event stream frame could not be handled; reconnecting")
            self.connected = False
            await anyio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _follow(self) -> None:
        wire = self.client.wire
        if wire is None:
            raise OSError("no worker yet")
        # The first time, start at the journal's end: nobody followed anything before this server
        # started, and replaying a long history would publish thousands of stale notifications.
        start = "latest" if self.journal_id is None and self.last_seq == 0 else str(self.last_seq)
        headers = {**self.client.headers, "Last-Event-ID": start}
        # Straight off a wire connection, as the quote hub reads its stream (wire_stream.py): each
        # order's events cross it while the server is answering that order. Reads see a heartbeat
        # every few seconds.
        async with get_stream(wire, "/v1/events", {}, headers, connect_s=10.0, read_s=90.0) as (status, body):
            if status != 200:
                raise _StreamRefused(f"event stream answered HTTP {status}")
            async for kind, data in sse_events(body):
                await self._dispatch(kind, data)

    async def _dispatch(self, kind: str, data: str) -> None:
        """One frame. A frame that cannot be read is counted and skipped: one bad frame must never
        stop the feed (it would then fail the same way on every resume)."""
        try:
            payload = json.loads(data) if data else {}
            if not isinstance(payload, dict):
                raise ValueError("a frame's data must be a JSON object")
            await self._frame(kind, payload)
        except (ValueError, KeyError, TypeError) as exc:
            self.bad_frames += 1
            if self.bad_frames in (1, 10, 100) or self.bad_frames % 1000 == 0:
                log.warning("skipped an event frame the server cannot read (%d so far): %s", self.bad_frames, exc)

    async def _frame(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "hello":
            self.connected = True
            self.first_hello.set()
            if self.journal_id is not None and data.get("journal_id") != self.journal_id:
                # Not the journal we were following: our seq means nothing there. Start over and
                # tell every reader to re-read.
                self.gaps += 1
                log.warning("the worker's journal changed (%s -> %s); re-reading state",
                            self.journal_id, data.get("journal_id"))
                previous, seen = self.journal_id, self.last_seq
                self.last_seq = 0
                self.journal_id = str(data.get("journal_id"))
                await self._publish_all_stale()
                with suppress(QmtError):  # say so where agents look: in the events themselves
                    await self.client.call("note_gap", {"previous_journal_id": previous, "last_seq": seen})
                raise _JournalChanged
            if self.journal_id is None:
                self.last_seq = max(self.last_seq, int(data.get("after") or 0))
            self.journal_id = str(data.get("journal_id"))
            return
        if kind != "journal":
            return
        seq = int(data["seq"])
        if seq <= self.last_seq:
            return  # already seen (a resume overlaps)
        for uri in uris_for(data):
            await self.bus.publish(ResourceUpdated(uri=uri))
            await self.legacy.notify(uri)
        for w in list(self._watches):
            if w.matches(data):
                # A watcher 100 events behind only loses progress ticks; a closed one is finishing.
                with suppress(anyio.WouldBlock, anyio.ClosedResourceError):
                    w.send.send_nowait(data)
        if self.on_event is not None:
            self.on_event(data)
        # Only now is the event delivered everywhere: `reached()` callers may rely on that.
        self.last_seq = seq
        self._advanced.set()
        self._advanced = anyio.Event()

    async def _publish_all_stale(self) -> None:
        uris = {HEALTH_URI, *self.legacy.uris()}
        for uri in uris:
            await self.bus.publish(ResourceUpdated(uri=uri))
            await self.legacy.notify(uri)

    @asynccontextmanager
    async def watch(
        self, account: str, client_order_id: str | None = None, order_id: int | None = None,
    ) -> AsyncIterator[Watch]:
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](100)
        w = Watch(account, client_order_id, order_id, send, receive)
        self._watches.append(w)
        try:
            yield w
        finally:
            self._watches.remove(w)
            send.close()
            receive.close()
