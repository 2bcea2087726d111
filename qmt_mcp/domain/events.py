"""The journal's events as types: one frozen class per event type, and the words they use.

An event class holds what its event says, typed (Decimal yuan, the domain's enums); `payload()` is
its wire form (Decimal to float, enums to their words), the same fields the event always had.

The envelope is not the event's to set. `seq`, `time` and `type` belong to the journal
(worker/journal.py `Journal.append`): it numbers the event, dates it and names its type from the
class, and no class may declare a field with one of those names (refused when the class is
defined), so no payload can overwrite them. `account`, `order_id` and `client_order_id` are the
envelope's other keys, kept in the journal's own indexed columns: they are set on the event, and
leave `payload()` to travel in those columns.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any, ClassVar, Literal

from .money import money_float
from .orders import OrderRecord, Side
from .status import OrderStatus

FeeDetail = Literal["itemized", "derived"]   # see backends/port.py BrokerTrade
JOURNAL_OWNED = frozenset({"seq", "time", "type"})
ENVELOPE = ("seq", "time", "account", "type", "order_id", "client_order_id")   # in wire order


class EventType(StrEnum):
    """Every event type the journal records: the contract's eight, `gap` and `unmatched`, the
    approvals' two and the conditional orders' five (CONTRACT.md 0.2)."""

    ORDER_STATUS = "order_status"
    TRADE = "trade"
    ORDER_ERROR = "order_error"
    CANCEL_ERROR = "cancel_error"
    ACCOUNT_STATUS = "account_status"
    DISCONNECTED = "disconnected"
    RECONCILED = "reconciled"
    RISK = "risk"
    GAP = "gap"                # the reader followed another journal before (seq started over)
    UNMATCHED = "unmatched"    # a broker push that fits none of our records
    APPROVAL_REQUESTED = "approval_requested"   # an order waits for a person
    APPROVAL_DECIDED = "approval_decided"       # approved, denied or expired: once
    # Conditional orders held by the gateway (domain/conditions.py, worker/conditions.py)
    CONDITION_ARMED = "condition_armed"
    CONDITION_TRIGGERED = "condition_triggered"   # with its order's client_order_id; an alert's has none
    CONDITION_CANCELED = "condition_canceled"
    CONDITION_EXPIRED = "condition_expired"
    CONDITION_FAILED = "condition_failed"         # refused when it fired: error_code says why; nothing sent


class AccountStatus(StrEnum):
    """An account's state at the counter, as a word (the xtquant adapter maps its numbers)."""

    OK = "ok"
    WAITING_LOGIN = "waiting_login"
    LOGGING_IN = "logging_in"
    FAILED = "failed"
    INITIALIZING = "initializing"
    CORRECTING = "correcting"            # the counter is refreshing and correcting its data
    CLOSED = "closed"                    # after the close
    ASSIST_FAILED = "assist_failed"      # the secondary (穿透) link dropped
    DISABLED_BY_SYSTEM = "disabled_by_system"
    DISABLED_BY_USER = "disabled_by_user"
    INVALID = "invalid"
    UNKNOWN = "unknown"                  # a number the adapter does not know


# A field's wire form when it is not the default (Decimal -> float): yuan amounts are rounded to the
# fen, as every money figure on the wire is.
_MONEY: dict[str, Callable[[Decimal], object]] = {"wire": money_float}
# Fields an event leaves out when they are None (it carries one of two shapes of figures).
_OPTIONAL = {"omit_if_none": True}

EVENT_CLASSES: dict[EventType, type[Event]] = {}


def _wire(value: object) -> object:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Enum):
        return value.value
    return value


# Per event class: (field, omitted when None, its wire conversion) for each field of its payload.
_PAYLOAD_PLANS: dict[type, tuple[tuple[str, bool, Callable[[Any], Any] | None], ...]] = {}


