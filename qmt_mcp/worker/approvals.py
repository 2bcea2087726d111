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

An approval has a kind. "order" is the above. "reset_risk" is an agent's breaker reset on an account
`[approval] human` covers (CONTRACT.md: for live accounts reset_risk from an agent is a request): the
agent's call, its token spent, records the request and resets nothing; approved, the breaker lifts
then, with the agent's note and the person's; denied or expired, it stays as it was. Its row has no
order (client_order_id ""), and its fingerprint {"kind": "reset_risk", "account", "note"} carries the
kind, so the table and the events are the ones orders use.
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
from .riskbook import RiskBook, account_view

if TYPE_CHECKING:
    from .service import WorkerService

log = logging.getLogger("qmt_mcp.worker")
Decision = Literal["approved", "denied", "expired"]
Kind = Literal["order", "reset_risk", "condition"]
TIMER = "timer"   # the channel of an expiry: nobody decided
RESET: Kind = "reset_risk"
CONDITION: Kind = "condition"   # arming a conditional order (worker/conditions.py decides it)


def kind_of(a: dict[str, Any]) -> Kind:
    """An approval row's kind: a reset's or a condition's fingerprint says so; an order's fingerprint
    is its order's fields, which never include "kind"."""
    kind = a["fingerprint"].get("kind")
    return RESET if kind == RESET else CONDITION if kind == CONDITION else "order"


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

    def covers(self, acct: AccountConfig) -> bool:
        """Whether `[approval] human` asks for a person on `acct` (live: live accounts; all: any)."""
        human = self.svc.cfg.approval.human
        return human == "all" or (human == "live" and acct.live)

    def needed(self, acct: AccountConfig, amount: Decimal) -> bool:
        """Whether an order of `amount` yuan (the estimate) on `acct` waits for a person."""
        return self.covers(acct) and amount > self.svc.cfg.approval.above_value

    def _new(self, held: str) -> tuple[str, str, list[str], str]:
        """A new approval's id, expiry, channels and hint (`held`: what does not happen before)."""
        svc = self.svc
        approval_id = f"ap-{svc.ids.client_order_id()}"
        expires = iso(svc.clock.now() + timedelta(seconds=svc.cfg.approval.timeout_s))
        channels = [str(c) for c in svc.cfg.approval.channels]
        hint = (f"waiting for a person: qmt-mcp approve {approval_id} (or deny {approval_id}); "
                f"expires {expires}, and {held} before")
        return approval_id, expires, channels, hint

    def request(self, rec: OrderRecord) -> OrderRecord:
        """Record `rec` (every check passed) as waiting for a person, with its approval and the
        `approval_requested` event, in one transaction. Call under the order lock."""
        svc = self.svc
        now = svc.clock.now()
        approval_id, expires, channels, hint = self._new("nothing is sent")
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

    def request_reset(self, account: str, note: str) -> dict[str, Any]:
        """Record an agent's breaker reset on `account` (its token spent) as waiting for a person, and
        reset nothing; the approval {approval_id, expires_at, channels, hint}. Call under the order lock."""
        svc = self.svc
        now = svc.clock.now()
        approval_id, expires, channels, hint = self._new("the breaker stays tripped")
        with svc.journal.batch():
            svc.journal.insert_approval({"approval_id": approval_id, "account": account, "client_order_id": "",
                                         "fingerprint": {"kind": RESET, "account": account, "note": note},
                                         "created_at": iso(now), "expires_at": expires})
            svc.journal.append(ApprovalRequestedEvent(account=account, approval_id=approval_id, expires_at=expires,
                                                      channels=channels, kind=RESET), now)
        log.info("approval %s requested for a breaker reset on %s", approval_id, account)
        svc.notify()
        return {"approval_id": approval_id, "expires_at": expires, "channels": channels, "hint": hint}

    # ----- the operator calls
    async def list_approvals(self, args: ListApprovalsArgs) -> dict[str, Any]:
        """The undecided approvals, oldest first, each with its order."""
        out: list[dict[str, Any]] = []
        for a in self.svc.journal.pending_approvals():
            when = {"created_at": a["created_at"], "expires_at": a["expires_at"]}
            if kind_of(a) == CONDITION:
                entry = self.svc.conditions.approval_entry(a)
                if entry is not None:
                    out.append({**entry, **when})
                continue
            if kind_of(a) == RESET:
                out.append({"approval_id": a["approval_id"], "kind": RESET, "account": a["account"], "order": None,
                            "reset": {"note": a["fingerprint"]["note"]}, "amount": None, **when})
                continue
            rec = self.svc.journal.order_by_client_id(a["account"], a["client_order_id"])
            if rec is None:
                continue   # its record was set aside as unreadable: nothing to decide about
            out.append({"approval_id": a["approval_id"], "kind": "order", "account": a["account"],
                        "order": rec.to_wire(), "amount": float(rec.price * rec.volume), **when,
                        "preview": await self._preview(rec)})
        return {"approvals": out}

    async def _preview(self, rec: OrderRecord) -> dict[str, Any]:
        """What approving `rec` would meet now, for the person deciding: the rule book's checks, the
        estimate with its fees, and every risk rule's decision, as preview_order shows them, decided
        the way the approval will decide (its own pending record not counted against it). Now, not
        when the agent asked: prices and usage move, and this is what the second check will see."""
        req = request_of(rec.fingerprint)
        try:
            v = await self.svc.decision(req, excluding=rec.client_order_id)
        except QmtError as exc:
            return {"would_accept": False, "error": exc.to_dict()}
        return {"would_accept": v.would_accept, "checks": [c.to_wire() for c in v.checks],
                "estimate": v.est.to_wire(req.side),
                "risk": {"decisions": [d.to_wire() for d in v.decisions], "usage": RiskBook.usage_wire(v.usage)}}

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
            if kind_of(a) == RESET:
                return await self._decide_reset(a, args.decision, args.channel, note)
            if kind_of(a) == CONDITION:
                return svc.conditions.decide(a, args.decision, args.channel, note)
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

    async def decided_by_elicitation(self, rec: OrderRecord) -> None:
        """The person asked through elicitation in the place_order call that recorded `rec` said yes
        (their proof was verified): approve it now, down the same path as any approval (the checks
        run again, then it is sent). Call under the order lock, right after `request`."""
        a = self.svc.journal.approval(str((rec.approval or {})["approval_id"]))
        if a is None:
            raise QmtError("the approval just recorded is missing", code=ErrorCode.INTERNAL)
        await self._approve(a, rec, "elicitation", "the person agreed when asked in the MCP client")

    async def _decide_reset(self, a: dict[str, Any], decision: str, channel: str, note: str) -> dict[str, Any]:
        """A person's decision on an agent's breaker reset. Call under the order lock (where the
        agent's own reset ran), so it never interleaves with an order decision."""
        svc = self.svc
        name, acct = svc.account(a["account"])
        if svc.clock.now() >= datetime.fromisoformat(a["expires_at"]):
            self._record(a, "expired", TIMER, "")
            raise InvalidArgument("the approval expired before the decision came; the breaker was not reset",
                                  state_changed="yes", details={"argument": "approval_id", "reason": "expired"})
        view = await account_view(svc.broker, acct.account_id)
        out: dict[str, Any] = {"approval_id": a["approval_id"], "kind": RESET, "account": name, "order": None}
        if decision == "deny":
            self._record(a, "denied", channel, note)
            state = svc.risk.refresh(name, view.total_asset, svc.limits_for(name))
            return {**out, "decision": "denied", "breaker": {"tripped": state.tripped, "reason": state.reason}}
        # The reset happens now, at today's total asset; the recorded note says who asked and who agreed.
        both = f"{a['fingerprint']['note']} (asked by the agent; approved by a person, {channel}" + \
            (f": {note})" if note else ")")
        now = svc.clock.now()
        with svc.journal.batch():
            if not svc.journal.decide_approval(a["approval_id"], "approved", iso(now), channel, note):
                raise _already(a)
            svc.journal.append(self._event(a, "approved", channel, note), now)
            at = svc.risk.reset(name, both, view.total_asset)
        log.info("approval %s approved (%s): the breaker of %s is reset", a["approval_id"], channel, name)
        svc.notify()
        return {**out, "decision": "approved", "breaker": {"tripped": False}, "reset_at": at}

    def _record(self, a: dict[str, Any], decision: Decision, channel: str, note: str) -> None:
        """Record a decision that changes nothing else (a reset denied or expired)."""
        svc = self.svc
        now = svc.clock.now()
        with svc.journal.batch():
            if not svc.journal.decide_approval(a["approval_id"], decision, iso(now), channel, note):
                raise _already(a)
            svc.journal.append(self._event(a, decision, channel, note), now)
        log.info("approval %s %s (%s): nothing reset", a["approval_id"], decision, channel)
        svc.notify()

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
        kind = kind_of(a)
        return ApprovalDecidedEvent(account=a["account"], client_order_id=a["client_order_id"] or None,
                                    approval_id=a["approval_id"], decision=decision, channel=channel, note=note,
                                    kind=kind)

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
                if current is not None and current["decision"] is None and kind_of(a) == RESET:
                    self._record(a, "expired", TIMER, "")   # the breaker stays as it is
                    done.append(a["approval_id"])
                    continue
                if current is not None and current["decision"] is None and kind_of(a) == CONDITION:
                    svc.conditions.expire_approval(a)   # never armed
                    done.append(a["approval_id"])
                    continue
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
