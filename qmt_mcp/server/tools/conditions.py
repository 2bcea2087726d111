"""Conditional order tools: arm, list and cancel the stops, take-profits, trailing stops, time orders
and alerts the worker holds (worker/conditions.py)."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult

from ... import calls as C
from .. import schemas as S
from .relay import relay_of


async def place_conditional_order(
    account: C.Account, code: C.Code, side: C.Side, volume: C.Volume, trigger: C.TriggerArgs,
    order: C.ConditionOrderArgs | None = None, expires_at: C.When = None, oco_group: C.OcoGroup = None,
    client_order_id: C.ClientOrderId = None, confirm_token: C.Token = None, *, ctx: Context[Any, Any],
) -> Annotated[CallToolResult, S.ConditionResult]:
    args = {"account": account, "code": code, "side": side, "volume": volume,
            "trigger": trigger.model_dump(exclude_none=True),
            "order": None if order is None else order.model_dump(exclude_none=True), "expires_at": expires_at,
            "oco_group": oco_group, "client_order_id": client_order_id, "confirm_token": confirm_token}
    return await relay_of(ctx).relay("place_conditional_order", args, S.ConditionResult)


async def list_conditional_orders(
    account: C.Account, active_only: bool = False, *, ctx: Context[Any, Any],
) -> Annotated[CallToolResult, S.ConditionsResult]:
    return await relay_of(ctx).relay("list_conditional_orders", {"account": account, "active_only": active_only},
                                     S.ConditionsResult)


async def cancel_conditional_order(
    account: C.Account, condition_id: C.ConditionId, *, ctx: Context[Any, Any],
) -> Annotated[CallToolResult, S.ConditionResult]:
    return await relay_of(ctx).relay("cancel_conditional_order", {"account": account, "condition_id": condition_id},
                                     S.ConditionResult)


TOOLS = (place_conditional_order, list_conditional_orders, cancel_conditional_order)
