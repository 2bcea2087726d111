"""The approval tool of the MCP Apps order ticket (server/apps.py): a person's Approve / Deny.

`decide_approval` is app-only (`_meta.ui.visibility == ["app"]`): an MCP Apps host lists it to the
ticket it renders, never to the model. A client that did not negotiate MCP Apps has no ticket, so its
call can only be an agent's: refused here. The worker then takes it as channel "app", and counts it
only where `[approval] channels` lists "app" (worker/approvals.py, worker/api.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.apps import client_supports_apps
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult

from ... import calls as C
from ...domain.errors import ErrorCode, QmtError
from .. import schemas as S
from ..results import error_result
from .relay import relay_of

APP_CHANNEL = "app"


async def decide_approval(
    approval_id: C.ApprovalId, decision: Literal["approve", "deny"],
    note: C.DecisionNote = None,
    *, ctx: Context[Any, Any],
) -> Annotated[CallToolResult, S.DecideApprovalResult]:
    if not client_supports_apps(ctx):
        return error_result(QmtError(
            "decide_approval is the MCP Apps order ticket's, for a person; this client has no MCP Apps",
            code=ErrorCode.UNAUTHORIZED, hint="A person decides in the ticket, the operator console or with "
            "qmt-mcp approve / deny.", details={"channel": APP_CHANNEL}), S.DecideApprovalResult)
    args = {"approval_id": approval_id, "decision": decision, "note": note, "channel": APP_CHANNEL}
    return await relay_of(ctx).relay("decide_approval", args, S.DecideApprovalResult)


TOOLS = (decide_approval,)
