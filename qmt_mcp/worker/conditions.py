"""Conditional orders held by the worker: arming, the store and the tools; why the watcher that
fires them (condition_watch.py) fires each exactly once, and what survives a restart (CONTRACT.md
0.2 "Conditional orders, held by the gateway"; the trigger logic is domain/conditions.py).

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

import logging
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..calls import CancelConditionArgs, ConditionArgs, ListConditionsArgs
from ..config import AccountConfig
from ..domain.codes import normalize_code
from ..domain.conditions import (
    ACTIVE,
    Condition,
    ConditionStatus,
    TriggerType,
    check_trigger_in_band,
    make_spec,
    make_trigger,
    t1_note,
)
from ..domain.errors import (
    ConfirmError,
    ErrorCode,
    IdempotencyConflict,
    InvalidArgument,
    OrderNotFound,
    OrderRefused,
)
from ..domain.events import (
    ConditionArmedEvent,
    ConditionCanceledEvent,
    ConditionExpiredEvent,
    Event,
)
from ..domain.money import is_on_tick, to_decimal
from ..domain.orders import (
    CLIENT_ORDER_ID,
    Side,
    check_not_reserved,
)
from ..domain.text import clean_text
from ..domain.timeutil import iso, iso_ms, parse_time
from . import condition_approvals, crashpoints
from .args import nonblank
from .condition_store import approval_decided, condition_event, from_json, to_json
from .condition_watch import Watcher
from .riskbook import account_view

if TYPE_CHECKING:
    from .service import WorkerService

log = logging.getLogger("qmt_mcp.worker")
TOKEN_TOOL = "place_conditional_order"  # noqa: S105 (the tool a confirm token is bound to)


class Conditions:
    def __init__(self, service: WorkerService) -> None:
        self.svc = service
        self._armed: dict[str, Condition] | None = None   # what the watcher looks at, loaded once
        # The same conditions by code, and those with an expiry, each in `_armed`'s order: the watcher's
        # round reads them as they are instead of sorting a thousand out again for every quote.
        self._by_code: dict[str, dict[str, Condition]] = {}
        self._expiring: dict[str, Condition] = {}
        self._by_group: dict[tuple[str, str], dict[str, Condition]] = {}   # (account, oco_group) -> its armed
        self.watcher = Watcher(self)

    # ----- the store: the journal is the record; `_armed` mirrors its armed rows
    def active(self) -> dict[str, Condition]:
        if self._armed is None:
            rows = self.svc.journal.conditions(statuses=(ConditionStatus.ARMED.value,))
            armed: dict[str, Condition] = {}
            self._by_code, self._expiring, self._by_group = {}, {}, {}
            for c in map(from_json, rows):
                self._hold(armed, c)
            self._armed = armed
        return self._armed

    def armed_by_code(self) -> dict[str, dict[str, Condition]]:
        """code -> its armed conditions (condition_id -> condition), in the order `active()` has them."""
        self.active()
        return self._by_code

    def expiring(self) -> dict[str, Condition]:
        """The armed conditions with an `expires_at`, in the order `active()` has them."""
        self.active()
        return self._expiring

    def armed_in_group(self, account: str, oco_group: str) -> list[Condition]:
        """The armed conditions of `account`'s OCO group `oco_group`, in the order `active()` has them."""
        self.active()
        return list(self._by_group.get((account, oco_group), {}).values())

    def _hold(self, armed: dict[str, Condition], c: Condition) -> None:
        armed[c.condition_id] = c
        self._by_code.setdefault(c.code, {})[c.condition_id] = c
        if c.expires_at is not None:
            self._expiring[c.condition_id] = c
        if c.oco_group is not None:
            self._by_group.setdefault((c.account, c.oco_group), {})[c.condition_id] = c

    def _drop(self, armed: dict[str, Condition], c: Condition) -> None:
        if armed.pop(c.condition_id, None) is None:
            return
        group = self._by_code.get(c.code, {})
        group.pop(c.condition_id, None)
        if not group:
            self._by_code.pop(c.code, None)
        self._expiring.pop(c.condition_id, None)
        if c.oco_group is not None:
            key = (c.account, c.oco_group)
            members = self._by_group.get(key, {})
            members.pop(c.condition_id, None)
            if not members:
                self._by_group.pop(key, None)

    def _forget_view(self) -> None:
        self._armed = None

    def save(self, c: Condition) -> None:
        """Write `c` (inside the caller's batch, if any) and keep the watcher's view in step (read
        again from the journal if the batch does not commit)."""
        self.svc.journal.put_condition(c.condition_id, c.account, c.client_order_id, c.status.value, c.created_at,
                                       to_json(c))
        self.svc.journal.on_rollback(self._forget_view)
        armed = self.active()
        if c.status is ConditionStatus.ARMED:
            self._hold(armed, c)
        else:
            self._drop(armed, c)

    def find(self, account: str, condition_id: str) -> Condition:
        """The account's condition `condition_id`; ORDER_NOT_FOUND (with a hint) when it has none."""
        for row in self.svc.journal.conditions(account, condition_id=condition_id):
            return from_json(row)
        raise OrderNotFound(f"no conditional order {condition_id!r} on this account",
                            hint="list_conditional_orders lists the account's conditions.",
                            details={"condition_id": condition_id})

    def current(self, c: Condition) -> Condition:
        """The journal's word on `c` now (another round, or a cancel, may have moved it)."""
        return self.find(c.account, c.condition_id)

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
        preview = await self._preview(c)
        token = nonblank(args.confirm_token, "confirm_token")
        async with svc.order_lock:
            if args.client_order_id is not None:
                replay = self._replay(name, c)
                if replay is not None:
                    return {"condition": self.wire(replay), "idempotent_replay": True}
            token_id = self._check_token(c, acct, token, preview)
            # Where [approval] asks for a person, arming waits for one (firing never does).
            waits = not c.alert and svc.approvals.needed(acct, amount)
            now = svc.clock.now()
            with svc.journal.batch():
                if token_id is not None and not svc.journal.use_token(token_id, iso(now)):
                    raise ConfirmError("this confirm token was already used", code=ErrorCode.CONFIRM_USED)
                if waits:
                    c = condition_approvals.request_approval(self, c, now)
                else:
                    self.save(c)
                    svc.journal.append(condition_event(ConditionArmedEvent, c), now)
        log.info("condition %s %s: %s %s %d %s, order client_order_id=%s", c.condition_id, c.status.value, side.value,
                 code, c.volume, c.trigger.type.value, c.client_order_id)
        svc.notify()
        return {"condition": self.wire(c), "idempotent_replay": False, "preview": preview}

    async def _preview(self, c: Condition) -> dict[str, Any] | None:
        """What preview_order says now of the order `c` would send (None: an alert): every check, the
        cost with fees, risk. As of now only: it is decided again when the condition fires."""
        if c.alert:
            return None
        req = c.request()
        v = await self.svc.decision(req)
        return {"would_accept": v.would_accept, "checks": [x.to_wire() for x in v.checks],
                "estimate": v.est.to_wire(req.side), "risk": [d.to_wire() for d in v.decisions]}

    # ----- a person in the loop (condition_approvals.py; worker/approvals.py routes the decisions here)
    def approval_entry(self, a: dict[str, Any]) -> dict[str, Any] | None:
        return condition_approvals.approval_entry(self, a)

    def decide(self, a: dict[str, Any], decision: str, channel: str, note: str) -> dict[str, Any]:
        return condition_approvals.decide(self, a, decision, channel, note)

    def expire_approval(self, a: dict[str, Any]) -> None:
        condition_approvals.expire_approval(self, a)

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
        return "" if usable >= volume else t1_note(usable, held)

    def _replay(self, name: str, c: Condition) -> Condition | None:
        for row in self.svc.journal.conditions(name, client_order_id=c.client_order_id):
            prior = from_json(row)
            if prior.fingerprint() != c.fingerprint():
                raise IdempotencyConflict(f"client_order_id {c.client_order_id} was used for a different condition",
                                          details={"client_order_id": c.client_order_id})
            return prior
        return None

    def _check_token(self, c: Condition, acct: AccountConfig, token: str | None,
                     preview: dict[str, Any] | None) -> str | None:
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
                details={"confirm_token": issued, "confirm_expires_at": expires, "condition": self.wire(c),
                         "preview": preview})
        token_id = svc.tokens.verify(token, TOKEN_TOOL, c.fingerprint(), svc.clock.now())
        if svc.journal.token_used(token_id):
            raise ConfirmError("this confirm token was already used", code=ErrorCode.CONFIRM_USED)
        return token_id

    async def list_conditional_orders(self, args: ListConditionsArgs) -> dict[str, Any]:
        name, _ = self.svc.account(args.account)
        statuses = tuple(s.value for s in ACTIVE) if args.active_only else ()
        return {"conditions": [self.wire(c) for c in map(from_json, self.svc.journal.conditions(name, statuses))]}

    async def cancel_conditional_order(self, args: CancelConditionArgs) -> dict[str, Any]:
        """Disarm a condition; one no longer active is answered as it is (idempotent)."""
        svc = self.svc
        name, _ = svc.account(args.account)
        async with svc.order_lock:   # never while it fires
            c = self.find(name, args.condition_id)
            if c.status in ACTIVE:
                if c.approval is not None and c.status is ConditionStatus.PENDING_APPROVAL:
                    # Nothing left for a person to decide: the approval ends with it.
                    now = svc.clock.now()
                    a = {"approval_id": c.approval["approval_id"], "account": c.account,
                         "client_order_id": c.client_order_id}
                    note = "the agent canceled the condition"
                    with svc.journal.batch():
                        if svc.journal.decide_approval(a["approval_id"], "denied", iso(now), "cancel", note):
                            svc.journal.append(approval_decided(a, "denied", "cancel", note), now)
                        c = self.end(c, ConditionStatus.CANCELED, "canceled on request, before a person decided")
                else:
                    c = self.end(c, ConditionStatus.CANCELED, "canceled on request")
        return {"condition": self.wire(c)}

    def wire(self, c: Condition) -> dict[str, Any]:
        """The condition as the tools show it, with its order's status once it has one."""
        out = c.to_wire()
        if c.status is ConditionStatus.TRIGGERED and not c.alert:
            rec = self.svc.journal.order_by_client_id(c.account, c.client_order_id)
            out["order_status"] = None if rec is None else rec.status.value
            if rec is not None and rec.order_id is not None:
                out["order_id"] = rec.order_id
        return out

    def end(self, c: Condition, status: ConditionStatus, msg: str) -> Condition:
        """Move `c` to a final status with `msg`, journaled with its event, in one transaction."""
        svc = self.svc
        done = c.advanced(status, status_msg=msg)
        cls: type[Event] = ConditionCanceledEvent if status is ConditionStatus.CANCELED else ConditionExpiredEvent
        with svc.journal.batch():
            self.save(done)
            svc.journal.append(condition_event(cls, done), svc.clock.now())
        log.info("condition %s %s: %s", c.condition_id, status.value, msg)
        svc.notify()
        return done


    async def watch(self) -> None:
        """One round of the watcher (condition_watch.py): with every worker tick."""
        await self.watcher.watch()
