"""`subscriptions/listen` streams that fold quote updates: a slow reader gets the latest, not a queue.

The SDK's ListenHandler buffers up to 1024 events per stream and ends a stream whose backlog fills:
right for order events (each is news), wrong for quotes, where a reader that falls behind wants only
the newest. This handler serves the same protocol (acknowledge first, every frame stamped with the
subscription id, only what was asked for) with one difference: an update of a URI that `folds(uri)`
(qmt://quotes/..., qmt://klines/...) replaces one of the same URI still waiting to be written, and the
notification that goes out says how many it replaced in `_meta["qmt/dropped"]` (and, from
`describe`, which update it stands for). Other events keep
their order and the SDK's bound. It also tells `demand` which URIs each open stream follows, so the
server knows what to ask the worker for (server/quotes.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio
from mcp import MCPError
from mcp.server.context import ServerRequestContext
from mcp.server.subscriptions import ListenHandler, SubscriptionBus
from mcp.shared.subscriptions import (
    SUBSCRIPTION_ID_META_KEY,
    ResourceUpdated,
    ServerEvent,
    event_matches,
    event_to_notification,
)
from mcp.types import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    SubscriptionFilter,
    SubscriptionsAcknowledgedNotification,
    SubscriptionsAcknowledgedNotificationParams,
    SubscriptionsListenRequestParams,
    SubscriptionsListenResult,
)

log = logging.getLogger("qmt_mcp.server")
DROPPED_META = "qmt/dropped"   # updates of this URI the subscriber did not get a notification for
Demand = Callable[[object, frozenset[str] | None], None]   # (stream, its URIs or None once it ended)
Describe = Callable[[str], dict[str, Any]]   # more _meta for a folded URI's notification (its seq, worker_at)


class Backlog:
    """One stream's unsent events: folded URIs at most once each, the rest in order up to `cap`."""

    def __init__(self, folds: Callable[[str], bool], cap: int) -> None:
        self.folds = folds
        self.cap = cap
        self.items: dict[object, ServerEvent] = {}
        self.dropped: dict[str, int] = {}
        self._others = 0
        self.wake = anyio.Event()

    def put(self, event: ServerEvent) -> bool:
        """False when the unfolded backlog is full (the stream is then ended, as the SDK does)."""
        if isinstance(event, ResourceUpdated) and self.folds(event.uri):
            if event.uri in self.items:
                self.dropped[event.uri] = self.dropped.get(event.uri, 0) + 1
            else:
                self.items[event.uri] = event
        else:
            if self._others >= self.cap:
                return False
            self._others += 1
            self.items[object()] = event
        self.wake.set()
        return True

    async def get(self) -> tuple[ServerEvent, int]:
        """The oldest event and, for a folded URI, how many updates it stands for beyond itself."""
        while not self.items:
            self.wake = anyio.Event()
            await self.wake.wait()
        key = next(iter(self.items))
        event = self.items.pop(key)
        if isinstance(key, str):
            return event, self.dropped.pop(key, 0)
        self._others -= 1
        return event, 0

    def __len__(self) -> int:
        return len(self.items)


class FoldingListenHandler(ListenHandler):
    def __init__(self, bus: SubscriptionBus, folds: Callable[[str], bool], demand: Demand,
                 describe: Describe = lambda uri: {}, *,
                 max_subscriptions: int = 1024, max_buffered_events: int = 1024) -> None:
        super().__init__(bus, max_subscriptions=max_subscriptions, max_buffered_events=max_buffered_events)
        self._describe = describe
        self._folds = folds
        self._demand = demand
        self._cap = max_buffered_events
        self._max = max_subscriptions
        self._open: dict[object, tuple[Backlog, anyio.CancelScope]] = {}

    def backlogs(self) -> list[Backlog]:
        return [b for b, _ in self._open.values()]

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], params: SubscriptionsListenRequestParams,
    ) -> SubscriptionsListenResult:
        subscription_id = ctx.request_id
        if subscription_id is None:
            raise MCPError(INVALID_REQUEST, "subscriptions/listen requires a request id")
        if len(self._open) >= self._max:
            raise MCPError(INTERNAL_ERROR, "Subscription limit reached")
        asked = params.notifications
        honored = SubscriptionFilter(
            tools_list_changed=True if asked.tools_list_changed else None,
            prompts_list_changed=True if asked.prompts_list_changed else None,
            resources_list_changed=True if asked.resources_list_changed else None,
            resource_subscriptions=list(asked.resource_subscriptions) if asked.resource_subscriptions else None,
        )
        uris = frozenset(honored.resource_subscriptions or ())
        meta: dict[str, Any] = {SUBSCRIPTION_ID_META_KEY: subscription_id}
        backlog = Backlog(self._folds, self._cap)
        token = object()
        scope = anyio.CancelScope()

        def deliver(event: ServerEvent) -> None:
            if event_matches(honored, uris, event) and not backlog.put(event):
                log.warning("listen stream %r backlog full; ending the stream", subscription_id)
                self._end(token)
                scope.cancel()

        # Subscribed before the ack, so nothing published while the ack is written is lost.
        unsubscribe = self._bus.subscribe(deliver)
        self._open[token] = (backlog, scope)
        self._demand(token, uris)
        try:
            await ctx.session.send_notification(
                SubscriptionsAcknowledgedNotification(
                    params=SubscriptionsAcknowledgedNotificationParams(notifications=honored, _meta=meta)),
                related_request_id=subscription_id)
            with scope:
                while True:
                    event, dropped = await backlog.get()
                    frame_meta = {**meta, **self._describe(event.uri), DROPPED_META: dropped} \
                        if isinstance(event, ResourceUpdated) and self._folds(event.uri) else meta
                    await ctx.session.send_notification(event_to_notification(event, frame_meta),
                                                        related_request_id=subscription_id)
        finally:
            try:
                unsubscribe()
            except Exception:  # a custom bus must not stop the stream's own cleanup
                log.exception("bus unsubscribe raised; continuing stream cleanup")
            self._end(token)
        return SubscriptionsListenResult(_meta=meta)

    def _end(self, token: object) -> None:
        if self._open.pop(token, None) is not None:
            self._demand(token, None)

    def close(self) -> None:
        """End every open stream (each then answers its listen request, the graceful close)."""
        for token, (_, scope) in list(self._open.items()):
            scope.cancel()
            self._end(token)
