"""The one exception tree of qmt-mcp. Every error a caller may handle carries a contract code.

    QmtError(code, message, hint, retryable, state_changed, details)
     ├── InvalidArgument            INVALID_ARGUMENT
     ├── UnknownAccount             UNKNOWN_ACCOUNT
     ├── UnknownInstrument          UNKNOWN_INSTRUMENT
     ├── OrderRefused               (validation: nothing left the process, state_changed="no")
     │    MARKET_CLOSED SUSPENDED LOT_SIZE PRICE_TICK PRICE_LIMIT PRICE_CAGE ORDER_TYPE_UNSUPPORTED
     │    INSUFFICIENT_CASH INSUFFICIENT_POSITION
     ├── RiskReject                 RISK_REJECT (details.rule)
     ├── ConfirmError               CONFIRM_REQUIRED CONFIRM_INVALID CONFIRM_EXPIRED CONFIRM_USED
     │                              CONFIRM_MISMATCH CONFIRM_DECLINED
     ├── IdempotencyConflict        IDEMPOTENCY_CONFLICT
     ├── BrokerReject               BROKER_REJECT (the broker saw it and said no)
     ├── SubmitIndeterminate        SUBMIT_INDETERMINATE (may have reached the broker)
     ├── OrderNotFound              ORDER_NOT_FOUND
     ├── NotCancelable              NOT_CANCELABLE
     ├── Unavailable                TRADER_DISCONNECTED WORKER_UNAVAILABLE TIMEOUT CIRCUIT_OPEN
     ├── StateUnwritable            STATE_UNWRITABLE (the journal cannot be written: nothing is sent)
     ├── Unauthorized               UNAUTHORIZED
     └── InternalError              INTERNAL

The classes exist so code can `except` a family; the wire form is `to_dict()` and the code is what
clients branch on. `from_dict` rebuilds the class the code names (`class_of`), so an error keeps its
family across the worker-to-server hop. Pure: no I/O.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

StateChanged = Literal["no", "yes", "unknown"]


class ErrorCode(StrEnum):
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    UNKNOWN_ACCOUNT = "UNKNOWN_ACCOUNT"
    UNKNOWN_INSTRUMENT = "UNKNOWN_INSTRUMENT"
    MARKET_CLOSED = "MARKET_CLOSED"
    SUSPENDED = "SUSPENDED"
    LOT_SIZE = "LOT_SIZE"
    PRICE_TICK = "PRICE_TICK"
    PRICE_LIMIT = "PRICE_LIMIT"
    PRICE_CAGE = "PRICE_CAGE"
    ORDER_TYPE_UNSUPPORTED = "ORDER_TYPE_UNSUPPORTED"
    INSUFFICIENT_CASH = "INSUFFICIENT_CASH"
    INSUFFICIENT_POSITION = "INSUFFICIENT_POSITION"
    RISK_REJECT = "RISK_REJECT"
    CONFIRM_REQUIRED = "CONFIRM_REQUIRED"
    CONFIRM_INVALID = "CONFIRM_INVALID"
    CONFIRM_EXPIRED = "CONFIRM_EXPIRED"
    CONFIRM_USED = "CONFIRM_USED"
    CONFIRM_MISMATCH = "CONFIRM_MISMATCH"
    CONFIRM_DECLINED = "CONFIRM_DECLINED"
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    BROKER_REJECT = "BROKER_REJECT"
    SUBMIT_INDETERMINATE = "SUBMIT_INDETERMINATE"
    ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
    NOT_CANCELABLE = "NOT_CANCELABLE"
    TRADER_DISCONNECTED = "TRADER_DISCONNECTED"
    WORKER_UNAVAILABLE = "WORKER_UNAVAILABLE"
    TIMEOUT = "TIMEOUT"
    CIRCUIT_OPEN = "CIRCUIT_OPEN"
    STATE_UNWRITABLE = "STATE_UNWRITABLE"  # an addition to the contract: the journal cannot be written
    UNAUTHORIZED = "UNAUTHORIZED"
    INTERNAL = "INTERNAL"


# What an agent should do next, per code, when the raiser gives no better hint.
_DEFAULT_HINTS: dict[ErrorCode, str] = {
    ErrorCode.INVALID_ARGUMENT: "Fix the named argument and call again.",
    ErrorCode.UNKNOWN_ACCOUNT: "Call list_accounts for the configured account names.",
    ErrorCode.UNKNOWN_INSTRUMENT: "Use search_instruments to find the code (form 600000.SH).",
    ErrorCode.MARKET_CLOSED: "Wait for the next trading session.",
    ErrorCode.SUSPENDED: "The instrument is suspended today; pick another.",
    ErrorCode.LOT_SIZE: "Use get_instrument for buy_lot_min and buy_lot_step.",
    ErrorCode.PRICE_TICK: "Round the price to the instrument's price_tick.",
    ErrorCode.PRICE_LIMIT: "Keep the price within [down_limit, up_limit] from get_instrument.",
    ErrorCode.PRICE_CAGE: "Move the limit price closer to the current best quote.",
    ErrorCode.ORDER_TYPE_UNSUPPORTED: "Use a limit order or a market_type this exchange supports.",
    ErrorCode.INSUFFICIENT_CASH: "Reduce the volume or price; get_asset shows available cash.",
    ErrorCode.INSUFFICIENT_POSITION: "get_positions shows can_use_volume (today's buys sell from T+1).",
    ErrorCode.RISK_REJECT: "get_risk_status shows the limits and today's usage.",
    ErrorCode.CONFIRM_REQUIRED: "Call preview_order, show it to the person, then pass its confirm_token.",
    ErrorCode.CONFIRM_INVALID: "Call preview_order again for a fresh confirm_token.",
    ErrorCode.CONFIRM_EXPIRED: "Call preview_order again for a fresh confirm_token.",
    ErrorCode.CONFIRM_USED: "A token works once; preview again if you mean a new order.",
    ErrorCode.CONFIRM_MISMATCH: "Send exactly the fields you previewed, or preview the new order.",
    ErrorCode.CONFIRM_DECLINED: "The person declined; do not place this order.",
    ErrorCode.IDEMPOTENCY_CONFLICT: "That client_order_id was used for a different order; use a new id.",
    ErrorCode.BROKER_REJECT: "Read the message; change the order before trying again.",
    ErrorCode.SUBMIT_INDETERMINATE: (
        "The order may have reached the broker. Do not place it again: call get_order with the "
        "client_order_id until its status is known."
    ),
    ErrorCode.ORDER_NOT_FOUND: "get_orders lists today's orders of the account.",
    ErrorCode.NOT_CANCELABLE: "The order is already final; get_order shows its status.",
    ErrorCode.TRADER_DISCONNECTED: "Call health; retry once the trader is alive.",
    ErrorCode.WORKER_UNAVAILABLE: "The worker is restarting or unreachable; call health and retry shortly.",
    ErrorCode.TIMEOUT: "Retry the read shortly; call health if it persists.",
    ErrorCode.CIRCUIT_OPEN: "This broker API is failing; call health and retry later.",
    ErrorCode.STATE_UNWRITABLE: (
        "The worker cannot write its journal (disk full or read-only state dir), so it sends no orders. "
        "Nothing was sent; tell the operator, and retry once the state dir is writable."
    ),
    ErrorCode.UNAUTHORIZED: "Check the bearer token configured for this server.",
    ErrorCode.INTERNAL: "An unexpected error; call health, and report it if it repeats.",
}

_RETRYABLE = {
    ErrorCode.WORKER_UNAVAILABLE,
    ErrorCode.TIMEOUT,
    ErrorCode.CIRCUIT_OPEN,
    ErrorCode.STATE_UNWRITABLE,
    ErrorCode.TRADER_DISCONNECTED,
    ErrorCode.MARKET_CLOSED,
}


class QmtError(Exception):
    """Base of every error with a contract code."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | None = None,
        hint: str | None = None,
        retryable: bool | None = None,
        state_changed: StateChanged = "no",
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.hint = hint if hint is not None else _DEFAULT_HINTS[self.code]
        self.retryable = retryable if retryable is not None else self.code in _RETRYABLE
        self.state_changed: StateChanged = state_changed
        self.details: dict[str, Any] = dict(details or {})

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code.value,
            "message": self.message,
            "hint": self.hint,
            "retryable": self.retryable,
            "state_changed": self.state_changed,
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QmtError:
        """Rebuild an error sent over the wire (worker to server)."""
        try:
            code = ErrorCode(str(data.get("code")))
        except ValueError:
            code = ErrorCode.INTERNAL
        sc = data.get("state_changed")
        state: StateChanged = sc if sc in ("no", "yes", "unknown") else "unknown"
        return class_of(code)(
            str(data.get("message", "")),
            code=code,
            hint=data.get("hint"),
            retryable=bool(data.get("retryable", False)),
            state_changed=state,
            details=data.get("details") or {},
        )


