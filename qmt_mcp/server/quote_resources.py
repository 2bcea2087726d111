"""The quote and kline resources (`qmt://quotes/{code}`, `qmt://klines/{code}/{period}`) and the
listen handler that folds their updates; what they read is the hub's (server/quotes.py)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.types import SubscriptionsListenRequestParams

from ..domain.errors import QmtError
from .events import LegacySubscriptions
from .listen import FoldingListenHandler
from .quotes import KLINES, QUOTES, QuoteHub, folds, key_of

if TYPE_CHECKING:
    from .app import QmtServer

MIME = "application/json"


def register_quotes(srv: QmtServer, bus: InMemorySubscriptionBus, legacy: LegacySubscriptions) -> None:
    """The quote and kline resources, the hub that holds what they read (it follows the worker once
    the server's lifespan gives it the worker's client), and the listen handler that folds updates."""
    srv.quotes = hub = QuoteHub(None, bus, legacy)

    async def from_worker(name: str, args: dict[str, Any]) -> dict[str, Any]:
        deps = srv.deps
        if deps is None:
            raise ResourceError("the server is not connected to a worker")
        try:
            return await deps.client.call(name, args)
        except QmtError as exc:
            if exc.code.value in ("UNKNOWN_INSTRUMENT", "INVALID_ARGUMENT"):
                raise ResourceNotFoundError(exc.message) from exc
            raise ResourceError(f"{exc.code.value}: {exc.message}") from exc

    @srv.resource("qmt://quotes/{code}", name="quote", title="Quote", mime_type=MIME,
                  description="The latest quote of a code (yuan, shares), updated per new quote while subscribed; "
                              "seq counts the worker's updates, age_ms is how long the server has held it.")
    async def quote_resource(code: str) -> str:
        key = key_of(QUOTES + code)
        if key is None:
            raise ResourceNotFoundError(f"not an instrument code: {code!r}")
        body = hub.content(key)
        if body is None:
            q = (await from_worker("get_quote", {"codes": [key[0]]}))["quotes"][0]
            body = {"code": key[0], "quote": {**q, "age_ms": 0}, "age_ms": 0, "held": False}
        return json.dumps(body, ensure_ascii=False)

    @srv.resource("qmt://klines/{code}/{period}", name="forming-bar", title="Forming bar", mime_type=MIME,
                  description="The bar in progress of a code and period (1m 5m 15m 30m 60m 1d 1w; volume in shares, "
                              "amount in yuan), updated as it changes while subscribed.")
    async def kline_resource(code: str, period: str) -> str:
        key = key_of(f"{KLINES}{code}/{period}")
        if key is None:
            raise ResourceNotFoundError(f"not a code and period: {code!r}/{period!r}")
        body = hub.content(key)
        if body is None:
            bars = (await from_worker("get_klines", {"code": key[0], "period": period, "count": 1}))["bars"]
            body = {"code": key[0], "period": period, "bar": bars[-1] if bars else None, "age_ms": 0, "held": False}
        return json.dumps(body, ensure_ascii=False)

    # Replaces the SDK's own listen handler (the same protocol; quote updates fold, see listen.py).
    srv.listen_handler = handler = FoldingListenHandler(bus, folds, hub.listen_demand, hub.describe)
    srv._lowlevel_server.add_request_handler("subscriptions/listen", SubscriptionsListenRequestParams, handler)
