"""The watcher of conditional orders: each new quote against the armed conditions, and firing each
exactly once (the why is in worker/conditions.py's docstring; the trigger logic in domain/conditions.py).

A round runs with every worker tick. A quote is new when its time is one not seen before with a trade
on the day; each armed condition of its code fires if its trigger is met and the session takes its
order (an alert needs none), and moves its trailing mark (all marks of a round in one transaction, at
the round's end).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import anyio

from ..backends.xtq.constants import xt_price_type
from ..config import AccountConfig
from ..domain.conditions import Condition, ConditionStatus, expired, fire_price, fires, moved_mark, t1_note
from ..domain.decision import OrderDecision
from ..domain.errors import ErrorCode, QmtError
from ..domain.events import ConditionCanceledEvent, ConditionFailedEvent, ConditionTriggeredEvent
from ..domain.market import Quote
from ..domain.orders import OrderRecord, OrderRequest, OrderType
from ..domain.risk import first_denial
from ..domain.sessions import ACCEPTS_ORDERS, Phase
from ..domain.status import OrderStatus
from ..domain.timeutil import iso, iso_ms
from ..domain.trigger_index import TriggerIndex
from ..domain.validation import first_failure
from . import crashpoints
from .condition_store import condition_event, from_json
from .riskbook import account_view

if TYPE_CHECKING:
    from .conditions import Conditions

log = logging.getLogger("qmt_mcp.worker")
# Refusals at the trigger that pass with time, not with a different order: the condition stays armed.
WAIT_RULES = frozenset({"session", "order_type", "BASELINE_PENDING"})


class Watcher:
    def __init__(self, conds: Conditions) -> None:
        self.conds = conds
        self._seen: dict[str, datetime] = {}   # code -> time of the last quote evaluated
        self._round = anyio.Lock()              # one round at a time
        self._unsent: dict[str, str] | None = None   # condition_id -> account: triggered, order unsent
        self._indexes: dict[str, tuple[tuple[str, ...], TriggerIndex]] = {}   # code -> its ids, their index
        # The orders conditions sent, as audit records: nobody called for them, so the worker's tick
        # job writes them to the trail (bootstrap.py), as it does an approval's expiry.
        self.sent: list[dict[str, Any]] = []

    async def watch(self) -> None:
        """One round: resume what a restart left, expire, then every armed condition against the
        new quote of its code (and the clock, for time triggers)."""
        async with self._round:
            if self._unsent is None or self._unsent:
                await self.resume()
            armed = self.conds.active()
            if not armed:
                return
            now = self.conds.svc.clock.now()
            for c in [c for c in self.conds.expiring().values() if expired(c, now)]:
                async with self.conds.svc.order_lock:
                    current = self.conds.current(c)
                    if current.status is ConditionStatus.ARMED:
                        self.conds.end(current, ConditionStatus.EXPIRED, f"expired at {c.expires_at}, unfired")
            # The round's conditions, as it began (one armed meanwhile waits for the next round).
            groups = self.conds.armed_by_code()
            by_code = {code: list(group.values()) for code, group in groups.items()}
            ids = {code: tuple(group) for code, group in groups.items()}
            for gone in [code for code in self._indexes if code not in ids]:
                del self._indexes[gone]
            codes = sorted(by_code)
            if not codes:
                return
            try:
                with anyio.fail_after(self.conds.svc.cfg.worker.call_timeout_s):
                    quotes = await self.conds.svc.broker.quotes(codes)
            except (QmtError, TimeoutError) as exc:
                log.warning("conditions: no quotes this round (%s)", exc)
                return
            phase = self.conds.svc.broker.phase()
            news: list[tuple[Quote, Decimal | None]] = []
            for q in quotes:
                new = q.volume > 0 and self._seen.get(q.code) != q.time
                self._seen[q.code] = q.time
                news.append((q, q.last if new else None))
            # Each code's marks just before its conditions are looked at (only those read them), not
            # the round's every mark before the first firing; whatever happens, all are written.
            moved: dict[str, Decimal] = {}
            done = 0
            try:
                for q, last in news:
                    every = by_code.get(q.code, [])
                    # Those the quote may fire, in the code's order (every trailing stop among them).
                    watching = [every[k] for k in self._index(q.code, ids.get(q.code, ()), every).candidates(last)]
                    moved.update(_moved_marks([(q, last)], {q.code: watching}))
                    done += 1
                    await self._on_quote(q, watching, last, now, phase, moved)
            finally:
                moved.update(_moved_marks(news[done:], by_code))
                self._write_marks(moved)

    def _index(self, code: str, ids: tuple[str, ...], conds: list[Condition]) -> TriggerIndex:
        """The trigger index of `code`'s armed conditions `conds` (their ids `ids`, in order), built
        again only when they are not the ones it was built from (a price trigger's level is fixed)."""
        held = self._indexes.get(code)
        if held is None or held[0] != ids:
            held = self._indexes[code] = (ids, TriggerIndex.of(conds))
        return held[1]

    def _write_marks(self, moved: dict[str, Decimal]) -> None:
        """The round's moved trailing marks, in one transaction after its firings: one fsync a round,
        and none on a firing's way to the counter. A quote that moves a mark cannot fire that
        condition (the stop follows the mark, away from the price), so no firing needs its mark first."""
        # Read and written with no await between: a cancel (or a firing) that ended a condition since
        # the round began is seen here, so a stale armed copy is never written back over it.
        armed = self.conds.active()
        still = [replace(c, high_water=mark) for cid, mark in moved.items() if (c := armed.get(cid)) is not None]
        if still:
            with self.conds.svc.journal.batch():
                for c in still:
                    self.conds.save(c)

    async def _on_quote(self, q: Quote, watching: list[Condition], last: Decimal | None, now: datetime,
                        phase: Phase, moved: dict[str, Decimal]) -> None:
        """`watching` (the code's armed conditions as the round began) against one quote, each with
        the mark it moves to (`moved`, written at the round's end)."""
        armed = self.conds.active()   # one dict for the worker's life: a firing's changes show in it
        for w in watching:
            cond = armed.get(w.condition_id)
            mark = moved.get(w.condition_id)
            if cond is not None and mark is not None:
                cond = replace(cond, high_water=mark)
            if cond is None or not fires(cond, last, now) or not _session_takes(cond, phase):
                continue
            try:
                await self._fire(cond, q, last, phase)
            except QmtError as exc:
                # The broker or the journal failed under it: it stays as the journal has it, tried again
                # at the next quote if still armed.
                log.warning("condition %s: firing stopped: %s %s", cond.condition_id, exc.code.value, exc.message)

    async def _fire(self, c: Condition, q: Quote, last: Decimal | None, phase: Phase) -> None:
        svc = self.conds.svc
        async with svc.order_lock:
            current = self.conds.current(c)
            if current.status is not ConditionStatus.ARMED:
                return   # fired, canceled or expired meanwhile: a condition fires once
            now = svc.clock.now()
            if current.alert:
                self._trigger(current, last, "alert: the trigger was met", now)
                return
            _, acct = svc.account(current.account)
            inst = await svc.broker.instrument(current.code)
            best_bid = q.bids[0].price if q.bids else None
            best_ask = q.asks[0].price if q.asks else None
            price, note = fire_price(current, inst, best_bid, best_ask, q.last, phase is Phase.CONTINUOUS,
                                     now.date())
            req = current.request(price)
            v = await self._checked(current, acct, req)
            if v is None:
                return
            fired = self._trigger(current, last, note, now)
            crashpoints.reached("condition.triggered")
            await self._send(fired, acct, req, v)

    async def _checked(self, c: Condition, acct: AccountConfig, req: OrderRequest) -> OrderDecision | None:
        """The checks at the trigger: the decision when the order may go, else None. A refusal that
        passes with time (T+1 shares, the session) leaves `c` armed with a status_msg saying so; any
        other ends it `failed` with the code, journaled and notified."""
        v = await self.conds.svc.decision(req)
        refusal: QmtError | None = first_failure(v.checks) or first_denial(v.decisions)
        if refusal is None:
            return v
        wait = await self._wait_note(c, acct, refusal)
        if wait:
            if c.status_msg != wait:
                self.conds.save(replace(c, status_msg=wait))
                self.conds.svc.notify()
            return None
        self._fail(c, refusal)
        return None

    async def _wait_note(self, c: Condition, acct: AccountConfig, refusal: QmtError) -> str:
        """Why `c` waits, when `refusal` passes with time (its shares sellable from T+1, the session,
        the day's baseline); "" when it does not."""
        if refusal.code is ErrorCode.INSUFFICIENT_POSITION:
            view = await account_view(self.conds.svc.broker, acct.account_id)
            held, usable = view.volume.get(c.code, 0), view.can_use_volume.get(c.code, 0)
            return t1_note(usable, held) if held >= c.volume else ""
        return f"waits: {refusal.message}" if str(refusal.details.get("rule", "")) in WAIT_RULES else ""

    def _fail(self, c: Condition, refusal: QmtError) -> None:
        svc = self.conds.svc
        msg = f"refused when it fired: {refusal.code.value}: {refusal.message}"
        failed = c.advanced(ConditionStatus.FAILED, status_msg=msg)
        with svc.journal.batch():
            self.conds.save(failed)
            svc.journal.append(condition_event(ConditionFailedEvent, failed, error_code=refusal.code.value,
                                      rule=refusal.details.get("rule")), svc.clock.now())
        log.info("condition %s failed: %s", c.condition_id, msg)
        svc.notify()

    def _trigger(self, c: Condition, last: Decimal | None, note: str, now: datetime) -> Condition:
        """Commit armed -> triggered (with the order's client_order_id, before any order exists) and
        the cancel of its OCO siblings, in one transaction.

        Not fsync'd when an order follows: its record's commit (insert_order, synchronous=FULL) comes
        next in the same write-ahead log, and its fsync makes this commit durable with it. A power
        cut before that loses both, and nothing was sent; a killed process loses neither. An alert
        has no order to follow it: its trigger is fsync'd itself, so it is never told twice."""
        svc = self.conds.svc
        fired = c.advanced(ConditionStatus.TRIGGERED, triggered_at=iso(now), triggered_price=last, status_msg=note)
        siblings = self._oco_siblings(c)
        with svc.journal.batch(durable=fired.alert):
            self.conds.save(fired)
            svc.journal.append(condition_event(ConditionTriggeredEvent, fired, alert=fired.alert,
                                               triggered_price=last), now)
            for s in siblings:
                done = s.advanced(ConditionStatus.CANCELED,
                                  status_msg=f"canceled: {c.condition_id} of OCO group {c.oco_group} fired")
                self.conds.save(done)
                svc.journal.append(condition_event(ConditionCanceledEvent, done), now)
        log.info("condition %s triggered at %s; order client_order_id=%s", c.condition_id, last,
                 "(alert)" if fired.alert else fired.client_order_id)
        svc.notify()
        return fired

    def _oco_siblings(self, c: Condition) -> list[Condition]:
        """The other active conditions of `c`'s OCO group, oldest first. The armed ones come from the
        watcher's view by group (save() keeps it in step with the journal), not from decoding every
        active row of the account (with a thousand armed that alone took ~20 ms per firing) nor from
        walking every armed one. Those awaiting a person are not in the view; they are few, read
        from the journal."""
        group = c.oco_group
        if group is None:
            return []
        armed = [s for s in self.conds.armed_in_group(c.account, group) if s.condition_id != c.condition_id]
        # By status alone: through its index (with the account too, SQLite walks the account's every
        # condition, a cost that grew with each one fired or canceled).
        waiting = [s for s in map(from_json, self.conds.svc.journal.conditions(
            statuses=(ConditionStatus.PENDING_APPROVAL.value,))) if s.oco_group == group and s.account == c.account]
        return sorted(armed + waiting, key=lambda s: s.created_at)

    async def _send(self, c: Condition, acct: AccountConfig, req: OrderRequest, v: OrderDecision) -> None:
        """Record the order of the triggered `c` and send it, down the order path every order takes.
        Call under the order lock."""
        svc = self.conds.svc
        cid = c.client_order_id
        rec = OrderRecord(
            account=c.account, client_order_id=cid, code=req.code, name=c.name, side=req.side,
            order_type=req.order_type, market_type=req.market_type,
            price_type=xt_price_type(req.order_type, req.market_type, req.code), price=req.price or v.est.price,
            volume=req.volume, status=OrderStatus.PENDING_SUBMIT, created_at=iso_ms(svc.clock.now()), live=acct.live,
            fingerprint=req.fingerprint(),
        )
        if not svc.journal.insert_order(rec):
            # The id is an order's already (recorded before a crash, or a caller's own): never a second one.
            log.warning("condition %s: client_order_id %s is recorded already; not sent again", c.condition_id, cid)
            return
        error: QmtError | None = None
        try:
            await svc.send_recorded(c.account, acct, req, cid)
        except QmtError as exc:
            log.warning("condition %s: its order %s: %s %s", c.condition_id, cid, exc.code.value, exc.message)
            error = exc
        sent = svc.journal.order_by_client_id(c.account, cid)
        outcome = ({"ok": False, "error": error.to_dict()} if error is not None
                   else {"ok": True, "order": None if sent is None else sent.to_wire()})
        self.sent.append({"call": "condition_fired",
                          "args": {"account": c.account, "condition_id": c.condition_id, "client_order_id": cid},
                          "outcome": outcome, "by": {"operator": False, "channel": "condition"}})
        if sent is not None and sent.order_id is not None:
            with svc.journal.batch(durable=False):   # repeats the order's own record (order_id)
                self.conds.save(replace(self.conds.current(c), order_id=sent.order_id))

    async def resume(self) -> None:
        """After a restart: a triggered condition whose order was never recorded was never sent (the
        record comes before the broker call): send it, the checks first, under its own id. Found once
        at start; one that must wait (the session, T+1 shares) or cannot be decided now (the broker
        away) is tried again each round until it is sent or refused."""
        svc = self.conds.svc
        if self._unsent is None:
            self._unsent = {c.condition_id: c.account for c in map(from_json, svc.journal.conditions(
                statuses=(ConditionStatus.TRIGGERED.value,)))
                if not c.alert and svc.journal.order_by_client_id(c.account, c.client_order_id) is None}
        for condition_id, account in sorted(self._unsent.items()):
            try:
                async with svc.order_lock:
                    if await self._resend(self.conds.find(account, condition_id)):
                        del self._unsent[condition_id]
            except QmtError as exc:
                log.warning("condition %s: cannot send its order yet: %s", condition_id, exc.message)

    async def _resend(self, c: Condition) -> bool:
        """One unsent order of a triggered condition; whether it is settled (sent, or refused: failed).
        Call under the order lock."""
        svc = self.conds.svc
        if c.status is not ConditionStatus.TRIGGERED or svc.journal.order_by_client_id(c.account, c.client_order_id):
            return True
        phase = svc.broker.phase()
        if not _session_takes(c, phase):
            return False
        _, acct = svc.account(c.account)
        inst = await svc.broker.instrument(c.code)
        q = (await svc.broker.quotes([c.code]))[0]
        price, _ = fire_price(c, inst, q.bids[0].price if q.bids else None, q.asks[0].price if q.asks else None,
                              q.last, phase is Phase.CONTINUOUS, svc.clock.now().date())
        req = c.request(price)
        v = await svc.decision(req)
        refusal = first_failure(v.checks) or first_denial(v.decisions)
        if refusal is not None:
            if await self._wait_note(c, acct, refusal):
                return False
            self._fail(c, refusal)
            return True
        log.info("condition %s: triggered before a restart, its order unsent: sending %s now", c.condition_id,
                 c.client_order_id)
        await self._send(c, acct, req, v)
        return True


def _moved_marks(news: list[tuple[Quote, Decimal | None]], by_code: dict[str, list[Condition]]) -> dict[str, Decimal]:
    """condition_id -> the trailing mark the round's new quotes move it to."""
    out: dict[str, Decimal] = {}
    for q, last in news:
        for c in by_code.get(q.code, []) if last is not None else ():
            mark = None if last is None else moved_mark(c, last)
            if mark is not None:
                out[c.condition_id] = mark
    return out


def _session_takes(c: Condition, phase: Phase) -> bool:
    """Whether the session now takes the condition's order (an alert needs none)."""
    if c.order is None:
        return True
    if c.order.order_type is OrderType.MARKET:
        return phase is Phase.CONTINUOUS
    return phase in ACCEPTS_ORDERS
