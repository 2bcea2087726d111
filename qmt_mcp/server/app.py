"""The MCP front: typed tools over the worker, resources and prompts.

Every tool returns the contract envelope as structuredContent (it validates against the tool's
outputSchema on success and on error) and sets isError on errors. The server keeps no trading
state: everything is the worker's. The tools themselves are named functions in `server/tools/`;
their names, titles, descriptions and annotations come from the catalogue (`qmt_mcp/calls.py`).
"""

from __future__ import annotations

import difflib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.types import CallToolResult, Tool, ToolAnnotations
from pydantic import ValidationError

from .. import __version__
from ..calls import CATALOGUE, Kind, invalid_arguments
from ..config import ApprovalConfig
from ..domain.errors import ErrorCode, QmtError
from . import schemas as S
from .apps import VIEWS, build_apps
from .events import EventFeed, LegacySubscriptions
from .human import ConfirmHuman, WorkerCall, never_asks, without_asking
from .listen import FoldingListenHandler
from .quote_resources import register_quotes
from .quotes import QuoteHub
from .resources import register_legacy_subscriptions, register_prompts, register_resources
from .results import error_result, result
from .schema_shape import simplify
from .tools import TOOLS as TOOL_FUNCTIONS
from .worker_client import WorkerClient

log = logging.getLogger("qmt_mcp.server")

ANNOTATIONS: dict[Kind, ToolAnnotations] = {
    "read": ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True),
    "order": ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True),
    "cancel": ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=True),
}


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
    quotes: QuoteHub | None = None   # quotes to subscribers (server/quotes.py)
    listen_handler: FoldingListenHandler | None = None
    confirm_human: ConfirmHuman = "off"
    # Whether an order may wait for a person who can decide in the chat ([approval] with the
    # elicitation channel): only then does place_order look before it sends (an extra worker call).
    approval_by_elicitation: bool = False

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
                return error_result(invalid_arguments(cause))
            if name not in TOOL_FUNCTIONS:
                raise
            log.exception("tool %s failed", name)
            return error_result(QmtError("the server hit an unexpected error", code=ErrorCode.INTERNAL,
                                         state_changed="unknown"))

    async def relay(
        self, name: str, args: dict[str, Any], model: type[S.Envelope], extra: float = 0,
        on_payload: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    ) -> CallToolResult:
        """The worker's answer to `name` as the tool's result: the envelope, errors included."""
        deps = self.deps
        if deps is None:
            return error_result(QmtError("the server is not connected to a worker",
                                         code=ErrorCode.WORKER_UNAVAILABLE), model)
        clean = {k: v for k, v in args.items() if v is not None}
        try:
            payload = await deps.client.call(name, clean, extra)
            if on_payload is not None:
                await on_payload(payload)
            payload.pop("journal_seq", None)  # the worker's note for the event feed, not the tool's result
            if name == "health":
                payload["worker"]["restarts"] = deps.restarts()
                feed = self.feed
                payload["events"] = {"connected": bool(feed and feed.connected),
                                     "last_seq": feed.last_seq if feed else 0, "gaps": feed.gaps if feed else 0}
            env = model.model_validate({"ok": True, **payload})
        except QmtError as exc:
            if name == "health" and exc.code is ErrorCode.WORKER_UNAVAILABLE:
                return result(_worker_down(deps))
            return error_result(exc, model)
        except ValidationError as exc:
            # The schemas forbid fields they do not list: a drift between worker and schema is loud.
            log.error("worker answer to %s does not fit its schema: %s", name, exc)
            return error_result(QmtError("the worker's answer did not fit the schema", code=ErrorCode.INTERNAL,
                                         state_changed="unknown"), model)
        return result(env)

    async def relay_watching(
        self, name: str, args: dict[str, Any], model: type[S.Envelope], wait: float, ctx: Context[Any, Any],
        client_order_id: str | None, order_id: int | None,
    ) -> CallToolResult:
        """A waiting call that reports each of the order's events as a progress notification."""
        feed = self.feed
        if feed is None or wait <= 0:
            return await self.relay(name, args, model, wait)
        async with feed.watch(str(args["account"]), client_order_id, order_id) as watch, \
                anyio.create_task_group() as tg:

            async def progress() -> None:
                n = 0
                async for ev in watch.receive:
                    n += 1
                    await ctx.report_progress(n, None, progress_message(ev))

            async def catch_up(payload: dict[str, Any]) -> None:
                # The worker answers the moment the order is final; the events up to that moment may
                # still be on their way down the stream. Let them arrive so progress ends with them.
                with anyio.move_on_after(2.0):
                    await feed.reached(int(payload.get("journal_seq") or 0))

            tg.start_soon(progress)
            try:
                res = await self.relay(name, args, model, wait, on_payload=catch_up)
            finally:
                watch.close()  # progress reports what arrived, then ends
        return res


def progress_message(ev: dict[str, Any]) -> str:
    """One of a watched order's events as a progress line; a wait for a person says where to decide."""
    if ev["type"] == "approval_requested":
        aid = ev.get("approval_id")
        return f"waiting for a person: qmt-mcp approve {aid} (or qmt-mcp deny {aid}); expires {ev.get('expires_at')}"
    if ev["type"] == "approval_decided":
        return f"approval_decided: {ev.get('decision')} ({ev.get('channel')})"
    what = ev.get("status") or f"{ev.get('volume')} @ {ev.get('price')}"
    return f"{ev['type']}: {what}"


def build_server(
    open_deps: DepsFactory, confirm_human: ConfirmHuman = "off", approval: ApprovalConfig | None = None,
) -> QmtServer:
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
            if srv.quotes is not None:
                srv.quotes.client = deps.client
                tg.start_soon(srv.quotes.run)
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

    def registration(name: str) -> dict[str, Any]:
        tool = CATALOGUE[name].tool
        if tool is None:
            raise ValueError(f"{name} is not a tool in the catalogue")
        return {"name": name, "title": tool.title, "description": tool.description,
                "annotations": ANNOTATIONS[tool.kind]}

    # The tools with a view (MCP Apps) are the extension's, registered as the server is built.
    apps = build_apps({name: (TOOL_FUNCTIONS[name], registration(name)) for name in VIEWS})
    srv = QmtServer(
        "qmt-mcp", version=__version__, log_level="WARNING", lifespan=lifespan, subscriptions=bus, extensions=[apps],
        instructions=(
            "Trade China A-shares through miniQMT (or the built-in simulator). Volumes are shares, "
            "prices yuan. Preview before placing, show the preview to the person, pass a client_order_id, "
            "and after SUBMIT_INDETERMINATE use get_order instead of placing again."
        ),
    )
    srv.confirm_human = confirm_human
    srv.approval_by_elicitation = (approval is not None and approval.human != "off"
                                   and "elicitation" in approval.channels)

    unasked = never_asks(confirm_human, srv.approval_by_elicitation)
    for call in CATALOGUE.values():
        if call.tool is not None and call.name not in VIEWS:
            fn = TOOL_FUNCTIONS[call.name]
            srv.tool(**registration(call.name))(without_asking(fn) if unasked else fn)
    register_resources(srv)
    register_quotes(srv, bus, legacy)
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
