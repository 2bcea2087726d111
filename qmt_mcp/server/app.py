"""The MCP front: typed tools over the worker, resources and prompts.

Every tool returns the contract envelope as structuredContent (it validates against the tool's
outputSchema on success and on error) and sets isError on errors. The server keeps no trading
state: everything is the worker's.
"""

from __future__ import annotations

import difflib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import Context, ElicitationResult, MCPServer, Resolve
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.types import (
    CallToolResult,
    Tool,
    ToolAnnotations,
)
from pydantic import BeforeValidator, Field, ValidationError

from .. import __version__
from ..domain.errors import ErrorCode, QmtError
from . import schemas as S
from .descriptions import TOOLS
from .events import EventFeed, LegacySubscriptions
from .human import (
    ConfirmHuman,
    Gate,
    HumanConfirm,
    WorkerCall,
    ask_order,
    ask_reset,
    gate_order,
    gate_reset,
    refusal_of,
)
from .resources import register_legacy_subscriptions, register_prompts, register_resources
from .results import error_result, result
from .schema_shape import simplify
from .worker_client import WorkerClient

log = logging.getLogger("qmt_mcp.server")

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                            open_world_hint=True)
ORDER = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True)
CANCEL = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=True)



def _digits_as_text(width: int) -> Callable[[Any], Any]:
    """Some clients send a bare number for a code or a date (the newer Inspector CLI turns
    `code=600000` into 600000): take it as the digits it was typed as."""

    def convert(value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 0 or len(str(value)) > width:
                raise ValueError(f"a number here must have at most {width} digits")
            return str(value).zfill(6) if width == 6 else str(value)
        return value

    return convert


Account = Annotated[str, Field(description="configured account name, e.g. sim (see list_accounts)")]
Code = Annotated[str, BeforeValidator(_digits_as_text(6)),
                 Field(description="instrument code: 600000.SH, sh600000 or 600000")]
When = Annotated[str | None, BeforeValidator(_digits_as_text(14)),
                 Field(description="YYYYMMDD, YYYYMMDDHHMMSS or ISO-8601")]
Side = Literal["buy", "sell"]
Volume = Annotated[int, Field(gt=0, description="shares (not lots)")]
Price = Annotated[float | None, Field(gt=0, description="yuan per share; required for limit orders")]
MarketType = Literal["best5_cancel", "best5_limit", "counterparty_best", "own_best", "ioc", "fok"]
Wait = Annotated[float, Field(ge=0, le=60, description="seconds to wait for a final status (0-60)")]
Cid = Annotated[str | None, Field(pattern=r"^[A-Za-z0-9_-]{1,24}$",
                                  description="your id for this order (1-24 letters, digits, - _)")]


@dataclass
class ServerDeps:
    client: WorkerClient
    restarts: Callable[[], int] = field(default=lambda: 0)
    backend: str = "sim"


DepsFactory = Callable[[], AbstractAsyncContextManager[ServerDeps]]
_SHAPED: dict[str, dict[str, Any]] = {}


def _shaped(schema: dict[str, Any]) -> dict[str, Any]:
    key = json.dumps(schema, sort_keys=True)
    if key not in _SHAPED:
        _SHAPED[key] = simplify(schema)
    return _SHAPED[key]


class QmtServer(MCPServer[Any]):
    """MCPServer whose argument-validation failures are contract envelopes, not bare text."""

    deps: ServerDeps | None = None
    feed: EventFeed | None = None
    confirm_human: ConfirmHuman = "off"

    def worker_call(self) -> WorkerCall | None:
        return None if self.deps is None else self.deps.client.call

    _arg_names: dict[str, frozenset[str]] | None = None

    async def list_tools(self) -> list[Tool]:
        """The tools with their output schemas in the shape clients check fastest (schema_shape), and
        input schemas that say no other argument is taken."""
        return [t.model_copy(update={
                    "output_schema": None if t.output_schema is None else _shaped(t.output_schema),
                    "input_schema": {**t.input_schema, "additionalProperties": False}})
                for t in await super().list_tools()]

    async def _unknown_arguments(self, name: str, arguments: dict[str, Any]) -> CallToolResult | None:
        """An argument the tool does not take is refused, never ignored: a typo such as `qty` or
        `wait_second` must not silently change what an order does."""
        if self._arg_names is None:
            self._arg_names = {t.name: frozenset(t.input_schema.get("properties", {}))
                               for t in await super().list_tools()}
        known = self._arg_names.get(name)
        if known is None:
            return None  # not a tool of ours: the SDK answers "Unknown tool"
        unknown = sorted(set(arguments) - known)
        if not unknown:
            return None
        guesses = {u: m[0] for u in unknown if (m := difflib.get_close_matches(u, known, n=1))}
        hint = ("; ".join(f"{u}: did you mean {g}?" for u, g in guesses.items()) if guesses
                else f"{name} takes: {', '.join(sorted(known)) or 'no arguments'}")
        err = QmtError(f"{name} does not take {', '.join(unknown)}", code=ErrorCode.INVALID_ARGUMENT, hint=hint,
                       details={"arguments": unknown, "accepted": sorted(known)})
        return error_result(err)

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        refused = await self._unknown_arguments(name, arguments or {})
        if refused is not None:
            return refused
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError):
                fields = sorted({".".join(str(p) for p in e["loc"]) for e in cause.errors()})
                msgs = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in cause.errors())
                err = QmtError(f"invalid arguments: {msgs}", code=ErrorCode.INVALID_ARGUMENT,
                               details={"arguments": fields})
                return error_result(err)
            if name not in TOOLS:
                raise
            log.exception("tool %s failed", name)
            return error_result(QmtError("the server hit an unexpected error", code=ErrorCode.INTERNAL,
                                         state_changed="unknown"))