class InvalidArgument(QmtError):
    code = ErrorCode.INVALID_ARGUMENT


class UnknownAccount(QmtError):
    code = ErrorCode.UNKNOWN_ACCOUNT


class UnknownInstrument(QmtError):
    code = ErrorCode.UNKNOWN_INSTRUMENT


class OrderRefused(QmtError):
    """A rule-book refusal: the order never left this process."""


class RiskReject(QmtError):
    code = ErrorCode.RISK_REJECT


class ConfirmError(QmtError):
    code = ErrorCode.CONFIRM_REQUIRED


class IdempotencyConflict(QmtError):
    code = ErrorCode.IDEMPOTENCY_CONFLICT


class BrokerReject(QmtError):
    code = ErrorCode.BROKER_REJECT


class SubmitIndeterminate(QmtError):
    code = ErrorCode.SUBMIT_INDETERMINATE

    def __init__(self, message: str, **kw: Any) -> None:
        kw.setdefault("state_changed", "unknown")
        kw.setdefault("retryable", False)
        super().__init__(message, **kw)


class OrderNotFound(QmtError):
    code = ErrorCode.ORDER_NOT_FOUND


class NotCancelable(QmtError):
    code = ErrorCode.NOT_CANCELABLE


class Unavailable(QmtError):
    code = ErrorCode.WORKER_UNAVAILABLE


