"""The cancel path of the worker: cancel_order.

Kept apart from the order path (service.py) because it answers different questions: whose order it
is (a person's hand-typed order on a live account needs a confirm token), and what to say when the
journal or the broker's book cannot record the cancel.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import anyio

from ..calls import CancelArgs
from ..config import AccountConfig
from ..domain.errors import (
    ConfirmError,
    ErrorCode,
    NotCancelable,
    QmtError,
    StateUnwritable,
)
from ..domain.orders import OrderRecord
from ..domain.status import CANCELABLE, OrderStatus
from ..domain.timeutil import iso
from .args import nonblank

if TYPE_CHECKING:
    from .service import WorkerService

log = logging.getLogger("qmt_mcp.worker")


class Cancels:
    def __init__(self, service: WorkerService) -> None:
        self.svc = service

    async def cancel_order(self, args: CancelArgs) -> dict[str, Any]:
        """Ask the broker to cancel an open order; the order as recorded after the request.

        An order typed by hand (imported, `ext-`) on a live account is the person's, not the agent's:
        cancelling it needs a confirm token, issued by the first call (CONFIRM_REQUIRED carrying it),
        bound to the account and the order, used once. The agent's own orders cancel without one.

        A cancel only lowers exposure, so it goes to the broker even when the journal cannot be
        written (the broker's list, which reconciliation reads, says what happened): the answer is
        then STATE_UNWRITABLE with state_changed "yes". A broker that cannot record the cancel (the
        simulator's own book on a full disk) does nothing and answers STATE_UNWRITABLE, "no"."""
        name, acct = self.svc.account(args.account)
        token = nonblank(args.confirm_token, "confirm_token")
        rec = self.svc.find_order(name, args.order_id)
        if rec.status in (OrderStatus.CANCELED, OrderStatus.PART_CANCEL):
            return {"order": rec.to_wire(), "cancel_requested": False}
        if rec.status not in CANCELABLE or rec.order_id is None:
            raise NotCancelable(f"order {rec.order_id} is {rec.status.value}",
                                details={"status": rec.status.value})
        token_id = self._cancel_token(name, acct, rec, token)
        if token_id is not None and not self.svc.journal.use_token(token_id, iso(self.svc.clock.now())):
            raise ConfirmError("this confirm token was already used", code=ErrorCode.CONFIRM_USED)
        unwritable = self._note_cancel(rec)
        try:
            with anyio.fail_after(self.svc.cfg.worker.call_timeout_s):
                await self.svc.broker.cancel_order(acct.account_id, rec.order_id)
        except QmtError as exc:
            if unwritable is not None and exc.state_changed == "no":
                # Nothing changed, and nothing could be recorded if it had: the state dir is the fault
                # to name (a full disk fails the broker's book too, on the simulator).
                raise StateUnwritable(
                    unwritable.message, state_changed="no",
                    hint="The worker cannot write its state (disk full or read-only state dir), and the order "
                         "was not canceled. Tell the operator; cancel again once the state dir is writable.",
                    details={**unwritable.details,
                             "broker_error": {"code": exc.code.value, "message": exc.message}},
                ) from exc
            if exc.code is ErrorCode.NOT_CANCELABLE:
                settled = await self._settled_at_broker(name, acct, rec)
                if settled is not None:   # canceled already: our record was behind the broker
                    return {"order": settled.to_wire(), "cancel_requested": False}
            raise
        after = _still_there(self.svc.journal.order_by_client_id(name, rec.client_order_id))
        if unwritable is not None:
            raise StateUnwritable(
                f"the broker took the cancel of order {rec.order_id}, but the journal cannot record it: "
                "get_order shows its old status until the journal is writable and reconciliation has run",
                state_changed="yes", retryable=False,
                hint="Do not place new orders: the worker cannot record them. Tell the operator the state dir "
                     "is full or read-only; get_order shows the cancel once it is fixed.",
                details={"cancel_requested": True, "order_id": rec.order_id, "client_order_id": rec.client_order_id},
            ) from unwritable
        return {"order": after.to_wire(), "cancel_requested": True}

    def _cancel_token(self, name: str, acct: AccountConfig, rec: OrderRecord, token: str | None) -> str | None:
        """The id of the confirm token this cancel spends, if any (see cancel_order)."""
        fields = {"account": name, "order_id": str(rec.order_id), "client_order_id": rec.client_order_id}
        if acct.live and rec.external and token is None:
            token, expires = self.svc.tokens.issue("cancel_order", fields, self.svc.clock.now())
            raise ConfirmError(
                f"order {rec.order_id} was placed by hand, not through this gateway: cancelling it on a live "
                "account needs confirming; call cancel_order again with this confirm_token",
                code=ErrorCode.CONFIRM_REQUIRED,
                hint="Ask the person whether to cancel their own order; only if they agree, call cancel_order "
                     "again with details.confirm_token.",
                details={"confirm_token": token, "confirm_expires_at": expires, "order": rec.to_wire()},
            )
        token_id = self.svc.check_token("cancel_order", fields, token, live=False)
        if token_id is not None and self.svc.journal.token_used(token_id):
            raise ConfirmError("this confirm token was already used", code=ErrorCode.CONFIRM_USED)
        return token_id

    def _note_cancel(self, rec: OrderRecord) -> StateUnwritable | None:
        """Record that a cancel is being sent (before it is: no await since the record was read).
        Whether this write works tells whether the journal can record the cancel's outcome."""
        try:
            # Not fsync'd: a note for the record; the broker's list says whether the cancel happened.
            with self.svc.journal.batch(durable=False):
                self.svc.journal.put_order(replace(rec, cancel_requested_at=iso(self.svc.clock.now())))
        except StateUnwritable as exc:
            log.error("cancel of client_order_id=%s goes to the broker unrecorded: %s", rec.client_order_id,
                      exc.message)
            return exc
        return None

    async def _settled_at_broker(self, name: str, acct: AccountConfig, rec: OrderRecord) -> OrderRecord | None:
        """The broker refused to cancel an order our record holds open: the record may be behind (its
        pushes could not be journaled). Bring it up to the broker's own list; the record if the order
        is canceled there, else None (the refusal stands)."""
        try:
            with anyio.fail_after(self.svc.cfg.worker.call_timeout_s):
                listed = await self.svc.broker.orders(acct.account_id)
        except (QmtError, TimeoutError) as exc:
            log.warning("cannot list broker orders after a refused cancel (%s); the refusal stands", exc)
            return None
        for bo in listed:
            found = self.svc.pushes.matcher.order(name, bo).record if bo.order_id == rec.order_id else None
            if found is not None and found.client_order_id == rec.client_order_id:
                with self.svc.journal.batch():   # the record and its event together, or neither
                    self.svc.pushes.apply_broker_order(name, bo, reason="cancel")
                self.svc.notify()
        fresh = _still_there(self.svc.journal.order_by_client_id(name, rec.client_order_id))
        return fresh if fresh.status in (OrderStatus.CANCELED, OrderStatus.PART_CANCEL) else None


def _still_there(rec: OrderRecord | None) -> OrderRecord:
    if rec is None:
        raise QmtError("the order record vanished", code=ErrorCode.INTERNAL)
    return rec
