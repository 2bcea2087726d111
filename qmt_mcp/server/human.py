"""Human in the loop for live orders, through MCP elicitation (both protocol eras).

`server.confirm_human`:
- "off": never ask (the two-step confirm token still guards live accounts);
- "if_supported": ask the person when the client can show a form, else rely on the token alone;
- "required": ask, and fail closed (CONFIRM_DECLINED) when the client cannot ask.

`ask_person` is place_order's resolver and runs before the tool body. It asks only for a live
account's order that would be accepted and carries a token, so the person sees exactly what will be
sent, with its cost and fees.
A plain `Skip` answer means no question was put; the tool body decides what that allows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol, cast

from mcp.server.mcpserver import Context, Elicit
from pydantic import BaseModel, Field

from ..domain.errors import QmtError

ConfirmHuman = Literal["off", "if_supported", "required"]
WorkerCall = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class HumanConfirm(BaseModel):
    confirm: bool = Field(description="Send this live order now?")


class Skip(BaseModel):
    """No question was put to the person, and why."""

    reason: Literal["off", "not_live", "would_reject", "no_token", "cannot_ask", "cannot_ask_required", "error"]


def _describe(order: dict[str, Any], preview: dict[str, Any]) -> str:
    o = preview.get("order", {})
    name = str(o.get("name", ""))[:40]
    side = "BUY" if order["side"] == "buy" else "SELL"
    head = f"LIVE order on account '{order['account']}': {side} {order['volume']} shares of {order['code']} {name}"
    if order.get("order_type", "limit") == "limit":
        est = preview.get("estimate", {})
        return (f"{head} at {order['price']} yuan (limit). Amount {est.get('amount')} yuan; commission "
                f"{est.get('commission')}, stamp duty {est.get('stamp_duty')}, transfer fee "
                f"{est.get('transfer_fee')}; total {est.get('total')} yuan. Send it?")
    # A market order's fill price is not known in advance; say what bounds it (stable between rounds).
    bound = f" bounded by {order['price']} yuan" if order.get("price") is not None else ""
    return f"{head} at market ({order.get('market_type') or 'best5_cancel'}){bound}. Send it?"


class HumanGate(Protocol):
    """What the resolver needs from the server: the configured mode and a way to reach the worker."""

    confirm_human: ConfirmHuman

    def worker_call(self) -> WorkerCall | None: ...


async def ask_person(
    account: str, code: str, side: str, volume: int, price: float | None, order_type: str,
    market_type: str | None, confirm_token: str | None, ctx: Context,
) -> Elicit[HumanConfirm] | Skip:
    """Resolver of place_order's `person` parameter (tool arguments arrive by name)."""
    gate = cast(HumanGate, ctx.mcp_server)
    mode = gate.confirm_human
    if mode == "off":
        return Skip(reason="off")
    call = gate.worker_call()
    if call is None:
        return Skip(reason="error")
    order = {"account": account, "code": code, "side": side, "volume": volume, "price": price,
             "order_type": order_type, "market_type": market_type}
    try:
        preview = await call("preview_order", {k: v for k, v in order.items() if v is not None})
    except QmtError:
        return Skip(reason="error")  # the order call will report the same error
    if not preview.get("live"):
        return Skip(reason="not_live")
    if not preview.get("would_accept"):
        return Skip(reason="would_reject")
    if confirm_token is None:
        return Skip(reason="no_token")
    caps = ctx.client_capabilities
    if caps is None or caps.elicitation is None:
        return Skip(reason="cannot_ask_required" if mode == "required" else "cannot_ask")
    return Elicit(_describe(order, preview), HumanConfirm)
