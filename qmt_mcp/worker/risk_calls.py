"""The risk calls of the worker API: status per account, and the breaker reset (a note; a token on
live accounts; a person's approval where `[approval] human` covers the account, approvals.py)."""

from __future__ import annotations

from typing import Any

from ..calls import RiskStatusArgs, WorkerResetArgs
from ..config import AccountConfig
from ..domain.errors import ConfirmError, ErrorCode
from ..domain.timeutil import iso
from .args import nonblank
from .person import person_needed
from .riskbook import RiskBook, account_view
from .service import WorkerService


class RiskCalls:
    def __init__(self, service: WorkerService) -> None:
        self.service = service

    async def get_risk_status(self, args: RiskStatusArgs) -> dict[str, Any]:
        svc = self.service
        names = [svc.account(args.account)[0]] if args.account is not None else list(svc.cfg.accounts)
        out: dict[str, Any] = {}
        for name in names:
            limits = svc.limits_for(name)
            view = await account_view(svc.broker, svc.cfg.accounts[name].account_id)
            state = svc.risk.refresh(name, view.total_asset, limits)
            usage = svc.risk.usage(name, view.volume.keys())
            baseline, total = state.baseline, view.total_asset
            out[name] = {
                "baseline_total_asset": None if baseline is None else float(baseline),
                "current_total_asset": float(total),
                "daily_pnl": None if baseline is None else float(total - baseline),
                "breaker": {"tripped": state.tripped, "reason": state.reason, "tripped_at": state.tripped_at},
                "kill_switch": limits.kill_switch,
                # A person's kill switch / block list over the config's (null fields: the config's applies).
                "operator": svc.risk.override(name).to_wire(),
                "limits": limits.to_wire(),
                "usage": RiskBook.usage_wire(usage),
            }
        return {"accounts": out}

    def _reset_token(self, args: WorkerResetArgs) -> tuple[str, AccountConfig, str | None]:
        """The account and the spent-or-not token of a reset; a live account without a token gets
        one issued (CONFIRM_REQUIRED carrying it), which is the first of the two steps."""
        svc = self.service
        name, acct = svc.account(args.account)
        token = nonblank(args.confirm_token, "confirm_token")
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

    async def check_reset(self, args: WorkerResetArgs) -> dict[str, Any]:
        """reset_risk's decision without resetting: the proof a person's confirmation will carry,
        when one is needed (person.py)."""
        nonblank(args.note, "note")
        name, acct, token_id = self._reset_token(args)
        if token_id is None or not person_needed(self.service.cfg, acct, args.person):
            return {"person": None}
        proof, expires = self.service.proofs.issue("reset_risk", {"account": name}, token_id,
                                                   self.service.clock.now())
        return {"person": {"proof": proof, "expires_at": expires, "order": {"account": name}}}

    async def reset_risk(self, args: WorkerResetArgs) -> dict[str, Any]:
        svc = self.service
        note = nonblank(args.note, "note")
        async with svc.order_lock:  # a reset and an order decision never interleave
            name, acct, token_id = self._reset_token(args)
            if token_id is not None and person_needed(svc.cfg, acct, args.person):
                svc.proofs.verify(nonblank(args.person_proof, "person_proof"), "reset_risk", {"account": name},
                                  token_id, svc.clock.now())
            if token_id is not None and not svc.journal.use_token(token_id, iso(svc.clock.now())):
                raise ConfirmError("this confirm token was already used", code=ErrorCode.CONFIRM_USED)
            view = await account_view(svc.broker, acct.account_id)
            if svc.approvals.covers(acct):
                # The agent's reset is a request: a person lifts the breaker (`qmt-mcp approve`), or not.
                approval = svc.approvals.request_reset(name, note)
                state = svc.risk.refresh(name, view.total_asset, svc.limits_for(name))
                return {"breaker": {"tripped": state.tripped, "reason": state.reason}, "approval": approval}
            at = svc.risk.reset(name, note, view.total_asset)
        svc.notify()
        return {"breaker": {"tripped": False}, "reset_at": at}
