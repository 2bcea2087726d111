"""Reconciliation: our order records against the broker's own list, at start, on a timer and after
a reconnect.

- A broker order that carries one of our client_order_ids (its remark) or order ids brings the
  record to the broker's status; an `indeterminate` record becomes known this way and only this way.
- A record still `pending_submit`/`indeterminate` that the broker does not have, once the submit
  deadline has passed, certainly never arrived: it becomes `junk` and may be placed again under a
  new id.
- A broker order we never placed (typed by hand in QMT) is imported as external and counts for risk.
Every resolution is journaled as a `reconciled` event.

The work is what can still change: the broker's orders of today, the broker's orders that match one
of our records that is not final, and our unresolved records, each found by index. An earlier day's
broker order that matches nothing open is final on both sides and is not looked at again, so the
timer costs the same on the thousandth day as on the first (a counter that lists its whole history,
as the simulator's book may, would otherwise have every record decoded every 30 s).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

import anyio

from ..domain.errors import QmtError
from ..domain.events import ReconciledEvent
from ..domain.status import OrderStatus
from ..domain.timeutil import CN_TZ
from .service import WorkerService

log = logging.getLogger("qmt_mcp.worker")


class Reconciler:
    def __init__(self, service: WorkerService) -> None:
        self.service = service

    async def run(self, reason: str) -> int:
        """Reconcile every account; the number of records it changed."""
        svc = self.service
        changed = 0
        async with svc.order_lock:  # never judge an order while it is being placed
            for name, acct in svc.cfg.accounts.items():
                try:
                    with anyio.fail_after(svc.cfg.worker.call_timeout_s):
                        broker_orders = await svc.broker.orders(acct.account_id)
                except (QmtError, TimeoutError) as exc:
                    log.warning("reconcile %s: cannot list broker orders (%s); will retry", name, exc)
                    continue
                now = svc.clock.now()
                midnight = now.astimezone(CN_TZ).replace(hour=0, minute=0, second=0, microsecond=0)
                still_open = svc.journal.open_orders(name)
                open_ids = {r.order_id for r in still_open if r.order_id is not None}
                open_cids = {r.client_order_id for r in still_open}
                for bo in broker_orders:
                    if bo.time < midnight and bo.order_id not in open_ids and bo.remark not in open_cids:
                        continue  # an earlier day's order that nothing of ours waits on
                    changed += svc.pushes.apply_broker_order(name, bo, reason=reason)
                remarks = {bo.remark for bo in broker_orders if bo.remark}
                ids = {bo.order_id for bo in broker_orders}
                for rec in svc.journal.unresolved_orders(name):
                    if rec.client_order_id in remarks or (rec.order_id is not None and rec.order_id in ids):
                        continue
                    age = (now - datetime.fromisoformat(rec.created_at)).total_seconds()
                    if age < svc.cfg.worker.submit_timeout_s:
                        continue  # may still be on its way
                    new = rec.advanced(OrderStatus.JUNK,
                                       status_msg="never reached the broker (it has no order with this id)")
                    svc.journal.put_order(new)
                    event = ReconciledEvent.of(new, reason=reason, resolution="never_arrived",
                                               previous_status=rec.status)
                    # Journaled without a broker id, as always: the broker has no order for it to name.
                    svc.journal.append(replace(event, order_id=None), now)
                    changed += 1
        if changed:
            log.info("reconcile (%s): %d record(s) resolved", reason, changed)
            svc.notify()
        return changed
