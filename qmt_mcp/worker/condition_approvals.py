"""A person in the loop for conditional orders: where `[approval]` asks for one, arming waits
(`pending_approval`, an approval row of kind "condition" bound to the condition's id, its event);
approved, the condition is armed then; denied, expired or canceled first, it ends canceled, never
armed. Firing never waits for anyone (CONTRACT.md). worker/approvals.py routes the decisions here,
under the worker's order lock, and the decision and the condition's new status commit together.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from ..domain.conditions import Condition, ConditionStatus
from ..domain.errors import InvalidArgument, OrderNotFound
from ..domain.events import ApprovalRequestedEvent, ConditionArmedEvent, ConditionCanceledEvent
from ..domain.timeutil import iso
from .condition_store import approval_decided, condition_event

if TYPE_CHECKING:
    from .conditions import Conditions

log = logging.getLogger("qmt_mcp.worker")


def request_approval(conds: Conditions, c: Condition, now: datetime) -> Condition:
    """Record `c` as waiting for a person, with its approval row and event (inside the caller's batch)."""
    svc = conds.svc
    approval_id = f"ap-{svc.ids.client_order_id()}"
    expires = iso(now + timedelta(seconds=svc.cfg.approval.timeout_s))
    channels = [str(ch) for ch in svc.cfg.approval.channels]
    hint = (f"waiting for a person: qmt-mcp approve {approval_id} (or deny {approval_id}); expires {expires}, "
            "and the condition is not armed before")
    waiting = replace(c, status=ConditionStatus.PENDING_APPROVAL, status_msg="waits for a person to approve it",
                      approval={"approval_id": approval_id, "expires_at": expires, "channels": channels,
                                "hint": hint})
    conds.save(waiting)
    svc.journal.insert_approval({"approval_id": approval_id, "account": c.account,
                                 "client_order_id": c.client_order_id,
                                 "fingerprint": {"kind": "condition", "account": c.account,
                                                 "condition_id": c.condition_id},
                                 "created_at": iso(now), "expires_at": expires})
    svc.journal.append(ApprovalRequestedEvent(account=c.account, client_order_id=c.client_order_id,
                                              approval_id=approval_id, expires_at=expires, channels=channels,
                                              kind="condition"), now)
    return waiting


def approval_entry(conds: Conditions, a: dict[str, Any]) -> dict[str, Any] | None:
    """A pending condition approval as `qmt-mcp approvals` lists it: the order it would send."""
    try:
        c = conds.find(a["account"], a["fingerprint"]["condition_id"])
    except OrderNotFound:
        return None
    spec = c.order
    price = (spec.price if spec is not None and spec.price is not None else c.trigger.price) or Decimal(0)
    order = {"client_order_id": c.client_order_id, "code": c.code, "name": c.name, "side": c.side.value,
             "volume": c.volume, "price": float(price), "status": c.status.value}
    return {"approval_id": a["approval_id"], "kind": "condition", "account": c.account, "order": order,
            "condition": conds.wire(c), "amount": float(price * c.volume)}


def decide(conds: Conditions, a: dict[str, Any], decision: str, channel: str, note: str) -> dict[str, Any]:
    """A person's decision on arming a condition (under the order lock, from approvals.py):
    approved, it is armed now; denied or expired, it ends canceled, never armed."""
    svc = conds.svc
    c = conds.find(a["account"], a["fingerprint"]["condition_id"])
    now = svc.clock.now()
    if now >= datetime.fromisoformat(a["expires_at"]):
        expire_approval(conds, a)
        raise InvalidArgument("the approval expired before the decision came; the condition was not armed",
                              state_changed="yes", details={"argument": "approval_id", "reason": "expired"})
    word: Literal["approved", "denied"] = "approved" if decision == "approve" else "denied"
    who = f"{word} by a person ({channel})" + (f": {note}" if note else "")
    with svc.journal.batch():
        if not svc.journal.decide_approval(a["approval_id"], word, iso(now), channel, note):
            raise InvalidArgument(f"approval {a['approval_id']} was decided already; a decision is final",
                                  details={"argument": "approval_id", "reason": "already_decided"})
        svc.journal.append(approval_decided(a, word, channel, note), now)
        if word == "approved":
            c = c.advanced(ConditionStatus.ARMED, status_msg=who)
            conds.save(c)
            svc.journal.append(condition_event(ConditionArmedEvent, c), now)
        else:
            c = c.advanced(ConditionStatus.CANCELED, status_msg=who)
            conds.save(c)
            svc.journal.append(condition_event(ConditionCanceledEvent, c), now)
    log.info("approval %s %s (%s): condition %s is %s", a["approval_id"], word, channel, c.condition_id,
             c.status.value)
    svc.notify()
    wire = conds.wire(c)
    return {"approval_id": a["approval_id"], "decision": word, "kind": "condition", "condition": wire,
            "order": {"client_order_id": c.client_order_id, "status": c.status.value, "status_msg": c.status_msg}}


def expire_approval(conds: Conditions, a: dict[str, Any]) -> None:
    """Nobody decided in time: the approval expires and the condition ends canceled, never armed."""
    svc = conds.svc
    now = svc.clock.now()
    with svc.journal.batch():
        if not svc.journal.decide_approval(a["approval_id"], "expired", iso(now), "timer", ""):
            return
        svc.journal.append(approval_decided(a, "expired", "timer", ""), now)
        try:
            c = conds.find(a["account"], a["fingerprint"]["condition_id"])
        except OrderNotFound:
            return
        if c.status is ConditionStatus.PENDING_APPROVAL:
            c = c.advanced(ConditionStatus.CANCELED, status_msg="its approval expired undecided; never armed")
            conds.save(c)
            svc.journal.append(condition_event(ConditionCanceledEvent, c), now)
    svc.notify()
