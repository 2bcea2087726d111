"""Approvals: an order that waits for a person (CONTRACT.md "A person in the loop: approvals").

The confirm token proves the agent previewed the order; an approval proves a person agreed. Where
`[approval]` asks for one (`human` live/all, the order's estimated amount above `above_value`), an
order that passed every check (validation, token, risk, the person proof) is recorded
`pending_approval` with a journaled approval bound to its fingerprint, and nothing is sent. Then
exactly one of three things happens, each under the worker's order lock so two deciders decide once:

- a person approves (`decide_approval`, operator key only): validation and risk run again (the token
  was spent when the approval was requested; the order's own pending record is not counted against
  it), and the order goes down the usual path from its record (`pending_submit`, then the broker).
  A refusal at that point ends it `denied`, the refusal's code in `status_msg`;
- a person denies it: `denied`, with who and the note;
- `timeout_s` passes undecided (the worker's periodic job, and any decision that comes late): `denied`,
  `status_msg` "expired".

The decision and the order's new status are written in one transaction, and a decision is recorded
only where none was (`Journal.decide_approval`), so a restart never applies one twice: a crash after
it leaves `pending_submit`, which reconciliation settles like any other. A second decision is refused
with INVALID_ARGUMENT (details.reason "already_decided"): the approval is a record to look up, not an
order, so NOT_CANCELABLE would name the wrong thing.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from ..calls import DecideApprovalArgs, ListApprovalsArgs
from ..config import AccountConfig
from ..domain.errors import ErrorCode, IdempotencyConflict, InvalidArgument, QmtError
from ..domain.events import ApprovalDecidedEvent, ApprovalRequestedEvent, OrderStatusEvent
from ..domain.orders import MarketType, OrderRecord, OrderRequest, OrderType, Side
from ..domain.status import OrderStatus
from ..domain.text import clean_text
from ..domain.timeutil import iso

if TYPE_CHECKING:
    from .service import WorkerService

log = logging.getLogger("qmt_mcp.worker")
Decision = Literal["approved", "denied", "expired"]
TIMER = "timer"   # the channel of an expiry: nobody decided


def request_of(fp: dict[str, str]) -> OrderRequest:
    """The order an approval is bound to, from its fingerprint (the fields its token was bound to)."""
    return OrderRequest(
        account=fp["account"], code=fp["code"], side=Side(fp["side"]), volume=int(fp["volume"]),
        order_type=OrderType(fp["order_type"]), price=Decimal(fp["price"]) if fp["price"] else None,
        market_type=MarketType(fp["market_type"]) if fp["market_type"] else None,
    )


class Approvals:
    def __init__(self, service: WorkerService) -> None:
        self.svc = service

    def needed(self, acct: AccountConfig, amount: Decimal) -> bool:
        """Whether an order of `amount` yuan (the estimate) on `acct` waits for a person."""
        cfg = self.svc.cfg.approval
        if cfg.human == "off" or (cfg.human == "live" and not acct.live):
            return False
        return amount > cfg.above_value

    def request(self, rec: OrderRecord) -> OrderRecord:
        """Record `rec` (every check passed) as waiting for a person, with its approval and the
        `approval_requested` event, in one transaction. Call under the order lock."""
        svc = self.svc
        now = svc.clock.now()
        approval_id = f"ap-{svc.ids.client_order_id()}"
        expires = iso(now + timedelta(seconds=svc.cfg.approval.timeout_s))
        channels = [str(c) for c in svc.cfg.approval.channels]
        hint = (f"waiting for a person: qmt-mcp approve {approval_id} (or deny {approval_id}); "
                f"expires {expires}, and nothing is sent before")
        # Set, not advanced: the record is new, and pending_approval is where it starts.
        waiting = replace(rec, status=OrderStatus.PENDING_APPROVAL, approval={
            "approval_id": approval_id, "expires_at": expires, "channels": channels, "hint": hint})
        with svc.journal.batch():
            if not svc.journal.insert_order(waiting):
                raise IdempotencyConflict(f"client_order_id {rec.client_order_id} is already recorded",
                                          details={"client_order_id": rec.client_order_id})
            svc.journal.insert_approval({"approval_id": approval_id, "account": rec.account,
                                         "client_order_id": rec.client_order_id, "fingerprint": rec.fingerprint,
                                         "created_at": iso(now), "expires_at": expires})
            svc.journal.append(ApprovalRequestedEvent(account=rec.account, client_order_id=rec.client_order_id,
                                                      approval_id=approval_id, expires_at=expires,
                                                      channels=channels), now)
        log.info("approval %s requested for client_order_id=%s", approval_id, rec.client_order_id)
        svc.notify()
        return waiting

    # ----- the operator calls
    async def list_approvals(self, args: ListApprovalsArgs) -> dict[str, Any]:
        """The undecided approvals, oldest first, each with its order."""
        out = []
        for a in self.svc.journal.pending_approvals():
            rec = self.svc.journal.order_by_client_id(a["account"], a["client_order_id"])
            if rec is None:
                continue   # its record was set aside as unreadable: nothing to decide about
            out.append({"approval_id": a["approval_id"], "account": a["account"], "order": rec.to_wire(),
                        "amount": float(rec.price * rec.volume), "created_at": a["created_at"],
                        "expires_at": a["expires_at"]})
        return {"approvals": out}

    async def decide_approval(self, args: DecideApprovalArgs) -> dict[str, Any]:
        """A person's decision. Raises InvalidArgument (unknown id; already decided; expired, which is
        recorded first) and UNAUTHORIZED when `[approval] channels` leaves out the caller's channel."""
        svc = self.svc
        if args.channel not in svc.cfg.approval.channels:
            raise QmtError(f"approval.channels does not include {args.channel!r}: a decision from there does not count",
                           code=ErrorCode.UNAUTHORIZED, details={"channel": args.channel})
        note = clean_text(args.note or "")
        async with svc.order_lock:
            a = svc.journal.approval(args.approval_id)
            if a is None:
                raise InvalidArgument(f"no approval named {args.approval_id!r}",
                                      details={"argument": "approval_id", "reason": "unknown_approval"})
            if a["decision"] is not None:
                raise _already(a)
            rec = svc.journal.order_by_client_id(a["account"], a["client_order_id"])
            if rec is None or rec.status is not OrderStatus.PENDING_APPROVAL or rec.fingerprint != a["fingerprint"]:
                raise QmtError("the approval's order record is not the one it was bound to",
                               code=ErrorCode.INTERNAL, details={"approval_id": args.approval_id})
            if svc.clock.now() >= datetime.fromisoformat(a["expires_at"]):
                self._close(a, rec, "expired", TIMER, "")
                raise InvalidArgument("the approval expired before the decision came; nothing was sent",
                                      state_changed="yes", details={"argument": "approval_id", "reason": "expired"})
            if args.decision == "deny":
                closed = self._close(a, rec, "denied", args.channel, note)
                return {"approval_id": a["approval_id"], "decision": "denied", "order": closed.to_wire()}
            return await self._approve(a, rec, args.channel, note)

    async def _approve(self, a: dict[str, Any], rec: OrderRecord, channel: str, note: str) -> dict[str, Any]:
        svc = self.svc
        _, acct = svc.account(rec.account)
        req = request_of(rec.fingerprint)
        try:
            await svc.recheck(req, acct, rec.client_order_id)
        except QmtError as exc:
            why = f"approved by a person ({channel}) but refused on the second check: {exc.code.value}: {exc.message}"
            closed = self._close(a, rec, "approved", channel, note, status_msg=why)
            return {"approval_id": a["approval_id"], "decision": "approved", "order": closed.to_wire(),
                    "refused": exc.to_dict()}
        now = svc.clock.now()
        going = rec.advanced(OrderStatus.PENDING_SUBMIT)
        with svc.journal.batch():
            if not svc.journal.decide_approval(a["approval_id"], "approved", iso(now), channel, note):
                raise _already(a)   # unreachable under the order lock; the journal's word is final
            svc.journal.put_order(going)
            svc.journal.append(self._event(a, "approved", channel, note), now)
        log.info("approval %s approved (%s): sending client_order_id=%s", a["approval_id"], channel,
                 rec.client_order_id)
        svc.notify()
        await svc.send_recorded(rec.account, acct, req, rec.client_order_id)
        sent = svc.journal.order_by_client_id(rec.account, rec.client_order_id)
        return {"approval_id": a["approval_id"], "decision": "approved", "order": (sent or going).to_wire()}

    def _close(self, a: dict[str, Any], rec: OrderRecord, decision: Decision, channel: str, note: str,
               status_msg: str | None = None) -> OrderRecord:
        """Record `decision` and end the order `denied` (nothing was sent), in one transaction."""
        svc = self.svc
        now = svc.clock.now()
        if status_msg is None:
            status_msg = "expired" if decision == "expired" else \
                f"denied by a person ({channel})" + (f": {note}" if note else "")
        denied = rec.advanced(OrderStatus.DENIED, status_msg=status_msg)
        with svc.journal.batch():
            if not svc.journal.decide_approval(a["approval_id"], decision, iso(now), channel, note):
                raise _already(a)
            svc.journal.put_order(denied)
            svc.journal.append(self._event(a, decision, channel, note), now)
            svc.journal.append(OrderStatusEvent.of(denied), now)
        log.info("approval %s %s (%s): client_order_id=%s denied, nothing sent", a["approval_id"], decision, channel,
                 rec.client_order_id)
        svc.notify()
        return denied

    @staticmethod
    def _event(a: dict[str, Any], decision: Decision, channel: str, note: str) -> ApprovalDecidedEvent:
        return ApprovalDecidedEvent(account=a["account"], client_order_id=a["client_order_id"],
                                    approval_id=a["approval_id"], decision=decision, channel=channel, note=note)

    async def expire(self) -> list[str]:
        """End every approval whose time is up (the worker's periodic job); their ids."""
        svc = self.svc
        now = svc.clock.now()
        due = [a for a in svc.journal.pending_approvals() if now >= datetime.fromisoformat(a["expires_at"])]
        if not due:
            return []
        done = []
        async with svc.order_lock:
            for a in due:
                rec = svc.journal.order_by_client_id(a["account"], a["client_order_id"])
                current = svc.journal.approval(a["approval_id"])
                if rec is None or current is None or current["decision"] is not None:
                    continue   # decided meanwhile, or its record is unreadable
                if rec.status is OrderStatus.PENDING_APPROVAL:
                    self._close(a, rec, "expired", TIMER, "")
                    done.append(a["approval_id"])
        return done


def _already(a: dict[str, Any]) -> InvalidArgument:
    return InvalidArgument(f"approval {a['approval_id']} was decided already; a decision is final",
                           details={"argument": "approval_id", "reason": "already_decided",
                                    "decision": a.get("decision")})
