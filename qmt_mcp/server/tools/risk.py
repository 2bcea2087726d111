"""Risk tools: the status of each account, and a breaker reset (asked of the person where config says)."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context, ElicitationResult, Resolve
from mcp.types import CallToolResult

from ... import calls as C
from .. import schemas as S
from ..human import Gate, HumanConfirm, ask_reset, gate_reset, refusal_of
from ..results import error_result
from .relay import relay_of


async def get_risk_status(
    account: C.MaybeAccount = None, *, ctx: Context[Any, Any],
) -> Annotated[CallToolResult, S.RiskStatusResult]:
    return await relay_of(ctx).relay("get_risk_status", {"account": account}, S.RiskStatusResult)


async def reset_risk(
    account: C.Account, note: C.Note, confirm_token: C.ResetToken = None,
    *,
    gate: Annotated[Gate, Resolve(gate_reset)],
    person: Annotated[ElicitationResult[HumanConfirm], Resolve(ask_reset)],
    ctx: Context[Any, Any],
) -> Annotated[CallToolResult, S.ResetRiskResult]:
    refusal = gate.refusal or refusal_of(person)
    if refusal is not None:
        return error_result(refusal, S.ResetRiskResult)
    args = {"account": account, "note": note, "confirm_token": confirm_token, **gate.worker_args(person)}
    return await relay_of(ctx).relay("reset_risk", args, S.ResetRiskResult)


TOOLS = (get_risk_status, reset_risk)