def build_server(open_deps: DepsFactory, confirm_human: ConfirmHuman = "off") -> QmtServer:
    bus = InMemorySubscriptionBus()
    legacy = LegacySubscriptions()

    @asynccontextmanager
    async def lifespan(server: MCPServer[Any]) -> AsyncIterator[ServerDeps]:
        if srv.deps is not None:
            # Already open for this process: SSE enters the lifespan once per connection, inside the
            # app-wide entry http.py holds. Share it; a second worker supervisor and event feed would
            # notify every subscriber twice and, on closing, take the worker from the other clients.
            yield srv.deps
            return
        async with open_deps() as deps, anyio.create_task_group() as tg:
            srv.deps = deps
            srv.feed = EventFeed(deps.client, bus, legacy)
            tg.start_soon(srv.feed.run)
            # The feed starts at the journal's end: let it attach before the first call, so an order
            # placed at once still has its events followed (bounded: a worker that is down must not
            # hold up the start).
            with anyio.move_on_after(2.0):
                await srv.feed.first_hello.wait()
            try:
                yield deps
            finally:
                srv.deps = None
                srv.feed = None
                tg.cancel_scope.cancel()

    srv = QmtServer(
        "qmt-mcp", version=__version__, log_level="WARNING", lifespan=lifespan, subscriptions=bus,
        instructions=(
            "Trade China A-shares through miniQMT (or the built-in simulator). Volumes are shares, "
            "prices yuan. Preview before placing, show the preview to the person, pass a client_order_id, "
            "and after SUBMIT_INDETERMINATE use get_order instead of placing again."
        ),
    )
    srv.confirm_human = confirm_human

    async def call(
        name: str, args: dict[str, Any], model: type[S.Envelope], extra: float = 0,
        on_payload: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    ) -> CallToolResult:
        deps = srv.deps
        if deps is None:
            return error_result(QmtError("the server is not connected to a worker",
                                         code=ErrorCode.WORKER_UNAVAILABLE), model)
        clean = {k: v for k, v in args.items() if v is not None}
        try:
            payload = await deps.client.call(name, clean, extra)
            if on_payload is not None:
                await on_payload(payload)
            if name == "health":
                payload["worker"]["restarts"] = deps.restarts()
                feed = srv.feed
                payload["events"] = {"connected": bool(feed and feed.connected),
                                     "last_seq": feed.last_seq if feed else 0, "gaps": feed.gaps if feed else 0}
            env = model.model_validate({"ok": True, **payload})
        except QmtError as exc:
            if name == "health" and exc.code is ErrorCode.WORKER_UNAVAILABLE:
                return result(_worker_down(deps))
            return error_result(exc, model)
        except ValidationError:
            log.exception("worker answer to %s does not fit its schema", name)
            return error_result(QmtError("the worker's answer did not fit the schema", code=ErrorCode.INTERNAL,
                                         state_changed="unknown"), model)
        return result(env)

    async def call_watching(
        name: str, args: dict[str, Any], model: type[S.Envelope], wait: float, ctx: Context[Any, Any],
        client_order_id: str | None, order_id: int | None,
    ) -> CallToolResult:
        """A waiting call that reports each of the order's events as a progress notification."""
        feed = srv.feed
        if feed is None or wait <= 0:
            return await call(name, args, model, wait)
        async with feed.watch(str(args["account"]), client_order_id, order_id) as watch, \
                anyio.create_task_group() as tg:

            async def progress() -> None:
                n = 0
                async for ev in watch.receive:
                    n += 1
                    what = ev.get("status") or f"{ev.get('volume')} @ {ev.get('price')}"
                    await ctx.report_progress(n, None, f"{ev['type']}: {what}")

            async def catch_up(payload: dict[str, Any]) -> None:
                # The worker answers the moment the order is final; the events up to that moment may
                # still be on their way down the stream. Let them arrive so progress ends with them.
                with anyio.move_on_after(2.0):
                    await feed.reached(int(payload.get("journal_seq") or 0))

            tg.start_soon(progress)
            try:
                res = await call(name, args, model, wait, on_payload=catch_up)
            finally:
                watch.close()  # progress reports what arrived, then ends
        return res

    def tool(name: str, annotations: ToolAnnotations) -> Callable[[Any], Any]:
        title, description = TOOLS[name]
        return srv.tool(name=name, title=title, description=description, annotations=annotations)

    @tool("health", READ_ONLY)
    async def health() -> Annotated[CallToolResult, S.HealthResult]:
        return await call("health", {}, S.HealthResult)

    @tool("list_accounts", READ_ONLY)
    async def list_accounts() -> Annotated[CallToolResult, S.ListAccountsResult]:
        return await call("list_accounts", {}, S.ListAccountsResult)

    @tool("get_quote", READ_ONLY)
    async def get_quote(
        codes: Annotated[list[Code], Field(min_length=1, max_length=50, description="1-50 instrument codes")],
    ) -> Annotated[CallToolResult, S.GetQuoteResult]:
        return await call("get_quote", {"codes": codes}, S.GetQuoteResult)

    @tool("get_klines", READ_ONLY)
    async def get_klines(
        code: Code,
        period: Literal["1m", "5m", "15m", "30m", "60m", "1d", "1w"] = "1d",
        start: When = None,
        end: When = None,
        count: Annotated[int, Field(ge=1, le=5000)] = 100,
        adjust: Literal["none", "front", "back"] = "none",
    ) -> Annotated[CallToolResult, S.GetKlinesResult]:
        args = {"code": code, "period": period, "start": start, "end": end, "count": count, "adjust": adjust}
        return await call("get_klines", args, S.GetKlinesResult)

    @tool("get_ticks", READ_ONLY)
    async def get_ticks(
        code: Code,
        start: Annotated[str, BeforeValidator(_digits_as_text(14)),
                         Field(description="YYYYMMDD, YYYYMMDDHHMMSS or ISO-8601")],
        end: Annotated[str, BeforeValidator(_digits_as_text(14)),
                       Field(description="YYYYMMDD, YYYYMMDDHHMMSS or ISO-8601")],
        limit: Annotated[int, Field(ge=1, le=5000)] = 100,
    ) -> Annotated[CallToolResult, S.GetTicksResult]:
        return await call("get_ticks", {"code": code, "start": start, "end": end, "limit": limit}, S.GetTicksResult)

    @tool("search_instruments", READ_ONLY)
    async def search_instruments(
        query: Annotated[str | None, Field(max_length=40, description="code prefix or part of the name")] = None,
        sector: Annotated[str | None, Field(max_length=40, description="a name from list_sectors")] = None,
        limit: Annotated[int, Field(ge=1, le=500)] = 20,
    ) -> Annotated[CallToolResult, S.SearchResult]:
        return await call("search_instruments", {"query": query, "sector": sector, "limit": limit}, S.SearchResult)

    @tool("get_instrument", READ_ONLY)
    async def get_instrument(code: Code) -> Annotated[CallToolResult, S.InstrumentResult]:
        return await call("get_instrument", {"code": code}, S.InstrumentResult)

    @tool("list_sectors", READ_ONLY)
    async def list_sectors() -> Annotated[CallToolResult, S.SectorsResult]:
        return await call("list_sectors", {}, S.SectorsResult)

    @tool("get_asset", READ_ONLY)
    async def get_asset(account: Account) -> Annotated[CallToolResult, S.AssetResult]:
        return await call("get_asset", {"account": account}, S.AssetResult)

    @tool("get_positions", READ_ONLY)
    async def get_positions(account: Account) -> Annotated[CallToolResult, S.PositionsResult]:
        return await call("get_positions", {"account": account}, S.PositionsResult)

    @tool("get_orders", READ_ONLY)
    async def get_orders(account: Account, cancelable_only: bool = False) -> Annotated[CallToolResult, S.OrdersResult]:
        return await call("get_orders", {"account": account, "cancelable_only": cancelable_only}, S.OrdersResult)

    @tool("get_trades", READ_ONLY)
    async def get_trades(account: Account) -> Annotated[CallToolResult, S.TradesResult]:
        return await call("get_trades", {"account": account}, S.TradesResult)

    @tool("get_order", READ_ONLY)
    async def get_order(
        account: Account,
        order_id: Annotated[int | None, Field(description="the broker's order id")] = None,
        client_order_id: Cid = None,
        wait_seconds: Wait = 0,
        *,
        ctx: Context[Any, Any],
    ) -> Annotated[CallToolResult, S.OrderResult]:
        args = {"account": account, "order_id": order_id, "client_order_id": client_order_id,
                "wait_seconds": wait_seconds}
        return await call_watching("get_order", args, S.OrderResult, wait_seconds, ctx, client_order_id, order_id)

    @tool("preview_order", READ_ONLY)
    async def preview_order(
        account: Account, code: Code, side: Side, volume: Volume, price: Price = None,
        order_type: Literal["limit", "market"] = "limit", market_type: MarketType | None = None,
    ) -> Annotated[CallToolResult, S.PreviewResult]:
        args = {"account": account, "code": code, "side": side, "volume": volume, "price": price,
                "order_type": order_type, "market_type": market_type}
        return await call("preview_order", args, S.PreviewResult)

    @tool("place_order", ORDER)
    async def place_order(
        account: Account, code: Code, side: Side, volume: Volume, price: Price = None,
        order_type: Literal["limit", "market"] = "limit", market_type: MarketType | None = None,
        client_order_id: Cid = None,
        confirm_token: Annotated[str | None, Field(max_length=1024, description="from preview_order")] = None,
        wait_seconds: Wait = 0,
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
        return await call_watching("place_order", args, S.PlaceResult, wait_seconds, ctx, client_order_id, None)

    @tool("cancel_order", CANCEL)
    async def cancel_order(
        account: Account, order_id: Annotated[int, Field(description="the broker's order id")],
        confirm_token: Annotated[str | None, Field(
            max_length=1024, description="live accounts, orders placed by hand (ext-…): from the first call's "
                                         "CONFIRM_REQUIRED")] = None,
    ) -> Annotated[CallToolResult, S.CancelResult]:
        args = {"account": account, "order_id": order_id, "confirm_token": confirm_token}
        return await call("cancel_order", args, S.CancelResult)

    @tool("get_risk_status", READ_ONLY)
    async def get_risk_status(
        account: Annotated[str | None, Field(description="one account; all when omitted")] = None,
    ) -> Annotated[CallToolResult, S.RiskStatusResult]:
        return await call("get_risk_status", {"account": account}, S.RiskStatusResult)

    @tool("reset_risk", ORDER)
    async def reset_risk(
        account: Account,
        note: Annotated[str, Field(min_length=1, max_length=200, description="why, recorded with the reset")],
        confirm_token: Annotated[str | None, Field(max_length=1024)] = None,
        *,
        gate: Annotated[Gate, Resolve(gate_reset)],
        person: Annotated[ElicitationResult[HumanConfirm], Resolve(ask_reset)],
    ) -> Annotated[CallToolResult, S.ResetRiskResult]:
        refusal = gate.refusal or refusal_of(person)
        if refusal is not None:
            return error_result(refusal, S.ResetRiskResult)
        args = {"account": account, "note": note, "confirm_token": confirm_token, **gate.worker_args(person)}
        return await call("reset_risk", args, S.ResetRiskResult)

    @tool("get_order_events", READ_ONLY)
    async def get_order_events(
        account: Account,
        after_seq: Annotated[int, Field(ge=0)] = 0,
        limit: Annotated[int, Field(ge=1, le=1000)] = 100,
        wait_seconds: Annotated[float, Field(ge=0, le=60, description="long-poll up to this many seconds")] = 0,
    ) -> Annotated[CallToolResult, S.EventsResult]:
        args = {"account": account, "after_seq": after_seq, "limit": limit, "wait_seconds": wait_seconds}
        return await call("get_order_events", args, S.EventsResult, wait_seconds)

    register_resources(srv)
    register_legacy_subscriptions(srv, legacy)
    register_prompts(srv)
    return srv


def _worker_down(deps: ServerDeps) -> S.HealthResult:
    return S.HealthResult(
        ok=True,
        worker=S.WorkerHealth(state="down", backend="xtquant" if deps.backend == "xtquant" else "sim",
                              version=__version__, uptime_s=0, xtquant_loaded=False, restarts=deps.restarts()),
        data=S.DataHealth(fresh=False, stale_codes=[]),
        accounts={},
    )
