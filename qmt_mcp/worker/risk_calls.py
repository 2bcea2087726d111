"""The risk calls of the worker API: status per account, and the breaker reset (a note; a token on
live accounts)."""

from __future__ import annotations

from typing import Any

from ..domain.errors import ConfirmError, ErrorCode
from ..domain.timeutil import iso
from .args import opt_str, req_str
from .riskbook import RiskBook
from .service import WorkerService


class RiskCalls:
    def __init__(self, service: WorkerService) -> None:
        self.service = service

    async def get_risk_status(self, args: dict[str, Any]) -> dict[str, Any]:
        svc = self.service
        names = [svc.account(args)[0]] if args.get("account") is not None else list(svc.cfg.accounts)
        out: dict[str, Any] = {}
        for name in names:
            acct = svc.cfg.accounts[name]
            limits = svc.cfg.risk_for(name)
            state = await svc.risk.refresh(name, acct.account_id, limits)
            usage = await svc.risk.usage(name, acct.account_id)
            baseline = state["baseline"]
            out[name] = {
                "baseline_total_asset": None if baseline is None else float(baseline),
                "current_total_asset": float(state["total_asset"]),
                "daily_pnl": None if baseline is None else float(state["total_asset"] - baseline),
                "breaker": {"tripped": state["tripped"], "reason": state["reason"],
                            "tripped_at": state["tripped_at"]},
                "kill_switch": limits.kill_switch,
                "limits": limits.to_wire(),
                "usage": RiskBook.usage_wire(usage),
            }
        return {"accounts": out}

    async def reset_risk(self, args: dict[str, Any]) -> dict[str, Any]:
        svc = self.service
        name, acct = svc.account(args)
        note = req_str(args, "note", 200)
        token = opt_str(args, "confirm_token", 1024)
        fields = {"account": name}
        if acct.live and token is None:
            token, expires = svc.tokens.issue("reset_risk", fields, svc.clock.now())
            raise ConfirmError(
                "a live account's risk reset needs confirming: call reset_risk again with this confirm_token",
                code=ErrorCode.CONFIRM_REQUIRED,
                details={"confirm_token": token, "confirm_expires_at": expires},
            )
        token_id = svc.check_token("reset_risk", fields, token, acct.live)
        if token_id is not None and not svc.journal.use_token(token_id, iso(svc.clock.now())):
            raise ConfirmError("this confirm token was already used", code=ErrorCode.CONFIRM_USED)
        at = svc.risk.reset(name, note)
        svc.notify()
        return {"breaker": {"tripped": False}, "reset_at": at}
