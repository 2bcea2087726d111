"""The stored form of a condition (JSON in the journal's conditions table, exact decimals as text)
and its events, built one way from the record."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from ..domain.conditions import Condition, ConditionStatus, OrderSpec, Trigger, TriggerType
from ..domain.events import ApprovalDecidedEvent, Event
from ..domain.orders import MarketType, OrderType, Side
from ..domain.timeutil import iso

_FIELDS = tuple(f.name for f in fields(Condition))


def to_json(c: Condition) -> str:
    # Field by field, not dataclasses.asdict: asdict deep-copies the record recursively, ~4x the cost,
    # and a firing writes two or three of them on its way to the counter.
    d: dict[str, Any] = {name: getattr(c, name) for name in _FIELDS}
    t = c.trigger
    d["trigger"] = {"type": t.type.value, "price": _text(t.price), "trail_percent": _text(t.trail_percent),
                    "trail_amount": _text(t.trail_amount), "at": None if t.at is None else iso(t.at)}
    d["order"] = None if c.order is None else {"order_type": c.order.order_type.value, "price": _text(c.order.price),
                                               "market_type": None if c.order.market_type is None
                                               else c.order.market_type.value}
    for name in ("high_water", "triggered_price"):
        d[name] = _text(getattr(c, name))
    return json.dumps(d)


def from_json(text: str) -> Condition:
    d = json.loads(text)
    t = d["trigger"]
    d["trigger"] = Trigger(TriggerType(t["type"]), _dec(t["price"]), _dec(t["trail_percent"]),
                           _dec(t["trail_amount"]), None if t["at"] is None else datetime.fromisoformat(t["at"]))
    o = d["order"]
    d["order"] = None if o is None else OrderSpec(OrderType(o["order_type"]), _dec(o["price"]),
                                                  None if o["market_type"] is None else MarketType(o["market_type"]))
    d["side"] = Side(d["side"])
    d["status"] = ConditionStatus(d["status"])
    d["high_water"] = _dec(d["high_water"])
    d["triggered_price"] = _dec(d["triggered_price"])
    return Condition(**d)


def _text(d: Decimal | None) -> str | None:
    return None if d is None else str(d)


def _dec(s: str | None) -> Decimal | None:
    return None if s is None else Decimal(s)


def condition_event(cls: type[Event], c: Condition, **extra: Any) -> Event:
    fields: dict[str, Any] = {
        "account": c.account, "order_id": c.order_id, "client_order_id": None if c.alert else c.client_order_id,
        "condition_id": c.condition_id, "code": c.code, "side": c.side, "volume": c.volume,
        "trigger": c.trigger.to_wire(), "status": c.status.value, "status_msg": c.status_msg,
        "oco_group": c.oco_group, **extra}
    return cls(**fields)


def approval_decided(a: dict[str, Any], decision: Literal["approved", "denied", "expired"], channel: str,
             note: str) -> ApprovalDecidedEvent:
    return ApprovalDecidedEvent(account=a["account"], client_order_id=a["client_order_id"] or None,
                                approval_id=a["approval_id"], decision=decision, channel=channel, note=note,
                                kind="condition")
