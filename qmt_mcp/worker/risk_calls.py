"""The risk calls of the worker API: status per account, and the breaker reset (a note; a token on
live accounts)."""

from __future__ import annotations

from typing import Any

from ..config import AccountConfig
from ..domain.errors import ConfirmError, ErrorCode
from ..domain.timeutil import iso
from .args import opt_str, req_str
from .person import person_needed
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

    def _reset_token(self, args: dict[str, Any]) -> tuple[str, AccountConfig, str | None]:
        """The account and the spent-or-not token of a reset; a live account without a token gets
        one issued (CONFIRM_REQUIRED carrying it), which is the first of the two steps."""
        svc = self.service
        name, acct = svc.account(args)
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
        if token_id is not None and svc.journal.token_used(token_id):
            raise ConfirmError("this confirm token was already used", code=ErrorCode.CONFIRM_USED)
        return name, acct, token_id

    async def check_reset(self, args: dict[str, Any]) -> dict[str, Any]:
        """reset_risk's decision without resetting: the proof a person's confirmation will carry,
        when one is needed (person.py)."""
        req_str(args, "note", 200)
        name, acct, token_id = self._reset_token(args)
        if token_id is None or not person_needed(self.service.cfg, acct, args):
            return {"person": None}
        proof, expires = self.service.proofs.issue("reset_risk", {"account": name}, token_id,
                                                   self.service.clock.now())
        return {"person": {"proof": proof, "expires_at": expires, "order": {"account": name}}}

    async def reset_risk(self, args: dict[str, Any]) -> dict[str, Any]:
        svc = self.service
        note = req_str(args, "note", 200)
        async with svc.order_lock:  # a reset and an order decision never interleave
            name, acct, token_id = self._reset_token(args)
            if token_id is not None and person_needed(svc.cfg, acct, args):
                svc.proofs.verify(opt_str(args, "person_proof", 1024), "reset_risk", {"account": name}, token_id,
                                  svc.clock.now())
            if token_id is not None and not svc.journal.use_token(token_id, iso(svc.clock.now())):
                raise ConfirmError("this confirm token was already used", code=ErrorCode.CONFIRM_USED)
            at = svc.risk.reset(name, note)
        svc.notify()
        return {"breaker": {"tripped": False}, "reset_at": at}
