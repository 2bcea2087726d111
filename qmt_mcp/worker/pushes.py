"""Broker pushes become order records and journal events.

The broker calls `on_events` after each state change, with that change's pushes in order; the
reconciler applies what the broker lists through `apply_broker_order`. Both only write the journal:
they never call the broker (a push arrives inside the broker's own call stack). Which record a push
belongs to is matching.py's; broker text is cleaned here (domain/text.py) before it is journaled,
whichever backend it came from.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from ..backends.port import (
    AccountStatusChanged,
    BrokerEvent,
    BrokerOrder,
    BrokerTrade,
    CancelFailed,
    OrderFailed,
    OrderUpdated,
    TradeFilled,
    TraderDisconnected,
)
from ..backends.xtq.constants import xt_price_type  # the contract shows xtquant's price type
from ..clock import Clock
from ..config import Config
from ..domain.errors import InternalError, StateUnwritable
from ..domain.events import (
    AccountStatusEvent,
    CancelErrorEvent,
    DisconnectedEvent,
    OrderErrorEvent,
    OrderStatusEvent,
    ReconciledEvent,
    TradeEvent,
    UnmatchedEvent,
)
from ..domain.orders import (
    EXTERNAL_PREFIX,
    OrderRecord,
    client_id_of_remark,
    is_reserved_id,
)
from ..domain.status import IllegalTransition, OrderStatus
from ..domain.text import clean_text
from ..domain.timeutil import iso_ms
from .journal import Journal
from .matching import Candidates, Matcher

log = logging.getLogger("qmt_mcp.worker")


class PushRecorder:
    def __init__(self, cfg: Config, journal: Journal, clock: Clock, notify: Callable[[], None]) -> None:
        self.cfg = cfg
        self.journal = journal
        self.clock = clock
        self.notify = notify
        self._by_account_id = {a.account_id: name for name, a in cfg.accounts.items()}
        self.matcher = Matcher(journal)

    def on_events(self, events: Sequence[BrokerEvent]) -> None:
        """Called by the broker after each state change with its pushes, in order. Never calls the
        broker. One state change is one journal transaction: one fsync, not one per record, and
        none unless it holds a fill: a status repeats the broker's own list, which reconciliation
        reads again after a power cut, but a fill's trade event is the only record of it we keep."""
        durable = any(isinstance(ev, TradeFilled) for ev in events)
        try:
            with self.journal.batch(durable=durable):
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
            name = self._by_account_id.get(ev.trade.account_id)
            if name is not None:
                self._on_trade(name, ev.trade)
        elif isinstance(ev, OrderFailed):
            name = self._by_account_id.get(ev.account_id)
            if name is not None:
                rec = self.matcher.by_id(name, ev.order_id, clean_text(ev.remark))
                self.journal.append(OrderErrorEvent(
                    account=name, order_id=ev.order_id, client_order_id=rec.client_order_id if rec else None,
                    error_id=ev.error_id, message=clean_text(ev.message)), self.clock.now())
        elif isinstance(ev, CancelFailed):
            name = self._by_account_id.get(ev.account_id)
            if name is not None:
                rec = self.matcher.by_id(name, ev.order_id)
                self.journal.append(CancelErrorEvent(
                    account=name, order_id=ev.order_id, client_order_id=rec.client_order_id if rec else None,
                    error_id=ev.error_id, message=clean_text(ev.message)), self.clock.now())
        elif isinstance(ev, AccountStatusChanged):
            name = self._by_account_id.get(ev.account_id)
            if name is not None:
                self.journal.append(AccountStatusEvent(account=name, status=ev.status), self.clock.now())
        elif isinstance(ev, TraderDisconnected):
            for name in (self._by_account_id[a] for a in ev.account_ids if a in self._by_account_id):
                self.journal.append(DisconnectedEvent(account=name, message=clean_text(ev.reason)), ev.time)

    def _on_trade(self, name: str, t: BrokerTrade) -> None:
        """A fill is journaled under the client_order_id of the record it belongs to, never under the
        broker's remark as such; one that belongs to no record is journaled as unmatched."""
        rec = self.matcher.trade(name, t)
        code, trade_id = clean_text(t.code, 16), clean_text(t.trade_id, 64)
        if rec is None:
            self._unmatched(UnmatchedEvent(
                account=name, order_id=t.order_id, push="trade", code=code, side=t.side, trade_id=trade_id,
                price=t.price, volume=t.volume, amount=t.amount, commission=t.commission, stamp_duty=t.stamp_duty,
                transfer_fee=t.transfer_fee, fees=t.fees, fee_detail=t.fee_detail))
            return
        self.journal.append(TradeEvent(
            account=name, order_id=t.order_id, client_order_id=rec.client_order_id, code=code, side=t.side,
            trade_id=trade_id, price=t.price, volume=t.volume, amount=t.amount, commission=t.commission,
            stamp_duty=t.stamp_duty, transfer_fee=t.transfer_fee, fees=t.fees, fee_detail=t.fee_detail), t.time)

    def trade_client_ids(self, name: str, trades: Sequence[BrokerTrade]) -> list[str]:
        """The client_order_id each fill is shown under (get_trades): its record's, as in its trade
        event, else the `ext-<order id>` form (never the broker's remark as such)."""
        seen: Candidates = {}
        out = []
        for t in trades:
            rec = self.matcher.trade(name, t, seen)
            out.append(rec.client_order_id if rec is not None else f"{EXTERNAL_PREFIX}{t.order_id}")
        return out

    def _unmatched(self, ev: UnmatchedEvent) -> None:
        log.warning("a broker %s push for order %d fits none of the records of %s; left for reconciliation",
                    ev.push, ev.order_id, ev.account)
        self.journal.append(ev, self.clock.now())

    def apply_broker_order(self, name: str, bo: BrokerOrder, reason: str | None = None) -> bool:
        """Bring our record of a broker order up to what the broker says; True if it changed.

        `reason` set means reconciliation found it (journaled as `reconciled`), else it is a push.
        The record is found by matching.py; an order we never placed is recorded as external. A push
        whose order id our records carry for another order is journaled as `unmatched` and not
        applied (reconciliation imports it). A status change the table does not allow is refused and
        logged, and the record keeps its state.
        """
        found = self.matcher.order(name, bo)
        rec = found.record
        imported = rec is None
        if rec is None:
            if found.ambiguous and reason is None:
                self._unmatched(UnmatchedEvent(account=name, order_id=bo.order_id, push="order",
                                               code=clean_text(bo.code, 16), side=bo.side, volume=bo.volume,
                                               status=bo.status))
                return False
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
        if reason is None:
            self.journal.append(OrderStatusEvent.of(new), self.clock.now())
        else:
            self.journal.append(ReconciledEvent.of(new, reason=reason, resolution="external" if imported else "status",
                                                   previous_status=None if imported else rec.status),
                                self.clock.now())
        return True

    def _external(self, name: str, bo: BrokerOrder) -> OrderRecord:
        """An order the broker has that we never placed (typed by hand in QMT): recorded as external,
        under its remark if that is a well-formed id nobody has (and not of the reserved `ext-` form),
        else under `ext-<order id>` (with a suffix when an earlier order with the same id has it)."""
        remark = client_id_of_remark(bo.remark)
        base = f"{EXTERNAL_PREFIX}{bo.order_id}"
        ids = [remark] if remark is not None and not is_reserved_id(remark) else []
        ids += [base, *(f"{base}-{n}" for n in range(2, 1000))]
        for cid in ids:
            rec = OrderRecord(
                account=name, client_order_id=cid, code=clean_text(bo.code, 16), name=clean_text(bo.name),
                side=bo.side, order_type=bo.order_type, market_type=None,
                # As the broker reported it; the simulator reports none, and its orders are all of ours.
                price_type=xt_price_type(bo.order_type, bo.market_type, bo.code) if bo.price_type is None
                else bo.price_type, price=bo.price, volume=bo.volume,
                status=OrderStatus.UNKNOWN, created_at=iso_ms(bo.time), order_id=bo.order_id,
                live=self.cfg.accounts[name].live, fingerprint={"external": "true"},
            )
            if self.journal.insert_order(rec):   # never over a record that has the id already
                return rec
        raise InternalError(f"no free client_order_id for external order {bo.order_id}")
