"""Broker pushes become order records and journal events.

The broker calls `on_events` after each state change, with that change's pushes in order; the
reconciler applies what the broker lists through `apply_broker_order`. Both only write the journal:
they never call the broker (a push arrives inside the broker's own call stack).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from ..backends.port import BrokerEvent, BrokerOrder, CancelFailed, OrderFailed, OrderUpdated, TradeFilled
from ..clock import Clock
from ..config import Config
from ..domain.errors import StateUnwritable
from ..domain.orders import CLIENT_ORDER_ID, OrderRecord, OrderType
from ..domain.status import IllegalTransition, OrderStatus
from ..domain.text import clean_text
from ..domain.timeutil import iso, iso_ms
from .journal import Journal

log = logging.getLogger("qmt_mcp.worker")


class PushRecorder:
    def __init__(self, cfg: Config, journal: Journal, clock: Clock, notify: Callable[[], None]) -> None:
        self.cfg = cfg
        self.journal = journal
        self.clock = clock
        self.notify = notify
        self._by_account_id = {a.account_id: name for name, a in cfg.accounts.items()}

    def on_events(self, events: Sequence[BrokerEvent]) -> None:
        """Called by the broker after each state change with its pushes, in order. Never calls the
        broker. One state change is one journal transaction: one fsync, not one per record."""
        try:
            with self.journal.batch():
                for ev in events:
                    self._on_broker_event(ev)
        except StateUnwritable as exc:
            # Never into the broker's call stack: its state changed whatever we can write. The
            # records catch up at the next reconciliation once the journal is writable again.
            log.error("broker pushes not journaled (%s); reconciliation will catch up", exc.message)
        self.notify()

    def _on_broker_event(self, ev: BrokerEvent) -> None:
        if isinstance(ev, OrderUpdated):
            name = self._by_account_id.get(ev.order.account_id)
            if name is not None:
                self.apply_broker_order(name, ev.order)
        elif isinstance(ev, TradeFilled):
            t = ev.trade
            name = self._by_account_id.get(t.account_id)
            if name is not None:
                self.journal.append_event(name, iso(t.time), "trade", t.order_id, t.remark or None, {
                    "code": t.code, "side": t.side.value, "trade_id": t.trade_id, "price": float(t.price),
                    "volume": t.volume, "amount": float(t.amount), **t.fee_wire(),
                })
        elif isinstance(ev, OrderFailed):
            name = self._by_account_id.get(ev.account_id)
            if name is not None:
                self.journal.append_event(name, iso(self.clock.now()), "order_error", ev.order_id,
                                          ev.remark or None, {"error_id": ev.error_id, "message": ev.message})
        elif isinstance(ev, CancelFailed):
            name = self._by_account_id.get(ev.account_id)
            if name is not None:
                rec = self.journal.order_by_id(name, ev.order_id)
                self.journal.append_event(name, iso(self.clock.now()), "cancel_error", ev.order_id,
                                          rec.client_order_id if rec else None,
                                          {"error_id": ev.error_id, "message": ev.message})

    def apply_broker_order(self, name: str, bo: BrokerOrder, reason: str | None = None) -> bool:
        """Bring our record of a broker order up to what the broker says; True if it changed.

        `reason` set means reconciliation found it (journaled as `reconciled`), else it is a push.
        An order we never placed is recorded as external. A status change the table does not allow
        is refused and logged, and the record keeps its state.
        """
        rec = self.journal.order_by_id(name, bo.order_id)
        if rec is None and bo.remark:
            rec = self.journal.order_by_client_id(name, bo.remark)
        imported = rec is None
        if rec is None:
            rec = self._external(name, bo)
        try:
            new = rec.advanced(bo.status, order_id=bo.order_id, traded_volume=bo.traded_volume,
                               traded_amount=bo.traded_amount, status_msg=clean_text(bo.status_msg))
        except IllegalTransition as exc:
            log.warning("refused transition for client_order_id=%s: %s", rec.client_order_id, exc)
            return False
        if new == rec and not imported:
            return False
        self.journal.put_order(new)
        data = status_data(new)
        if reason is None:
            self.journal.append_event(name, iso(self.clock.now()), "order_status", new.order_id,
                                      new.client_order_id, data)
        else:
            data.update(reason=reason, resolution="external" if imported else "status",
                        previous_status=None if imported else rec.status.value)
            self.journal.append_event(name, iso(self.clock.now()), "reconciled", new.order_id,
                                      new.client_order_id, data)
        return True

    def _external(self, name: str, bo: BrokerOrder) -> OrderRecord:
        """An order the broker has that we never placed (typed by hand in QMT): recorded as external.
        Its remark becomes the client_order_id only if it is a well-formed one nobody uses."""
        cid = f"ext-{bo.order_id}"
        if CLIENT_ORDER_ID.match(bo.remark or "") and self.journal.order_by_client_id(name, bo.remark) is None:
            cid = bo.remark
        rec = OrderRecord(
            account=name, client_order_id=cid, code=bo.code, name=clean_text(bo.name), side=bo.side,
            order_type=OrderType.LIMIT if bo.price_type == 11 else OrderType.MARKET,
            market_type=None, price_type=bo.price_type, price=bo.price, volume=bo.volume,
            status=OrderStatus.UNKNOWN, created_at=iso_ms(bo.time), order_id=bo.order_id,
            live=self.cfg.accounts[name].live, fingerprint={"external": "true"},
        )
        self.journal.insert_order(rec)
        return rec


def status_data(r: OrderRecord) -> dict[str, Any]:
    """An order record as an event's data."""
    return {"code": r.code, "side": r.side.value, "status": r.status.value, "volume": r.volume,
            "traded_volume": r.traded_volume, "traded_price": float(r.traded_price),
            "status_msg": r.status_msg}
