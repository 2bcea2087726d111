"""Resources (readable and subscribable on both protocol eras) and prompts (their text in prompts/)."""

from __future__ import annotations

import json
from importlib import resources
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.types import EmptyResult, SubscribeRequestParams, UnsubscribeRequestParams

from ..domain.errors import ErrorCode, QmtError
from .events import LegacySubscriptions

if TYPE_CHECKING:
    from .app import QmtServer


def _prompt_text(name: str) -> str:
    return resources.files("qmt_mcp._prompts").joinpath(f"{name}.md").read_text(encoding="utf-8")


def register_legacy_subscriptions(srv: QmtServer, legacy: LegacySubscriptions) -> None:
    """`resources/subscribe` for 2025-era clients. MCPServer serves only `subscriptions/listen`, so
    these go on its lowlevel server (the SDK's documented way until it offers a public one)."""

    async def subscribe(ctx: Any, params: SubscribeRequestParams) -> EmptyResult:
        legacy.add(str(params.uri), ctx.session)
        return EmptyResult()

    async def unsubscribe(ctx: Any, params: UnsubscribeRequestParams) -> EmptyResult:
        legacy.remove(str(params.uri), ctx.session)
        return EmptyResult()

    lowlevel = srv._lowlevel_server  # private, but the SDK migration guide's own way for this today
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)


async def _read(srv: QmtServer, name: str, args: dict[str, Any]) -> str:
    deps = srv.deps
    if deps is None:
        raise ResourceError("the server is not connected to a worker")
    try:
        payload = await deps.client.call(name, args)
    except QmtError as exc:
        if exc.code in (ErrorCode.UNKNOWN_ACCOUNT, ErrorCode.ORDER_NOT_FOUND, ErrorCode.INVALID_ARGUMENT):
            raise ResourceNotFoundError(exc.message) from exc
        raise ResourceError(f"{exc.code.value}: {exc.message}") from exc
    if name == "health":
        payload["worker"]["restarts"] = deps.restarts()
    return json.dumps(payload, ensure_ascii=False)


def register_resources(srv: QmtServer) -> None:
    mime = "application/json"

    @srv.resource("qmt://health", name="health", title="Health", mime_type=mime,
                  description="Worker, data and account state (as the health tool).")
    async def health_resource() -> str:
        return await _read(srv, "health", {})

    @srv.resource("qmt://accounts/{account}/events", name="account-events", title="Account events", mime_type=mime,
                  description="The latest 100 events of the account and next_seq.")
    async def events_resource(account: str) -> str:
        return await _read(srv, "latest_events", {"account": account, "limit": 100})

    @srv.resource("qmt://accounts/{account}/orders/{order_id}", name="order", title="Order", mime_type=mime,
                  description="One order and its events.")
    async def order_resource(account: str, order_id: str) -> str:
        if not order_id.isdigit():
            raise ResourceNotFoundError("order_id must be a number")
        return await _read(srv, "get_order", {"account": account, "order_id": int(order_id)})

    @srv.resource("qmt://accounts/{account}/positions", name="positions", title="Positions", mime_type=mime,
                  description="The account's positions (shares, yuan).")
    async def positions_resource(account: str) -> str:
        return await _read(srv, "get_positions", {"account": account})

    @srv.resource("qmt://accounts/{account}/asset", name="asset", title="Asset", mime_type=mime,
                  description="The account's cash and total asset (yuan).")
    async def asset_resource(account: str) -> str:
        return await _read(srv, "get_asset", {"account": account})


def register_prompts(srv: QmtServer) -> None:
    @srv.prompt(name="place_order_safely", title="Place an order safely",
                description="Health, risk, preview, the person's OK, place with a token, then verify.")
    def place_order_safely(account: str, code: str, side: str, volume: str, price: str = "") -> str:
        price_text = f"at {price} yuan per share" if price else "(you choose a limit price from the quote)"
        return _prompt_text("place_order_safely").format(
            account=account, code=code, side=side, volume=volume, price=price_text)

    @srv.prompt(name="review_portfolio", title="Review a portfolio",
                description="Asset, positions, P&L, risk usage and open orders of one account.")
    def review_portfolio(account: str) -> str:
        return _prompt_text("review_portfolio").format(account=account)

    @srv.prompt(name="reconcile_unknown_order", title="Reconcile an unknown order",
                description="What to do after SUBMIT_INDETERMINATE.")
    def reconcile_unknown_order(account: str, client_order_id: str) -> str:
        return _prompt_text("reconcile_unknown_order").format(account=account, client_order_id=client_order_id)
