"""Conditional orders held by the worker: arming, the watcher, firing exactly once, and what survives
a restart (CONTRACT.md 0.2 "Conditional orders, held by the gateway"; the trigger logic is
domain/conditions.py).

The watcher runs with every tick of the worker (service.tick, each `sim.poll_interval_s`): it reads
the latest quote of every code an armed condition watches, and a quote is new when its time is one
it has not seen with a trade on the day; each condition sees each new quote's last price once.

Firing is exactly once because the trigger is a record before it is an order:
1. under the worker's order lock, the condition is read again from the journal (a second quote, a
   second round or a restarted worker finds it no longer armed) and its order decided (the rule
   book and risk again; the kill switch and the breaker refuse buys only, so a protective sell
   still goes);
2. armed -> triggered is committed with the order's client_order_id (the caller's, or
   `c-<the condition id's token>`), together with the cancel of its OCO siblings;
3. then the order is recorded `pending_submit` under that id and sent, as every order is.
A crash after 2 leaves a triggered condition without an order record: never sent, so the next start
sends it (the checks again first) under the same id. A crash after 3 leaves an order record, which
reconciliation settles like any other; nothing here sends it again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

import anyio

from ..backends.xtq.constants import xt_price_type
from ..calls import CancelConditionArgs, ConditionArgs, ListConditionsArgs
from ..config import AccountConfig
from ..domain.codes import normalize_code
from ..domain.conditions import (
    ACTIVE,
    Condition,
    ConditionStatus,
    OrderSpec,
    Trigger,
    TriggerType,
    check_trigger_in_band,
    expired,
    fire_price,
    fires,
    make_spec,
    make_trigger,
    moved_mark,
)
from ..domain.decision import OrderDecision
from ..domain.errors import (
    ConfirmError,
    ErrorCode,
    IdempotencyConflict,
    InvalidArgument,
    OrderNotFound,
    OrderRefused,
    QmtError,
)
from ..domain.events import (
    ApprovalDecidedEvent,
    ApprovalRequestedEvent,
    ConditionArmedEvent,
    ConditionCanceledEvent,
    ConditionExpiredEvent,
    ConditionFailedEvent,
    ConditionTriggeredEvent,
    Event,
)
from ..domain.market import Quote
from ..domain.money import is_on_tick, to_decimal
from ..domain.orders import (
    CLIENT_ORDER_ID,
    MarketType,
    OrderRecord,
    OrderRequest,
    OrderType,
    Side,
    check_not_reserved,
)
from ..domain.risk import first_denial
from ..domain.sessions import ACCEPTS_ORDERS, Phase
from ..domain.status import OrderStatus
from ..domain.text import clean_text
from ..domain.timeutil import iso, iso_ms, parse_time
from ..domain.validation import first_failure
from . import crashpoints
from .args import nonblank
from .riskbook import account_view

if TYPE_CHECKING:
    from .service import WorkerService

log = logging.getLogger("qmt_mcp.worker")
TOKEN_TOOL = "place_conditional_order"  # noqa: S105 (the tool a confirm token is bound to)
# Refusals at the trigger that pass with time, not with a different order: the condition stays armed.
_WAIT_RULES = frozenset({"session", "order_type", "BASELINE_PENDING"})


# ----- the record's stored form
def _to_json(c: Condition) -> str:
    d = asdict(c)
    t = c.trigger
    d["trigger"] = {"type": t.type.value, "price": _text(t.price), "trail_percent": _text(t.trail_percent),
                    "trail_amount": _text(t.trail_amount), "at": None if t.at is None else iso(t.at)}
    d["order"] = None if c.order is None else {"order_type": c.order.order_type.value, "price": _text(c.order.price),
                                               "market_type": None if c.order.market_type is None
                                               else c.order.market_type.value}
    for name in ("high_water", "triggered_price"):
        d[name] = _text(getattr(c, name))
    return json.dumps(d)


def _from_json(text: str) -> Condition:
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


def _event(cls: type[Event], c: Condition, **extra: Any) -> Event:
    fields: dict[str, Any] = {
        "account": c.account, "order_id": c.order_id, "client_order_id": None if c.alert else c.client_order_id,
        "condition_id": c.condition_id, "code": c.code, "side": c.side, "volume": c.volume,
        "trigger": c.trigger.to_wire(), "status": c.status.value, "status_msg": c.status_msg,
        "oco_group": c.oco_group, **extra}
    return cls(**fields)


def _decided(a: dict[str, Any], decision: Literal["approved", "denied", "expired"], channel: str,
             note: str) -> ApprovalDecidedEvent:
    return ApprovalDecidedEvent(account=a["account"], client_order_id=a["client_order_id"] or None,
                                approval_id=a["approval_id"], decision=decision, channel=channel, note=note,
                                kind="condition")


class Conditions:
    def __init__(self, service: WorkerService) -> None:
        self.svc = service
        self._armed: dict[str, Condition] | None = None   # what the watcher looks at, loaded once
        self._seen: dict[str, datetime] = {}               # code -> time of the last quote evaluated
        self._round = anyio.Lock()                          # one watcher round at a time
        self._resumed = False

    # ----- the store: the journal is the record; `_armed` mirrors its armed rows
    def _active(self) -> dict[str, Condition]:
        if self._armed is None:
            rows = self.svc.journal.conditions(statuses=(ConditionStatus.ARMED.value,))
            self._armed = {c.condition_id: c for c in map(_from_json, rows)}
        return self._armed

    def _save(self, c: Condition) -> None:
        """Write `c` (inside the caller's batch, if any) and keep the watcher's view in step."""
        self.svc.journal.put_condition(c.condition_id, c.account, c.client_order_id, c.status.value, c.created_at,
                                       _to_json(c))
        armed = self._active()
        if c.status is ConditionStatus.ARMED:
            armed[c.condition_id] = c
        else:
            armed.pop(c.condition_id, None)

    def _find(self, account: str, condition_id: str) -> Condition:
        for c in map(_from_json, self.svc.journal.conditions(account)):
            if c.condition_id == condition_id:
                return c
        raise OrderNotFound(f"no conditional order {condition_id!r} on this account",
                            hint="list_conditional_orders lists the account's conditions.",
                            details={"condition_id": condition_id})

    def _current(self, c: Condition) -> Condition:
        """The journal's word on `c` now (another round, or a cancel, may have moved it)."""
        for row in self.svc.journal.conditions(c.account, client_order_id=c.client_order_id):
            found = _from_json(row)
            if found.condition_id == c.condition_id:
                return found
        return c

    # ----- the tools
    async def place_conditional_order(self, args: ConditionArgs) -> dict[str, Any]:
        """Arm a condition. Raises InvalidArgument, OrderRefused (PRICE_LIMIT for a trigger beyond
        today's band, PRICE_TICK, LOT_SIZE, INSUFFICIENT_POSITION, ORDER_TYPE_UNSUPPORTED),
        IdempotencyConflict, and ConfirmError (CONFIRM_REQUIRED with the token, on a live account)."""
        svc = self.svc
        crashpoints.arm()
        name, acct = svc.account(args.account)
        code = normalize_code(args.code)
        side = Side(args.side)
        c, amount = await self._new(name, acct, code, side, args)
        token = nonblank(args.confirm_token, "confirm_token")
        async with svc.order_lock:
            if args.client_order_id is not None:
                replay = self._replay(name, c)
                if replay is not None:
                    return {"condition": self._wire(replay), "idempotent_replay": True}
            token_id = self._check_token(c, acct, token)
            # Where [approval] asks for a person, arming waits for one (firing never does).
            waits = not c.alert and svc.approvals.needed(acct, amount)
            now = svc.clock.now()
            with svc.journal.batch():
                if token_id is not None and not svc.journal.use_token(token_id, iso(now)):
                    raise ConfirmError("this confirm token was already used", code=ErrorCode.CONFIRM_USED)
                if waits:
                    c = self._request_approval(c, now)
                else:
                    self._save(c)
                    svc.journal.append(_event(ConditionArmedEvent, c), now)
        log.info("condition %s %s: %s %s %d %s, order client_order_id=%s", c.condition_id, c.status.value, side.value,
                 code, c.volume, c.trigger.type.value, c.client_order_id)
        svc.notify()
        return {"condition": self._wire(c), "idempotent_replay": False}

    # ----- a person in the loop ([approval]; worker/approvals.py routes the decisions here)
    def _request_approval(self, c: Condition, now: datetime) -> Condition:
        """Record `c` as waiting for a person, with its approval row and event (inside the caller's batch)."""
        svc = self.svc
        approval_id = f"ap-{svc.ids.client_order_id()}"
        expires = iso(now + timedelta(seconds=svc.cfg.approval.timeout_s))
        channels = [str(ch) for ch in svc.cfg.approval.channels]
        hint = (f"waiting for a person: qmt-mcp approve {approval_id} (or deny {approval_id}); expires {expires}, "
                "and the condition is not armed before")
        waiting = replace(c, status=ConditionStatus.PENDING_APPROVAL, status_msg="waits for a person to approve it",
                          approval={"approval_id": approval_id, "expires_at": expires, "channels": channels,
                                    "hint": hint})
        self._save(waiting)
        svc.journal.insert_approval({"approval_id": approval_id, "account": c.account,
                                     "client_order_id": c.client_order_id,
                                     "fingerprint": {"kind": "condition", "account": c.account,
                                                     "condition_id": c.condition_id},
                                     "created_at": iso(now), "expires_at": expires})
        svc.journal.append(ApprovalRequestedEvent(account=c.account, client_order_id=c.client_order_id,
                                                  approval_id=approval_id, expires_at=expires, channels=channels,
                                                  kind="condition"), now)
        return waiting

    def approval_entry(self, a: dict[str, Any]) -> dict[str, Any] | None:
        """A pending condition approval as `qmt-mcp approvals` lists it: the order it would send."""
        try:
            c = self._find(a["account"], a["fingerprint"]["condition_id"])
        except OrderNotFound:
            return None
        spec = c.order
        price = (spec.price if spec is not None and spec.price is not None else c.trigger.price) or Decimal(0)
        order = {"client_order_id": c.client_order_id, "code": c.code, "name": c.name, "side": c.side.value,
                 "volume": c.volume, "price": float(price), "status": c.status.value}
        return {"approval_id": a["approval_id"], "kind": "condition", "account": c.account, "order": order,
                "condition": self._wire(c), "amount": float(price * c.volume)}

    def decide(self, a: dict[str, Any], decision: str, channel: str, note: str) -> dict[str, Any]:
        """A person's decision on arming a condition (under the order lock, from approvals.py):
        approved, it is armed now; denied or expired, it ends canceled, never armed."""
        svc = self.svc
        c = self._find(a["account"], a["fingerprint"]["condition_id"])
        now = svc.clock.now()
        if now >= datetime.fromisoformat(a["expires_at"]):
            self.expire_approval(a)
            raise InvalidArgument("the approval expired before the decision came; the condition was not armed",
                                  state_changed="yes", details={"argument": "approval_id", "reason": "expired"})
        word: Literal["approved", "denied"] = "approved" if decision == "approve" else "denied"
        who = f"{word} by a person ({channel})" + (f": {note}" if note else "")
        with svc.journal.batch():
            if not svc.journal.decide_approval(a["approval_id"], word, iso(now), channel, note):
                raise InvalidArgument(f"approval {a['approval_id']} was decided already; a decision is final",
                                      details={"argument": "approval_id", "reason": "already_decided"})
            svc.journal.append(_decided(a, word, channel, note), now)
            if word == "approved":
                c = c.advanced(ConditionStatus.ARMED, status_msg=who)
                self._save(c)
                svc.journal.append(_event(ConditionArmedEvent, c), now)
            else:
                c = c.advanced(ConditionStatus.CANCELED, status_msg=who)
                self._save(c)
                svc.journal.append(_event(ConditionCanceledEvent, c), now)
        log.info("approval %s %s (%s): condition %s is %s", a["approval_id"], word, channel, c.condition_id,
                 c.status.value)
        svc.notify()
        wire = self._wire(c)
        return {"approval_id": a["approval_id"], "decision": word, "kind": "condition", "condition": wire,
                "order": {"client_order_id": c.client_order_id, "status": c.status.value, "status_msg": c.status_msg}}

    def expire_approval(self, a: dict[str, Any]) -> None:
        """Nobody decided in time: the approval expires and the condition ends canceled, never armed."""
        svc = self.svc
        now = svc.clock.now()
        with svc.journal.batch():
            if not svc.journal.decide_approval(a["approval_id"], "expired", iso(now), "timer", ""):
                return
            svc.journal.append(_decided(a, "expired", "timer", ""), now)
            try:
                c = self._find(a["account"], a["fingerprint"]["condition_id"])
            except OrderNotFound:
                return
            if c.status is ConditionStatus.PENDING_APPROVAL:
                c = c.advanced(ConditionStatus.CANCELED, status_msg="its approval expired undecided; never armed")
                self._save(c)
                svc.journal.append(_event(ConditionCanceledEvent, c), now)
        svc.notify()

    async def _new(self, name: str, acct: AccountConfig, code: str, side: Side,
                   args: ConditionArgs) -> tuple[Condition, Decimal]:
        """The condition `args` describe, checked against today's instrument and the account, and the
        yuan its order is about (its limit price, else the trigger's, else the last, x volume)."""
        svc = self.svc
        t = args.trigger
        def dec(value: float | None, name: str) -> Decimal | None:
            return None if value is None else to_decimal(value, f"trigger.{name}")

        at = None if t.at is None else parse_time(t.at, "trigger.at")
        trigger = make_trigger(t.type, dec(t.price, "price"), dec(t.trail_percent, "trail_percent"),
                               dec(t.trail_amount, "trail_amount"), at)
        spec = None
        if args.order is not None:
            o = args.order
            spec = make_spec(name, code, side, args.volume, o.order_type,
                             None if o.price is None else to_decimal(o.price, "order.price"), o.market_type)
        now = svc.clock.now()
        expires = None if args.expires_at is None else parse_time(args.expires_at, "expires_at")
        if expires is not None and expires <= now:
            raise InvalidArgument("expires_at is not in the future", details={"argument": "expires_at"})
        cid = check_not_reserved(args.client_order_id)
        if cid is not None and svc.journal.order_by_client_id(name, cid) is not None:
            raise IdempotencyConflict(f"client_order_id {cid} is an order's already",
                                      details={"client_order_id": cid})
        inst = await svc.broker.instrument(code)
        quote = (await svc.broker.quotes([code]))[0]
        check_trigger_in_band(trigger, inst)
        msg = ""
        if spec is not None:
            if spec.price is not None and not is_on_tick(spec.price, inst.price_tick):
                raise OrderRefused(f"order.price {spec.price} is not a multiple of the tick {inst.price_tick}",
                                   code=ErrorCode.PRICE_TICK, details={"rule": "price_tick", "argument": "order.price"})
            msg = await self._holding_note(acct, code, side, args.volume, inst.lot.allows_buy)
        token = svc.ids.client_order_id()
        derived = f"c-{token}"
        about = (spec.price if spec is not None and spec.price is not None else None) or trigger.price or quote.last
        return Condition(
            condition_id=f"cd-{token}", client_order_id=cid or (derived if CLIENT_ORDER_ID.match(derived)
                                                                 else f"c-{token[-20:]}"),
            account=name, code=code, name=clean_text(inst.name), side=side, volume=args.volume, trigger=trigger,
            order=spec, status=ConditionStatus.ARMED, created_at=iso_ms(now), status_msg=msg,
            expires_at=None if expires is None else iso(expires), oco_group=args.oco_group,
            high_water=quote.last if trigger.type is TriggerType.TRAILING_STOP else None,
            live=acct.live), about * args.volume

    async def _holding_note(self, acct: AccountConfig, code: str, side: Side, volume: int, lot_ok: Any) -> str:
        """What arming a condition that sends an order says about the account: a buy must fit the lot
        rule; a sell needs the shares held (LOT_SIZE / INSUFFICIENT_POSITION), and says so when they
        are not sellable yet (T+1: it waits)."""
        if side is Side.BUY:
            if not lot_ok(volume):
                raise OrderRefused(f"buy volume {volume} does not fit the lot rule", code=ErrorCode.LOT_SIZE,
                                   details={"rule": "lot_size"})
            return ""
        view = await account_view(self.svc.broker, acct.account_id)
        held, usable = view.volume.get(code, 0), view.can_use_volume.get(code, 0)
        if held < volume:
            raise OrderRefused(f"a sell condition of {volume} shares needs them held; {held} are",
                               code=ErrorCode.INSUFFICIENT_POSITION,
                               hint="Arm a sell condition once the shares are held (a buy's fill is enough: "
                                    "it waits for T+1 itself).", details={"rule": "position"})
        return "" if usable >= volume else _t1_note(usable, held)

    def _replay(self, name: str, c: Condition) -> Condition | None:
        for row in self.svc.journal.conditions(name, client_order_id=c.client_order_id):
            prior = _from_json(row)
            if prior.fingerprint() != c.fingerprint():
                raise IdempotencyConflict(f"client_order_id {c.client_order_id} was used for a different condition",
                                          details={"client_order_id": c.client_order_id})
            return prior
        return None

    def _check_token(self, c: Condition, acct: AccountConfig, token: str | None) -> str | None:
        """The confirm token's id; a live account without one gets CONFIRM_REQUIRED carrying a token
        bound to the whole condition (its every field), which the second call sends back."""
        svc = self.svc
        if token is None:
            if not acct.live:
                return None
            issued, expires = svc.tokens.issue(TOKEN_TOOL, c.fingerprint(), svc.clock.now())
            raise ConfirmError(
                "arming a condition on a live account needs confirming; call place_conditional_order again with "
                "details.confirm_token and the same arguments", code=ErrorCode.CONFIRM_REQUIRED,
                hint="Show the person the condition (details.condition; preview_order shows its order), and only "
                     "if they agree call again with details.confirm_token.",
                details={"confirm_token": issued, "confirm_expires_at": expires, "condition": self._wire(c)})
        token_id = svc.tokens.verify(token, TOKEN_TOOL, c.fingerprint(), svc.clock.now())
        if svc.journal.token_used(token_id):
            raise ConfirmError("this confirm token was already used", code=ErrorCode.CONFIRM_USED)
        return token_id

    async def list_conditional_orders(self, args: ListConditionsArgs) -> dict[str, Any]:
        name, _ = self.svc.account(args.account)
        statuses = tuple(s.value for s in ACTIVE) if args.active_only else ()
        return {"conditions": [self._wire(c) for c in map(_from_json, self.svc.journal.conditions(name, statuses))]}

    async def cancel_conditional_order(self, args: CancelConditionArgs) -> dict[str, Any]:
        """Disarm a condition; one no longer active is answered as it is (idempotent)."""
        svc = self.svc
        name, _ = svc.account(args.account)
        async with svc.order_lock:   # never while it fires
            c = self._find(name, args.condition_id)
            if c.status in ACTIVE:
                if c.approval is not None and c.status is ConditionStatus.PENDING_APPROVAL:
                    # Nothing left for a person to decide: the approval ends with it.
                    now = svc.clock.now()
                    a = {"approval_id": c.approval["approval_id"], "account": c.account,
                         "client_order_id": c.client_order_id}
                    note = "the agent canceled the condition"
                    with svc.journal.batch():
                        if svc.journal.decide_approval(a["approval_id"], "denied", iso(now), "cancel", note):
                            svc.journal.append(_decided(a, "denied", "cancel", note), now)
                        c = self._end(c, ConditionStatus.CANCELED, "canceled on request, before a person decided")
                else:
                    c = self._end(c, ConditionStatus.CANCELED, "canceled on request")
        return {"condition": self._wire(c)}

    def _wire(self, c: Condition) -> dict[str, Any]:
        """The condition as the tools show it, with its order's status once it has one."""
        out = c.to_wire()
        if c.status is ConditionStatus.TRIGGERED and not c.alert:
            rec = self.svc.journal.order_by_client_id(c.account, c.client_order_id)
            out["order_status"] = None if rec is None else rec.status.value
            if rec is not None and rec.order_id is not None:
                out["order_id"] = rec.order_id
        return out

    def _end(self, c: Condition, status: ConditionStatus, msg: str) -> Condition:
        """Move `c` to a final status with `msg`, journaled with its event, in one transaction."""
        svc = self.svc
        done = c.advanced(status, status_msg=msg)
        cls: type[Event] = ConditionCanceledEvent if status is ConditionStatus.CANCELED else ConditionExpiredEvent
        with svc.journal.batch():
            self._save(done)
            svc.journal.append(_event(cls, done), svc.clock.now())
        log.info("condition %s %s: %s", c.condition_id, status.value, msg)
        svc.notify()
        return done

    # ----- the watcher
    async def watch(self) -> None:
        """One round: resume what a restart left, expire, then every armed condition against the
        new quote of its code (and the clock, for time triggers)."""
        async with self._round:
            if not self._resumed:
                self._resumed = True
                await self.resume()
            armed = self._active()
            if not armed:
                return
            now = self.svc.clock.now()
            for c in [c for c in armed.values() if expired(c, now)]:
                async with self.svc.order_lock:
                    current = self._current(c)
                    if current.status is ConditionStatus.ARMED:
                        self._end(current, ConditionStatus.EXPIRED, f"expired at {c.expires_at}, unfired")
            codes = sorted({c.code for c in armed.values()})
            if not codes:
                return
            try:
                with anyio.fail_after(self.svc.cfg.worker.call_timeout_s):
                    quotes = await self.svc.broker.quotes(codes)
            except (QmtError, TimeoutError) as exc:
                log.warning("conditions: no quotes this round (%s)", exc)
                return
            phase = self.svc.broker.phase()
            for q in quotes:
                new = q.volume > 0 and self._seen.get(q.code) != q.time
                self._seen[q.code] = q.time
                await self._on_quote(q, q.last if new else None, now, phase)

    async def _on_quote(self, q: Quote, last: Decimal | None, now: datetime, phase: Phase) -> None:
        watching = [c for c in self._active().values() if c.code == q.code]
        moved = []
        for c in watching:
            mark = None if last is None else moved_mark(c, last)
            if mark is not None:
                moved.append(replace(c, high_water=mark))
        if moved:
            with self.svc.journal.batch():   # the marks move together: one fsync a round
                for c in moved:
                    self._save(c)
        for w in watching:
            cond = self._active().get(w.condition_id)
            if cond is None or not fires(cond, last, now) or not _session_takes(cond, phase):
                continue
            try:
                await self._fire(cond, q, last, phase)
            except QmtError as exc:
                # The broker or the journal failed under it: it stays as the journal has it, tried again
                # at the next quote if still armed.
                log.warning("condition %s: firing stopped: %s %s", cond.condition_id, exc.code.value, exc.message)

    async def _fire(self, c: Condition, q: Quote, last: Decimal | None, phase: Phase) -> None:
        svc = self.svc
        async with svc.order_lock:
            current = self._current(c)
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
            v = await self._decided(current, acct, req)
            if v is None:
                return
            fired = self._trigger(current, last, note, now)
            crashpoints.reached("condition.triggered")
            await self._send(fired, acct, req, v)

    async def _decided(self, c: Condition, acct: AccountConfig, req: OrderRequest) -> OrderDecision | None:
        """The checks at the trigger: the decision when the order may go, else None. A refusal that
        passes with time (T+1 shares, the session) leaves `c` armed with a status_msg saying so; any
        other ends it `failed` with the code, journaled and notified."""
        v = await self.svc.decision(req)
        refusal: QmtError | None = first_failure(v.checks) or first_denial(v.decisions)
        if refusal is None:
            return v
        rule = str(refusal.details.get("rule", ""))
        wait = ""
        if refusal.code is ErrorCode.INSUFFICIENT_POSITION:
            view = await account_view(self.svc.broker, acct.account_id)
            held, usable = view.volume.get(c.code, 0), view.can_use_volume.get(c.code, 0)
            if held >= c.volume:
                wait = _t1_note(usable, held)
        elif rule in _WAIT_RULES:
            wait = f"waits: {refusal.message}"
        if wait:
            if c.status_msg != wait:
                self._save(replace(c, status_msg=wait))
                self.svc.notify()
            return None
        self._fail(c, refusal)
        return None

    def _fail(self, c: Condition, refusal: QmtError) -> None:
        svc = self.svc
        msg = f"refused when it fired: {refusal.code.value}: {refusal.message}"
        failed = c.advanced(ConditionStatus.FAILED, status_msg=msg)
        with svc.journal.batch():
            self._save(failed)
            svc.journal.append(_event(ConditionFailedEvent, failed, error_code=refusal.code.value,
                                      rule=refusal.details.get("rule")), svc.clock.now())
        log.info("condition %s failed: %s", c.condition_id, msg)
        svc.notify()

    def _trigger(self, c: Condition, last: Decimal | None, note: str, now: datetime) -> Condition:
        """Commit armed -> triggered (with the order's client_order_id, before any order exists) and
        the cancel of its OCO siblings, in one transaction."""
        svc = self.svc
        fired = c.advanced(ConditionStatus.TRIGGERED, triggered_at=iso(now), triggered_price=last, status_msg=note)
        siblings = [s for s in map(_from_json, svc.journal.conditions(c.account, tuple(x.value for x in ACTIVE)))
                    if c.oco_group is not None and s.oco_group == c.oco_group and s.condition_id != c.condition_id]
        with svc.journal.batch():
            self._save(fired)
            svc.journal.append(_event(ConditionTriggeredEvent, fired, alert=fired.alert, triggered_price=last), now)
            for s in siblings:
                done = s.advanced(ConditionStatus.CANCELED,
                                  status_msg=f"canceled: {c.condition_id} of OCO group {c.oco_group} fired")
                self._save(done)
                svc.journal.append(_event(ConditionCanceledEvent, done), now)
        log.info("condition %s triggered at %s; order client_order_id=%s", c.condition_id, last,
                 "(alert)" if fired.alert else fired.client_order_id)
        svc.notify()
        return fired

    async def _send(self, c: Condition, acct: AccountConfig, req: OrderRequest, v: OrderDecision) -> None:
        """Record the order of the triggered `c` and send it, down the order path every order takes.
        Call under the order lock."""
        svc = self.svc
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
        try:
            await svc.send_recorded(c.account, acct, req, cid)
        except QmtError as exc:
            log.warning("condition %s: its order %s: %s %s", c.condition_id, cid, exc.code.value, exc.message)
        sent = svc.journal.order_by_client_id(c.account, cid)
        if sent is not None and sent.order_id is not None:
            self._save(replace(self._current(c), order_id=sent.order_id))

    async def resume(self) -> None:
        """After a restart: a triggered condition whose order was never recorded was never sent (the
        record comes before the broker call): send it now, the checks first, under its own id."""
        svc = self.svc
        for c in map(_from_json, svc.journal.conditions(statuses=(ConditionStatus.TRIGGERED.value,))):
            if c.alert or svc.journal.order_by_client_id(c.account, c.client_order_id) is not None:
                continue
            try:
                async with svc.order_lock:
                    current = self._current(c)
                    if svc.journal.order_by_client_id(c.account, c.client_order_id) is not None:
                        continue
                    _, acct = svc.account(current.account)
                    inst = await svc.broker.instrument(current.code)
                    q = (await svc.broker.quotes([current.code]))[0]
                    price, _ = fire_price(current, inst, q.bids[0].price if q.bids else None,
                                          q.asks[0].price if q.asks else None, q.last,
                                          svc.broker.phase() is Phase.CONTINUOUS, svc.clock.now().date())
                    req = current.request(price)
                    v = await svc.decision(req)
                    refusal = first_failure(v.checks) or first_denial(v.decisions)
                    if refusal is not None:
                        self._fail(current, refusal)
                        continue
                    log.info("condition %s: triggered before a restart, its order unsent: sending %s now",
                             c.condition_id, c.client_order_id)
                    await self._send(current, acct, req, v)
            except QmtError as exc:
                log.warning("condition %s: cannot send its order yet: %s", c.condition_id, exc.message)
                self._resumed = False   # try again at the next round


def _session_takes(c: Condition, phase: Phase) -> bool:
    """Whether the session now takes the condition's order (an alert needs none)."""
    if c.order is None:
        return True
    if c.order.order_type is OrderType.MARKET:
        return phase is Phase.CONTINUOUS
    return phase in ACCEPTS_ORDERS


def _t1_note(usable: int, held: int) -> str:
    return (f"waits: only {usable} of {held} shares are sellable today (T+1: shares bought today sell from the "
            "next trading day); it fires on the first quote that meets the trigger once they are")