@dataclass(frozen=True, kw_only=True)
class Event:
    """What every event has besides the journal's `seq`, `time` and `type`."""

    type: ClassVar[EventType]
    account: str
    order_id: int | None = None
    client_order_id: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Checked on the class body's own annotations: the dataclass has not made fields of them yet.
        taken = JOURNAL_OWNED & set(inspect.get_annotations(cls))
        if taken:
            raise TypeError(f"{cls.__name__} declares {', '.join(sorted(taken))}: the journal sets those")
        kind = cls.__dict__.get("type")
        if not isinstance(kind, EventType):
            raise TypeError(f"{cls.__name__} must name its EventType in `type`")
        if kind in EVENT_CLASSES:
            raise TypeError(f"{kind.value} has a class already: {EVENT_CLASSES[kind].__name__}")
        EVENT_CLASSES[kind] = cls

    def payload(self) -> dict[str, Any]:
        """The event's own fields in their wire form, without the envelope."""
        plan = _PAYLOAD_PLANS.get(type(self))
        if plan is None:   # once per class: every order appends two or three events
            plan = _PAYLOAD_PLANS[type(self)] = tuple(
                (f.name, bool(f.metadata.get("omit_if_none")), f.metadata.get("wire"))
                for f in fields(self) if f.name not in ENVELOPE)
        out: dict[str, Any] = {}
        for name, omit_if_none, convert in plan:
            value = getattr(self, name)
            if value is None and omit_if_none:
                continue
            out[name] = convert(value) if convert is not None and value is not None else _wire(value)
        return out


@dataclass(frozen=True, kw_only=True)
class OrderStatusEvent(Event):
    """An order's status as the broker (or the order path) last set it."""

    type = EventType.ORDER_STATUS
    client_order_id: str
    code: str
    side: Side
    status: OrderStatus
    volume: int
    traded_volume: int
    traded_price: Decimal
    status_msg: str

    @classmethod
    def of(cls, r: OrderRecord) -> OrderStatusEvent:
        return cls(account=r.account, order_id=r.order_id, client_order_id=r.client_order_id, code=r.code,
                   side=r.side, status=r.status, volume=r.volume, traded_volume=r.traded_volume,
                   traded_price=r.traded_price, status_msg=r.status_msg)


@dataclass(frozen=True, kw_only=True)
class TradeEvent(Event):
    """One fill of one of our orders; fees itemized (see backends/port.py BrokerTrade), yuan."""

    type = EventType.TRADE
    order_id: int
    client_order_id: str
    code: str
    side: Side
    trade_id: str
    price: Decimal
    volume: int
    amount: Decimal
    commission: Decimal = field(metadata=_MONEY)
    stamp_duty: Decimal = field(metadata=_MONEY)
    transfer_fee: Decimal = field(metadata=_MONEY)
    fees: Decimal = field(metadata=_MONEY)    # the three together
    fee_detail: FeeDetail


@dataclass(frozen=True, kw_only=True)
class OrderErrorEvent(Event):
    """The broker refused an order after taking it for processing (xtquant's on_order_error)."""

    type = EventType.ORDER_ERROR
    order_id: int
    error_id: int
    message: str


@dataclass(frozen=True, kw_only=True)
class CancelErrorEvent(Event):
    """The broker refused a cancel (xtquant's on_cancel_error)."""

    type = EventType.CANCEL_ERROR
    order_id: int
    error_id: int
    message: str


@dataclass(frozen=True, kw_only=True)
class AccountStatusEvent(Event):
    """The counter reported a change in an account's state (xtquant's on_account_status)."""

    type = EventType.ACCOUNT_STATUS
    status: AccountStatus


@dataclass(frozen=True, kw_only=True)
class DisconnectedEvent(Event):
    """The connection to the broker dropped (journaled for each account it carried): orders and
    queries are refused with TRADER_DISCONNECTED until it is back, and what happened meanwhile is
    reconciled then. The event's time is when the drop was reported."""

    type = EventType.DISCONNECTED
    message: str   # why, as far as the backend said


@dataclass(frozen=True, kw_only=True)
class ReconciledEvent(Event):
    """Reconciliation brought a record to what the broker says (or found it never arrived)."""

    type = EventType.RECONCILED
    client_order_id: str
    code: str
    side: Side
    status: OrderStatus
    volume: int
    traded_volume: int
    traded_price: Decimal
    status_msg: str
    reason: str                                      # what ran it: start, timer, reconnect, cancel, ...
    resolution: Literal["status", "external", "never_arrived"]
    previous_status: OrderStatus | None              # None: imported (we had no record)

    @classmethod
    def of(cls, r: OrderRecord, *, reason: str, resolution: Literal["status", "external", "never_arrived"],
           previous_status: OrderStatus | None) -> ReconciledEvent:
        return cls(account=r.account, order_id=r.order_id, client_order_id=r.client_order_id, code=r.code,
                   side=r.side, status=r.status, volume=r.volume, traded_volume=r.traded_volume,
                   traded_price=r.traded_price, status_msg=r.status_msg, reason=reason, resolution=resolution,
                   previous_status=previous_status)


@dataclass(frozen=True, kw_only=True)
class RiskEvent(Event):
    """The breaker tripped, or a person reset it (`rule` RESET, `message` their note)."""

    type = EventType.RISK
    rule: str
    message: str


