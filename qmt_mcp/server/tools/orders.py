"""Order tools: look one up, preview, place and cancel.

place_order asks the person where config says so (server/human.py): its two resolvers run before the
body, and the body sends the worker the person's proof only when they said yes.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from mcp.server.mcpserver import Context, ElicitationResult, Resolve
from mcp.types import CallToolResult

from ... import calls as C
from .. import schemas as S
from ..human import Gate, HumanConfirm, ask_order, gate_order, refusal_of
from ..results import error_result
from .relay import relay_of


async def get_order(
    account: C.Account, order_id: C.MaybeOrderId = None, client_order_id: C.ClientOrderId = None,
    wait_seconds: C.Wait = 0, *, ctx: Context[Any, Any],
) -> Annotated[CallToolResult, S.OrderResult]:
    args = {"account": account, "order_id": order_id, "client_order_id": client_order_id,
            "wait_seconds": wait_seconds}
    return await relay_of(ctx).relay_watching("get_order", args, S.OrderResult, wait_seconds, ctx, client_order_id,
                                               order_id)


async def preview_order(
    account: C.Account, code: C.Code, side: C.Side, volume: C.Volume, price: C.Price = None,
    order_type: C.OrderType = "limit", market_type: C.MarketType | None = None, *, ctx: Context[Any, Any],
) -> Annotated[CallToolResult, S.PreviewResult]:
    args = {"account": account, "code": code, "side": side, "volume": volume, "price": price,
            "order_type": order_type, "market_type": market_type}
    return await relay_of(ctx).relay("preview_order", args, S.PreviewResult)


async def place_order(
    account: C.Account, code: C.Code, side: C.Side, volume: C.Volume, price: C.Price = None,
    order_type: C.OrderType = "limit", market_type: C.MarketType | None = None,
    client_order_id: C.ClientOrderId = None, confirm_token: C.Token = None, wait_seconds: C.Wait = 0,
    *,
    gate: Annotated[Gate, Resolve(gate_order)],
    person: Annotated[ElicitationResult[HumanConfirm], Resolve(ask_order)],
    ctx: Context[Any, Any],
) -> Annotated[CallToolResult, S.PlaceResult]:
    refusal = gate.refusal or refusal_of(person)
    if refusal is not None:
        return error_result(refusal, S.PlaceResult)
    if wait_seconds > 0 and client_order_id is None:
        client_order_id = "q" + secrets.token_hex(8)  # known here, so progress can follow the order
    args = {"account": account, "code": code, "side": side, "volume": volume, "price": price,
            "order_type": order_type, "market_type": market_type, "client_order_id": client_order_id,
            "confirm_token": confirm_token, "wait_seconds": wait_seconds, **gate.worker_args(person)}
    return await relay_of(ctx).relay_watching("place_order", args, S.PlaceResult, wait_seconds, ctx,
                                               client_order_id, None)


async def cancel_order(
    account: C.Account, order_id: C.OrderId, confirm_token: C.CancelToken = None, *, ctx: Context[Any, Any],
) -> Annotated[CallToolResult, S.CancelResult]:
    args = {"account": account, "order_id": order_id, "confirm_token": confirm_token}
    return await relay_of(ctx).relay("cancel_order", args, S.CancelResult)


TOOLS = (get_order, preview_order, place_order, cancel_order)
