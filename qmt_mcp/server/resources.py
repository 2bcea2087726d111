"""Resources (readable and subscribable on both protocol eras) and prompts (their text in prompts/).

Requests about them that cannot be answered are JSON-RPC errors with a code a client can act on:
-32602 (invalid params) for an unknown prompt or resource and for missing or unknown prompt
arguments, with the names sorted, and one log line rather than a traceback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any

from mcp import MCPError
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.types import INVALID_PARAMS, EmptyResult, Resource, SubscribeRequestParams, UnsubscribeRequestParams

from ..domain.errors import ErrorCode, QmtError
from .events import LegacySubscriptions

if TYPE_CHECKING:
    from .app import QmtServer

log = logging.getLogger("qmt_mcp.server")
Reader = Callable[[str], Awaitable[str]]
MIME = "application/json"
# The resources every account has: last path part -> (title, description). Registered as templates
# and listed concretely, once per configured account, by resources/list.
PER_ACCOUNT = {
    "events": ("Account events", "The latest 100 events of the account and next_seq."),
    "positions": ("Positions", "The account's positions (shares, yuan)."),
    "asset": ("Asset", "The account's cash and total asset (yuan)."),
    "conditions": ("Conditional orders", "The account's conditions (stops, take-profits, trailing stops, time "
                   "orders, alerts) with their status; updated on each condition event."),
}


def _prompt_text(name: str) -> str:
    return resources.files("qmt_mcp._prompts").joinpath(f"{name}.md").read_text(encoding="utf-8")


def client_connection(ctx: ServerRequestContext[Any, Any]) -> Connection:
    """The connection a request came on: one per client as the protocol sees it (a stdio pipe, an
    SSE stream, one Mcp-Session-Id on streamable HTTP).

    Raises RuntimeError if the SDK no longer keeps it where mcp 2.3 does.
    """
    # mcp 2.3 builds a new ServerSession for every request (runner.ServerRunner._make_context), so
    # the session cannot key anything that outlives one request; the per-client object is the
    # Connection it wraps, which a lowlevel handler's context does not expose publicly. The one
    # private read is here; tests/test_subscriptions.py fails by name if it moves.
    conn = getattr(ctx.session, "_connection", None)
    if not isinstance(conn, Connection):
        raise RuntimeError("the mcp SDK no longer keeps the Connection on ServerSession._connection; "
                           "see qmt_mcp/server/resources.py client_connection")
    return conn


def register_legacy_subscriptions(srv: QmtServer, legacy: LegacySubscriptions) -> None:
    """`resources/subscribe` for 2025-era clients. MCPServer serves only `subscriptions/listen`, so
    these go on its lowlevel server (the SDK's documented way until it offers a public one)."""

    async def subscribe(ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams) -> EmptyResult:
        conn = client_connection(ctx)
        if legacy.add(str(params.uri), conn):
            # The SDK unwinds this stack when the connection closes, on every transport.
            conn.exit_stack.callback(legacy.forget, conn)
        return EmptyResult()

    async def unsubscribe(ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams) -> EmptyResult:
        legacy.remove(str(params.uri), client_connection(ctx))
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
    @srv.resource("qmt://health", name="health", title="Health", mime_type=MIME,
                  description="Worker, data and account state (as the health tool).")
    async def health_resource() -> str:
        return await _read(srv, "health", {})

    def per_account(part: str, name: str) -> Callable[[Reader], Reader]:
        title, description = PER_ACCOUNT[part]
        return srv.resource(f"qmt://accounts/{{account}}/{part}", name=name, title=title, mime_type=MIME,
                            description=description)

    @per_account("events", "account-events")
    async def events_resource(account: str) -> str:
        return await _read(srv, "latest_events", {"account": account, "limit": 100})

    @srv.resource("qmt://accounts/{account}/orders/{order_id}", name="order", title="Order", mime_type=MIME,
                  description="One order and its events.")
    async def order_resource(account: str, order_id: str) -> str:
        if not order_id.isdigit():
            raise ResourceNotFoundError("order_id must be a number")
        return await _read(srv, "get_order", {"account": account, "order_id": int(order_id)})

    @per_account("positions", "positions")
    async def positions_resource(account: str) -> str:
        return await _read(srv, "get_positions", {"account": account})

    @per_account("asset", "asset")
    async def asset_resource(account: str) -> str:
        return await _read(srv, "get_asset", {"account": account})

    @srv.resource("qmt://accounts/{account}/statement/{date}", name="statement", title="Daily statement",
                  mime_type=MIME, description="One day's statement of the account (as get_statement for that day).")
    async def statement_resource(account: str, date: str) -> str:
        return await _read(srv, "get_statement", {"account": account, "start": date, "end": date})
    @per_account("conditions", "conditions")
    async def conditions_resource(account: str) -> str:
        return await _read(srv, "list_conditional_orders", {"account": account})

    async def list_account_resources(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        # MCPServer lists only fixed URIs; accounts are the worker's to know, so each answer to
        # resources/list adds theirs. Middleware rather than a handler of our own, so the SDK still
        # shapes the answer for the client's protocol era; what it returns there is the wire dict.
        result = await call_next(ctx)
        if ctx.method == "resources/list" and isinstance(result, dict) and isinstance(result.get("resources"), list):
            extra = await account_resources(srv)
            result["resources"] += [r.model_dump(by_alias=True, mode="json", exclude_none=True) for r in extra]
        return result

    srv.middleware.append(list_account_resources)


async def account_resources(srv: QmtServer) -> list[Resource]:
    """events, positions and asset of every configured account; none while the worker is away."""
    deps = srv.deps
    if deps is None:
        return []
    try:
        names = [str(a["name"]) for a in (await deps.client.call("list_accounts", {}))["accounts"]]
    except QmtError as exc:
        log.info("resources/list without the accounts' resources: %s", exc.code.value)
        return []
    return [Resource(uri=f"qmt://accounts/{name}/{part}", name=f"{name}-{part}", title=f"{title} ({name})",
                     description=text, mime_type=MIME)
            for name in names for part, (title, text) in PER_ACCOUNT.items()]


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

    async def check_prompt_arguments(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        # The SDK answers these with error code 0 and logs a traceback; refuse them first instead.
        if ctx.method == "prompts/get" and ctx.request_id is not None:
            await _refuse_bad_prompt_request(srv, ctx.params or {})
        return await call_next(ctx)

    srv.middleware.append(check_prompt_arguments)


async def _refuse_bad_prompt_request(srv: QmtServer, params: Mapping[str, Any]) -> None:
    """Raises MCPError(-32602) for an unknown prompt or missing/unknown arguments (names sorted)."""
    name, args = params.get("name"), params.get("arguments") or {}
    if not isinstance(name, str) or not isinstance(args, dict):
        return  # malformed: the SDK's own validation answers -32602
    prompts = {p.name: p for p in await srv.list_prompts()}
    prompt = prompts.get(name)
    if prompt is None:
        log.info("prompts/get refused: unknown prompt %r", name)
        raise MCPError(INVALID_PARAMS, f"unknown prompt {name!r}; prompts/list names the prompts",
                       {"prompt": name, "known": sorted(prompts)})
    declared = prompt.arguments or []
    missing = sorted(a.name for a in declared if a.required and a.name not in args)
    unknown = sorted(set(args) - {a.name for a in declared})
    if not missing and not unknown:
        return
    parts = ([f"missing required arguments: {', '.join(missing)}"] if missing else []) + (
        [f"unknown arguments: {', '.join(unknown)}"] if unknown else [])
    log.info("prompts/get %r refused: %s", name, "; ".join(parts))
    raise MCPError(INVALID_PARAMS, f"prompt {name!r}: {'; '.join(parts)}",
                   {"prompt": name, "missing": missing, "unknown": unknown})
