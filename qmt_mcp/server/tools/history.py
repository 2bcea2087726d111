"""History tools: the daily statement and P&L per code across days (read only; worker/history.py)."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult, TextContent

from ... import calls as C
from ...domain.statement import table
from .. import schemas as S
from .relay import relay_of


async def get_statement(
    account: C.Account, start: C.Day = None, end: C.Day = None, *, ctx: Context[Any, Any],
) -> Annotated[CallToolResult, S.StatementResult]:
    res = await relay_of(ctx).relay("get_statement", {"account": account, "start": start, "end": end},
                                    S.StatementResult)
    data = res.structured_content
    if data is not None and data.get("ok") and res.content and isinstance(res.content[0], TextContent):
        # For people: the days as a table (numbers and dates only), then the JSON as every tool gives it.
        days = data.get("days") or []
        head = f"Statement of {data['account']}, {data['start']} to {data['end']} (yuan)"
        body = table(days) if days else "no recorded days in this range"
        res.content[0] = TextContent(type="text", text=f"{head}\n{body}\n\n{res.content[0].text}")
    return res


async def get_pnl(
    account: C.Account, start: C.Day = None, end: C.Day = None, code: C.Code | None = None,
    *, ctx: Context[Any, Any],
) -> Annotated[CallToolResult, S.PnlResult]:
    args = {"account": account, "start": start, "end": end, "code": code}
    return await relay_of(ctx).relay("get_pnl", args, S.PnlResult)


TOOLS = (get_statement, get_pnl)
