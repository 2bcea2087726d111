"""Order status: the contract strings and the lifecycle as one table.

`TRANSITIONS[state]` lists every status an order may move to from `state`; `advance()` is the
only way a status changes. Anything else is refused and the order keeps its state. The broker
statuses are xtquant's, in its order; their numbers are backends/xtq/constants.py's.
"""

from __future__ import annotations

from enum import StrEnum

from .errors import InternalError


class OrderStatus(StrEnum):
    UNREPORTED = "unreported"
    WAIT_REPORTING = "wait_reporting"
    REPORTED = "reported"
    REPORTED_CANCEL = "reported_cancel"
    PARTSUCC_CANCEL = "partsucc_cancel"
    PART_CANCEL = "part_cancel"
    CANCELED = "canceled"
    PART_SUCC = "part_succ"
    SUCCEEDED = "succeeded"
    JUNK = "junk"
    UNKNOWN = "unknown"
    # Local states: never reported by a broker.
    PENDING_SUBMIT = "pending_submit"  # recorded, broker call not yet answered
    INDETERMINATE = "indeterminate"  # sent, outcome unknown until reconciled
    PENDING_APPROVAL = "pending_approval"  # every check passed; waits for a person, nothing sent
    DENIED = "denied"  # a person denied it, or its approval expired, or the second check refused it: never sent


TERMINAL = frozenset({OrderStatus.PART_CANCEL, OrderStatus.CANCELED, OrderStatus.SUCCEEDED, OrderStatus.JUNK,
                      OrderStatus.DENIED})
CANCELABLE = frozenset(
    {
        OrderStatus.UNREPORTED,
        OrderStatus.WAIT_REPORTING,
        OrderStatus.REPORTED,
        OrderStatus.PART_SUCC,
    }
)

S = OrderStatus
_LIVE_BROKER = frozenset(
    {S.UNREPORTED, S.WAIT_REPORTING, S.REPORTED, S.REPORTED_CANCEL, S.PARTSUCC_CANCEL, S.PART_SUCC}
)
# DENIED is local: no broker ever reports it, so no broker status leads there.
_ANY_BROKER = _LIVE_BROKER | (TERMINAL - {S.DENIED}) | {S.UNKNOWN}

TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    # Before the broker answers, its pushes may already carry a later state (a marketable order
    # can be filled before the order call returns), so any broker status is possible.
    S.PENDING_SUBMIT: _ANY_BROKER | {S.INDETERMINATE},
    # A person's decision, and only that, leaves it: approved goes down the usual path from the
    # record (pending_submit), denied or expired ends it. No broker push can move it: it was never sent.
    S.PENDING_APPROVAL: frozenset({S.PENDING_SUBMIT, S.DENIED}),
    # Only reconciliation leaves `indeterminate`, to whatever the broker holds (or junk if it never saw it).
    S.INDETERMINATE: _ANY_BROKER,
    S.UNREPORTED: _ANY_BROKER - {S.UNREPORTED},
    S.WAIT_REPORTING: _ANY_BROKER - {S.UNREPORTED, S.WAIT_REPORTING},
    S.REPORTED: frozenset(
        {
            S.REPORTED_CANCEL,
            S.PARTSUCC_CANCEL,
            S.PART_SUCC,
            S.SUCCEEDED,
            S.CANCELED,
            S.PART_CANCEL,
            S.JUNK,
            S.UNKNOWN,
        }
    ),
    # A fill can race a cancel request: the exchange matched before it saw the cancel.
    S.REPORTED_CANCEL: frozenset(
        {S.CANCELED, S.PART_CANCEL, S.PARTSUCC_CANCEL, S.PART_SUCC, S.SUCCEEDED, S.UNKNOWN}
    ),
    S.PART_SUCC: frozenset({S.PART_SUCC, S.PARTSUCC_CANCEL, S.PART_CANCEL, S.SUCCEEDED, S.UNKNOWN}),
    S.PARTSUCC_CANCEL: frozenset({S.PARTSUCC_CANCEL, S.PART_CANCEL, S.SUCCEEDED, S.UNKNOWN}),
    S.UNKNOWN: _ANY_BROKER,
    S.PART_CANCEL: frozenset(),
    S.CANCELED: frozenset(),
    S.SUCCEEDED: frozenset(),
    S.JUNK: frozenset(),
    S.DENIED: frozenset(),
}


class IllegalTransition(InternalError):
    """A status change the lifecycle table does not allow; the order keeps its state."""


def can_advance(current: OrderStatus, new: OrderStatus) -> bool:
    return new == current or new in TRANSITIONS[current]


def advance(current: OrderStatus, new: OrderStatus) -> OrderStatus:
    """The order's next status; a repeat of the same status is a no-op (pushes repeat)."""
    if can_advance(current, new):
        return new
    raise IllegalTransition(f"order status cannot go from {current} to {new}")

