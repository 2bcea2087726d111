"""Market data tools: quotes, bars, ticks, instruments and sectors (read only)."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult

from ... import calls as C
from .. import schemas as S
from ..quotes import QuoteHub
from .relay import relay_of


async def get_quote(codes: C.Codes, *, ctx: Context[Any, Any]) -> Annotated[CallToolResult, S.GetQuoteResult]:
    # Codes someone is subscribed to are held by the server (server/quotes.py): no worker round trip.
    hub: QuoteHub | None = getattr(ctx.mcp_server, "quotes", None)
    held = None if hub is None else hub.quote_result(codes)
    if held is not None:
        return held
    return await relay_of(ctx).relay("get_quote", {"codes": codes}, S.GetQuoteResult, on_payload=_fresh)


async def _fresh(payload: dict[str, Any]) -> None:
    for q in payload.get("quotes") or []:
        q["age_ms"] = 0   # read from the worker for this call


async def get_klines(
    code: C.Code, period: C.Period = "1d", start: C.When = None, end: C.When = None, count: C.BarCount = 100,
    adjust: C.Adjust = "none", *, ctx: Context[Any, Any],
) -> Annotated[CallToolResult, S.GetKlinesResult]:
    args = {"code": code, "period": period, "start": start, "end": end, "count": count, "adjust": adjust}
    return await relay_of(ctx).relay("get_klines", args, S.GetKlinesResult)


async def get_ticks(
    code: C.Code, start: C.WhenRequired, end: C.WhenRequired, limit: C.BarCount = 100, *, ctx: Context[Any, Any],
) -> Annotated[CallToolResult, S.GetTicksResult]:
    args = {"code": code, "start": start, "end": end, "limit": limit}
    return await relay_of(ctx).relay("get_ticks", args, S.GetTicksResult)


async def search_instruments(
    query: C.SearchText = None, sector: C.SectorName = None, limit: C.SearchLimit = 20, *, ctx: Context[Any, Any],
) -> Annotated[CallToolResult, S.SearchResult]:
    args = {"query": query, "sector": sector, "limit": limit}
    return await relay_of(ctx).relay("search_instruments", args, S.SearchResult)


async def get_instrument(code: C.Code, *, ctx: Context[Any, Any]) -> Annotated[CallToolResult, S.InstrumentResult]:
    return await relay_of(ctx).relay("get_instrument", {"code": code}, S.InstrumentResult)


async def list_sectors(*, ctx: Context[Any, Any]) -> Annotated[CallToolResult, S.SectorsResult]:
    return await relay_of(ctx).relay("list_sectors", {}, S.SectorsResult)


TOOLS = (get_quote, get_klines, get_ticks, search_instruments, get_instrument, list_sectors)