@dataclass(frozen=True, kw_only=True)
class GapEvent(Event):
    """A reader followed another journal before this one: seq started over, re-read state."""

    type = EventType.GAP
    message: str
    previous_journal_id: str
    previous_last_seq: int


@dataclass(frozen=True, kw_only=True)
class UnmatchedEvent(Event):
    """A broker push that fits none of our records: an order push (code, side, volume, status) or a
    fill (a trade's figures), left to reconciliation and get_trades; `message` says which."""

    type = EventType.UNMATCHED
    order_id: int
    push: Literal["order", "trade"]
    code: str
    side: Side
    trade_id: str | None = field(default=None, metadata=_OPTIONAL)
    price: Decimal | None = field(default=None, metadata=_OPTIONAL)
    volume: int
    amount: Decimal | None = field(default=None, metadata=_OPTIONAL)
    commission: Decimal | None = field(default=None, metadata={**_MONEY, **_OPTIONAL})
    stamp_duty: Decimal | None = field(default=None, metadata={**_MONEY, **_OPTIONAL})
    transfer_fee: Decimal | None = field(default=None, metadata={**_MONEY, **_OPTIONAL})
    fees: Decimal | None = field(default=None, metadata={**_MONEY, **_OPTIONAL})
    fee_detail: FeeDetail | None = field(default=None, metadata=_OPTIONAL)
    status: OrderStatus | None = field(default=None, metadata=_OPTIONAL)

    @property
    def message(self) -> str:
        what = ("not applied: reconciliation records the broker's order" if self.push == "order"
                else "not journaled as a trade; get_trades lists it")
        return f"a broker {self.push} push that fits none of our records; {what}"

    def payload(self) -> dict[str, Any]:
        return {**super().payload(), "message": self.message}


@dataclass(frozen=True, kw_only=True)
class ApprovalRequestedEvent(Event):
    """An order passed every check and waits for a person, or an agent's breaker reset does
    (worker/approvals.py); nothing was sent, nothing was reset."""

    type = EventType.APPROVAL_REQUESTED
    approval_id: str
    expires_at: str
    channels: list[str]
    # "order": a waiting order (client_order_id names it); "reset_risk": an agent's breaker reset on an
    # account `[approval] human` covers, which has no order (client_order_id null); "condition": a
    # conditional order waiting to be armed (client_order_id: what its order will carry).
    kind: Literal["order", "reset_risk", "condition"] = "order"


@dataclass(frozen=True, kw_only=True)
class ApprovalDecidedEvent(Event):
    """A person approved or denied a waiting order or reset, or it expired undecided (channel "timer")."""

    type = EventType.APPROVAL_DECIDED
    approval_id: str
    decision: Literal["approved", "denied", "expired"]
    channel: str
    note: str
    kind: Literal["order", "reset_risk", "condition"] = "order"


@dataclass(frozen=True, kw_only=True)
class _ConditionFields:
    """What every condition event says: which condition, of what, and where it stands now."""

    condition_id: str
    code: str
    side: Side
    volume: int
    trigger: dict[str, Any]
    status: str
    status_msg: str
    oco_group: str | None = field(default=None, metadata=_OPTIONAL)


@dataclass(frozen=True, kw_only=True)
class ConditionArmedEvent(_ConditionFields, Event):
    """A condition is armed: the worker watches its quotes (client_order_id: what its order will carry)."""

    type = EventType.CONDITION_ARMED


@dataclass(frozen=True, kw_only=True)
class ConditionTriggeredEvent(_ConditionFields, Event):
    """A condition fired, recorded before its order is sent (client_order_id: the order's, None for an
    alert); `triggered_price` is the last price that fired it (None: a time trigger)."""

    type = EventType.CONDITION_TRIGGERED
    alert: bool
    triggered_price: Decimal | None = None


@dataclass(frozen=True, kw_only=True)
class ConditionCanceledEvent(_ConditionFields, Event):
    """Canceled by the agent, by its OCO group firing (status_msg says which), or denied by a person."""

    type = EventType.CONDITION_CANCELED


@dataclass(frozen=True, kw_only=True)
class ConditionExpiredEvent(_ConditionFields, Event):
    type = EventType.CONDITION_EXPIRED


@dataclass(frozen=True, kw_only=True)
class ConditionFailedEvent(_ConditionFields, Event):
    """The checks refused the order when the condition fired; nothing was sent."""

    type = EventType.CONDITION_FAILED
    error_code: str
    rule: str | None = None   # the refusing check or risk rule (details.rule), where it names one
