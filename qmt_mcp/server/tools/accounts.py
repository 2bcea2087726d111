"""Account tools: health, accounts, asset, positions, orders, trades and the event log (read only)."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult

from ... import calls as C
from .. import schemas as S
from .relay import relay_of


async def health(*, ctx: Context[Any, Any]) -> Annotated[CallToolResult, S.HealthResult]:
    return await relay_of(ctx).relay("health", {}, S.HealthResult)


async def list_accounts(*, ctx: Context[Any, Any]) -> Annotated[CallToolResult, S.ListAccountsResult]:
    return await relay_of(ctx).relay("list_accounts", {}, S.ListAccountsResult)


async def get_asset(account: C.Account, *, ctx: Context[Any, Any]) -> Annotated[CallToolResult, S.AssetResult]:
    return await relay_of(ctx).relay("get_asset", {"account": account}, S.AssetResult)


async def get_positions(
    account: C.Account, *, ctx: Context[Any, Any],
) -> Annotated[CallToolResult, S.PositionsResult]:
    return await relay_of(ctx).relay("get_positions", {"account": account}, S.PositionsResult)


async def get_orders(
    account: C.Account, cancelable_only: bool = False, start: C.Day = None, end: C.Day = None,
    *, ctx: Context[Any, Any],
) -> Annotated[CallToolResult, S.OrdersResult]:
    args = {"account": account, "cancelable_only": cancelable_only, "start": start, "end": end}
    return await relay_of(ctx).relay("get_orders", args, S.OrdersResult)


async def get_trades(
    account: C.Account, start: C.Day = None, end: C.Day = None, *, ctx: Context[Any, Any],
) -> Annotated[CallToolResult, S.TradesResult]:
    return await relay_of(ctx).relay("get_trades", {"account": account, "start": start, "end": end}, S.TradesResult)


async def get_order_events(
    account: C.Account, after_seq: C.AfterSeq = 0, limit: C.EventLimit = 100, wait_seconds: C.LongPoll = 0,
    *, ctx: Context[Any, Any],
) -> Annotated[CallToolResult, S.EventsResult]:
    args = {"account": account, "after_seq": after_seq, "limit": limit, "wait_seconds": wait_seconds}
    return await relay_of(ctx).relay("get_order_events", args, S.EventsResult, wait_seconds)


TOOLS = (health, list_accounts, get_asset, get_positions, get_orders, get_trades, get_order_events)
