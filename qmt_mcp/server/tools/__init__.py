"""The MCP tools, one named function each, by area; `TOOLS` lists them for registration (server/app.py),
which takes each one's name, title, description and annotations from the catalogue (qmt_mcp/calls.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import accounts, approvals, conditions, history, market, orders, risk

TOOLS: dict[str, Callable[..., Any]] = {
    fn.__name__: fn for module in (market, accounts, orders, risk, history, conditions, approvals)
    for fn in module.TOOLS
}