class StateUnwritable(QmtError):
    code = ErrorCode.STATE_UNWRITABLE


class Unauthorized(QmtError):
    code = ErrorCode.UNAUTHORIZED


class InternalError(QmtError):
    code = ErrorCode.INTERNAL


_FAMILIES: tuple[tuple[type[QmtError], frozenset[ErrorCode]], ...] = (
    (OrderRefused, frozenset({
        ErrorCode.MARKET_CLOSED, ErrorCode.SUSPENDED, ErrorCode.LOT_SIZE, ErrorCode.PRICE_TICK,
        ErrorCode.PRICE_LIMIT, ErrorCode.PRICE_CAGE, ErrorCode.ORDER_TYPE_UNSUPPORTED,
        ErrorCode.INSUFFICIENT_CASH, ErrorCode.INSUFFICIENT_POSITION,
    })),
    (ConfirmError, frozenset({
        ErrorCode.CONFIRM_REQUIRED, ErrorCode.CONFIRM_INVALID, ErrorCode.CONFIRM_EXPIRED, ErrorCode.CONFIRM_USED,
        ErrorCode.CONFIRM_MISMATCH, ErrorCode.CONFIRM_DECLINED,
    })),
    (Unavailable, frozenset({
        ErrorCode.TRADER_DISCONNECTED, ErrorCode.WORKER_UNAVAILABLE, ErrorCode.TIMEOUT, ErrorCode.CIRCUIT_OPEN,
    })),
)
_ONE_CODE: tuple[type[QmtError], ...] = (
    InvalidArgument, UnknownAccount, UnknownInstrument, RiskReject, IdempotencyConflict, BrokerReject,
    SubmitIndeterminate, OrderNotFound, NotCancelable, StateUnwritable, Unauthorized, InternalError,
)
_CLASS_OF: dict[ErrorCode, type[QmtError]] = {
    **{cls.code: cls for cls in _ONE_CODE},
    **{code: cls for cls, codes in _FAMILIES for code in codes},
}


def class_of(code: ErrorCode) -> type[QmtError]:
    """The class an error with this code is raised as (the tree above)."""
    return _CLASS_OF[code]
