"""What a tool function needs from the server it runs in: the relay of a call to the worker."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, cast

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult

from .. import schemas as S


class Relay(Protocol):
    async def relay(
        self, name: str, args: dict[str, Any], model: type[S.Envelope], extra: float = 0,
        on_payload: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    ) -> CallToolResult:
        """The worker's answer to `name` as the tool's result (errors as error results)."""
        ...

    async def relay_watching(
        self, name: str, args: dict[str, Any], model: type[S.Envelope], wait: float, ctx: Context[Any, Any],
        client_order_id: str | None, order_id: int | None,
    ) -> CallToolResult:
        """As `relay`, reporting the order's events as progress notifications while it waits."""
        ...


def relay_of(ctx: Context[Any, Any]) -> Relay:
    return cast(Relay, ctx.mcp_server)
