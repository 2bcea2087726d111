"""The worker's order path and event journal: everything that must hold for every client.

place_order: normalize → validate (rule book) → confirm token (live) → risk → person proof → record
`pending_submit` durably → broker call (order_remark = client_order_id) → broker pushes advance the
record through the status table and land in the journal as events. Where `[approval]` asks for a
person, the record is `pending_approval` instead and nothing is sent until one decides (approvals.py).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import anyio

from ..backends.port import (
    BrokerPort,
)
from ..backends.xtq.constants import xt_price_type  # the contract shows xtquant's price type
from ..calls import CancelArgs, EventsArgs, OrderLookupArgs, OrdersArgs, PreviewArgs, WorkerPlaceArgs
from ..clock import Clock, IdSource
from ..config import AccountConfig, Config, mask_account_id
from ..domain.decision import OrderDecision, decide
from ..domain.errors import (
    BrokerReject,
    ConfirmError,
    ErrorCode,
    IdempotencyConflict,
    InvalidArgument,
    OrderNotFound,
    QmtError,
    StateUnwritable,
    SubmitIndeterminate,
    UnknownAccount,
)
from ..domain.events import GapEvent, OrderStatusEvent
from ..domain.orders import (
    OrderRecord,
    OrderRequest,
    check_not_reserved,
)
from ..domain.risk import RiskLimits, first_denial
from ..domain.status import CANCELABLE, TERMINAL, OrderStatus
from ..domain.text import clean_text
from ..domain.timeutil import cn_date, iso, iso_ms
from ..domain.validation import MarketState, first_failure
from . import crashpoints
from .approvals import Approvals
from .args import account_name, nonblank, opt_int, order_of
from .cancels import Cancels
from .conditions import Conditions
from .confirm import ConfirmTokens
from .history import History, day_range
from .history import day_start as start_of
from .journal import Journal
from .person import PersonProofs, person_needed
from .pushes import PushRecorder
from .quotes import QuoteWatch
from .riskbook import RiskBook, account_view, day_start

log = logging.getLogger("qmt_mcp.worker")
MAX_SEQ = 2**62   # the largest seq a caller may name (SQLite's integers are 64-bit)


class WorkerService:
    def __init__(
        self, cfg: Config, broker: BrokerPort, journal: Journal, tokens: ConfirmTokens, clock: Clock,
        ids: IdSource,
    ) -> None:
        self.cfg = cfg
        self.broker = broker
        self.journal = journal
        self.tokens = tokens
        self.clock = clock
        self.ids = ids
        self.risk = RiskBook(journal, clock)
        self.proofs = PersonProofs(tokens)
        self.started_at = clock.now()
        self._changed = anyio.Event()
        self.quarantined: list[dict[str, str]] = []  # state files moved aside at start (statefiles)
        self.order_lock = anyio.Lock()  # one order decision at a time: risk usage must see pending orders
        self.pushes = PushRecorder(cfg, journal, clock, self.notify)
        broker.set_sink(self.pushes.on_events)
        self.cancels = Cancels(self)
        self.approvals = Approvals(self)
        self.history = History(cfg, broker, journal, clock)
        self.conditions = Conditions(self)
        self.quotes = QuoteWatch(broker, clock)   # quotes pushed to the servers that follow them

    # ----- accounts
    def account(self, given: object) -> tuple[str, AccountConfig]:
        """The configured account named `given`; InvalidArgument, or UnknownAccount listing the names."""
        name = account_name(given)
        acct = self.cfg.accounts.get(name)
        if acct is None:
            raise UnknownAccount(f"no account named {name!r}", details={"accounts": sorted(self.cfg.accounts)})
        return name, acct

    def limits_for(self, account: str) -> RiskLimits:
        """The account's effective risk limits: the config's, with a person's kill switch and block list."""
        return self.risk.limits(account, self.cfg.risk_for(account))

    def notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    # ----- preview and place
    async def _validate(self, req: OrderRequest, excluding: str | None = None) -> OrderDecision:
        """The whole decision about `req` (domain/decision.py), from one read of the instrument, the
        book and the account: the rule book and the risk rules see the same asset and positions.
        `excluding`: a client_order_id whose own record risk usage leaves out (an approved order)."""
        inst = await self.broker.instrument(req.code)
        quote = (await self.broker.quotes([req.code]))[0]
        view = await account_view(self.broker, self.cfg.accounts[req.account].account_id)
        best_ask = quote.asks[0].price if quote.asks else None
        best_bid = quote.bids[0].price if quote.bids else None
        today = self.clock.now().date()
        mkt = MarketState(self.broker.phase(), today, best_bid, best_ask, quote.last if quote.volume else None)
        limits = self.limits_for(req.account)
        state = self.risk.refresh(req.account, view.total_asset, limits)
        usage = self.risk.usage(req.account, view.volume.keys(), excluding)
        return decide(req, inst, mkt, view, self.broker.fees, limits, state, usage)

    async def preview_order(self, args: PreviewArgs) -> dict[str, Any]:
        req = order_of(args)
        _, acct = self.account(args.account)
        v = await self._validate(req)
        out: dict[str, Any] = {
            "would_accept": v.would_accept,
            "checks": [c.to_wire() for c in v.checks],
            "estimate": v.est.to_wire(req.side),
            "risk": {"decisions": [d.to_wire() for d in v.decisions],
                     "usage": RiskBook.usage_wire(v.usage)},
            "live": acct.live,
            "order": {**req.fingerprint(), "volume": req.volume, "name": v.inst.name},
        }
        if acct.live and v.would_accept:
            token, expires = self.tokens.issue("place_order", req.fingerprint(), self.clock.now())
            out.update(confirm_token=token, confirm_expires_at=expires)
        return out

    def check_token(self, tool: str, fields: dict[str, str], token: str | None, live: bool) -> str | None:
        if token is None:
            if live:
                raise ConfirmError("a live account needs a confirm token from the preview",
                                   code=ErrorCode.CONFIRM_REQUIRED)
            return None
        return self.tokens.verify(token, tool, fields, self.clock.now())

    async def _decide(
        self, req: OrderRequest, acct: AccountConfig, token: str | None, *, approved: str | None = None,
    ) -> tuple[OrderDecision, str | None]:
        """Validation, the confirm token and risk, in that order; the first refusal is raised. Returns
        the decision and the token's id. Call under the order lock: usage must see pending orders.
        `approved`: the client_order_id of an order a person approved, decided again without a token
        (it was spent when the approval was requested) and without counting its own pending record."""
        v = await self._validate(req, excluding=approved)
        failure = first_failure(v.checks)
        if failure is not None:
            raise failure
        token_id = None if approved else self.check_token("place_order", req.fingerprint(), token, acct.live)
        denial = first_denial(v.decisions)
        if denial is not None:
            raise denial
        if token_id is not None and self.journal.token_used(token_id):
            raise ConfirmError("this confirm token was already used", code=ErrorCode.CONFIRM_USED)
        return v, token_id

    async def check_order(self, args: WorkerPlaceArgs) -> dict[str, Any]:
        """place_order's whole decision without sending anything: whether a person must confirm it,
        and if so the proof their confirmation will carry (person.py). A refusal is raised as it
        would be by place_order, so nobody is asked about an order that would not go."""
        req = order_of(args)
        name, acct = self.account(args.account)
        cid = check_not_reserved(args.client_order_id)
        token = nonblank(args.confirm_token, "confirm_token")
        async with self.order_lock:
            if cid is not None and self._replay(name, cid, req) is not None:
                return {"person": None}  # the recorded result is answered; nothing new is sent
            v, token_id = await self._decide(req, acct, token)
        now = self.clock.now()
        person: dict[str, Any] = {}
        if token_id is not None and person_needed(self.cfg, acct, args.person):
            person["proof"], person["expires_at"] = self.proofs.issue("place_order", req.fingerprint(), token_id, now)
        if args.person_approval == "ask" and self._elicited_approval(acct, v.est.amount):
            # The person asked in this call can be the approval too (approvals.py): the same yes.
            person["approval_proof"], person["expires_at"] = self.proofs.issue(
                "approve_order", req.fingerprint(), token_id or "", now)
        if not person:
            return {"person": None}
        order = {**req.fingerprint(), "volume": req.volume, "name": clean_text(v.inst.name), "live": acct.live}
        return {"person": {**person, "order": order, "estimate": v.est.to_wire(req.side)}}

    def _elicited_approval(self, acct: AccountConfig, amount: Decimal) -> bool:
        """Whether an order of `amount` on `acct` waits for a person, who may decide by elicitation."""
        return "elicitation" in self.cfg.approval.channels and self.approvals.needed(acct, amount)

    async def place_order(self, args: WorkerPlaceArgs) -> dict[str, Any]:
        crashpoints.arm()
        req = order_of(args)
        name, acct = self.account(args.account)
        cid = check_not_reserved(args.client_order_id) or self.ids.client_order_id()
        token = nonblank(args.confirm_token, "confirm_token")
        proof = nonblank(args.person_proof, "person_proof")
        approval_proof = nonblank(args.approval_proof, "approval_proof")
        async with self.order_lock:
            replay = self._replay(name, cid, req)
            if replay is not None:
                return {"order": replay.to_wire(), "idempotent_replay": True}
            v, token_id = await self._decide(req, acct, token)
            if token_id is not None and person_needed(self.cfg, acct, args.person):
                # Checked here, under the lock and after risk, never trusted from an earlier look.
                self.proofs.verify(proof, "place_order", req.fingerprint(), token_id, self.clock.now())
            waits = self.approvals.needed(acct, v.est.amount)
            elicited = approval_proof is not None and waits and self._elicited_approval(acct, v.est.amount)
            proof_id = ""
            if elicited:
                # Checked before the token is spent, like the person proof: a bad one changes nothing.
                proof_id = self.proofs.verify(approval_proof, "approve_order", req.fingerprint(), token_id or "",
                                              self.clock.now())
                if token_id is None and self.journal.token_used(proof_id):
                    # A paper order's approval proof has no token to be spent with: it is spent itself.
                    raise ConfirmError("this confirmation was already used", code=ErrorCode.CONFIRM_USED)
            if token_id is not None and not self.journal.use_token(token_id, iso(self.clock.now())):
                raise ConfirmError("this confirm token was already used", code=ErrorCode.CONFIRM_USED)
            if elicited and token_id is None:
                self.journal.use_token(proof_id, iso(self.clock.now()))
            rec = OrderRecord(
                account=name, client_order_id=cid, code=req.code, name=clean_text(v.inst.name), side=req.side,
                order_type=req.order_type, market_type=req.market_type,
                price_type=xt_price_type(req.order_type, req.market_type, req.code),
                price=req.price or v.est.price, volume=req.volume, status=OrderStatus.PENDING_SUBMIT,
                created_at=iso_ms(self.clock.now()), live=acct.live, fingerprint=req.fingerprint(),
            )
            if waits:
                # Every check passed and the token is spent: the order waits for a person, unsent;
                # unless the person asked in this very call said yes, which decides it now.
                waiting = self.approvals.request(rec)
                if elicited:
                    await self.approvals.decided_by_elicitation(waiting)
            else:
                if not self.journal.insert_order(rec):
                    # Unreachable while the lock serializes orders; kept so a record is never overwritten.
                    raise IdempotencyConflict(f"client_order_id {cid} is already recorded",
                                              details={"client_order_id": cid})
                await self.send_recorded(name, acct, req, cid)
        if args.wait_seconds > 0:
            await self._wait_terminal(name, cid, args.wait_seconds)
        final = assert_record(self.journal.order_by_client_id(name, cid))
        if final.status is OrderStatus.JUNK:
            raise BrokerReject(final.status_msg or "the broker refused the order", state_changed="yes",
                               details={"order": final.to_wire()})
        return {"order": final.to_wire(), "idempotent_replay": False, "journal_seq": self.journal.last_seq()}

    def _replay(self, name: str, cid: str, req: OrderRequest) -> OrderRecord | None:
        prior = self.journal.order_by_client_id(name, cid)
        if prior is None:
            return None
        if prior.fingerprint != req.fingerprint():
            raise IdempotencyConflict(f"client_order_id {cid} was used for a different order",
                                      details={"client_order_id": cid})
        if prior.status in (OrderStatus.PENDING_SUBMIT, OrderStatus.INDETERMINATE):
            raise SubmitIndeterminate(f"the first order with client_order_id {cid} has no known outcome yet",
                                      details={"client_order_id": cid})
        if prior.status is OrderStatus.JUNK:
            # The recorded result of this id was a refusal: replay that, do not try again.
            raise BrokerReject(prior.status_msg or "the broker refused this order", state_changed="yes",
                               details={"order": prior.to_wire(), "idempotent_replay": True})
        return prior

    async def decision(self, req: OrderRequest, excluding: str | None = None) -> OrderDecision:
        """The whole decision about `req` as preview_order shows it, without a token or any effect
        (a pending approval's preview; a condition at its trigger, conditions.py); `excluding` as in
        `_validate` (an approval's own pending record, as its approval will see it)."""
        return await self._validate(req, excluding)

    async def recheck(self, req: OrderRequest, acct: AccountConfig, cid: str) -> None:
        """Validation and risk again for the order `cid` a person approved (approvals.py); the first
        refusal is raised. Call under the order lock."""
        await self._decide(req, acct, None, approved=cid)

    async def send_recorded(self, name: str, acct: AccountConfig, req: OrderRequest, cid: str) -> None:
        """Send the order recorded `pending_submit` as `cid`. Call under the order lock."""
        log.info("submit account=%s client_order_id=%s %s %s %d @ %s", mask_account_id(acct.account_id),
                 cid, req.side.value, req.code, req.volume, req.price)
        await self._submit(name, acct, req, cid)

    async def _submit(self, name: str, acct: AccountConfig, req: OrderRequest, cid: str) -> None:
        try:
            with anyio.fail_after(self.cfg.worker.submit_timeout_s):
                crashpoints.reached("broker.send")
                order_id = await self.broker.place_order(acct.account_id, req, cid)
                crashpoints.reached("broker.sent")
        except BrokerReject as exc:
            self._settle(name, cid, OrderStatus.JUNK, exc.message)
            raise
        except QmtError as exc:
            if exc.state_changed == "no":
                self._settle(name, cid, OrderStatus.JUNK, exc.message)
                raise
            self._settle(name, cid, OrderStatus.INDETERMINATE, exc.message)
            raise SubmitIndeterminate(exc.message, details={"client_order_id": cid}) from exc
        except BaseException as exc:
            # Past the record, an unknown failure (a timeout, a crash, a cancelled request) may have
            # reached the broker: never assume it did not. Only reconciliation may resolve it.
            self._settle(name, cid, OrderStatus.INDETERMINATE, type(exc).__name__)
            if isinstance(exc, Exception):
                raise SubmitIndeterminate("the broker did not confirm the order in time",
                                          details={"client_order_id": cid}) from exc
            raise
        rec = assert_record(self.journal.order_by_client_id(name, cid))
        if rec.order_id is None or rec.status is OrderStatus.PENDING_SUBMIT:
            status = OrderStatus.UNREPORTED if rec.status is OrderStatus.PENDING_SUBMIT else rec.status
            try:
                # Not fsync'd: after a power cut, reconciliation finds the order by its remark.
                with self.journal.batch(durable=False):
                    self.journal.put_order(replace(rec.advanced(status), order_id=order_id))
            except StateUnwritable as exc:
                # The broker has the order; our record stays pending until reconciliation can write.
                raise SubmitIndeterminate(
                    f"the broker took the order (order_id {order_id}) but the journal could not record it",
                    state_changed="yes", details={"client_order_id": cid, "order_id": order_id},
                ) from exc

    def _settle(self, name: str, cid: str, status: OrderStatus, msg: str) -> None:
        rec = self.journal.order_by_client_id(name, cid)
        if rec is None or rec.status not in (OrderStatus.PENDING_SUBMIT,):
            return
        new = rec.advanced(status, status_msg=msg)
        try:
            with self.journal.batch():
                self.journal.put_order(new)
                self.journal.append(OrderStatusEvent.of(new), self.clock.now())
        except StateUnwritable:
            # The record stays pending_submit, which says exactly as much: reconciliation settles it.
            log.error("cannot record that %s is %s: the journal is not writable", cid, status.value)
            return
        self.notify()

    async def _wait_terminal(self, name: str, cid: str, seconds: float) -> None:
        """Until the order is final and every fill it reports is journaled as a trade event. Brokers
        push a fill's trade after the order's status (xtquant does, and its pushes may land in
        separate batches): answering on the status alone would end a waiting client's progress
        before its trade arrived."""
        with anyio.move_on_after(seconds):
            while True:
                changed = self._changed
                rec = self.journal.order_by_client_id(name, cid)
                if rec is None or (rec.status in TERMINAL and self._trades_journaled(name, rec)):
                    return
                await changed.wait()

    def _trades_journaled(self, name: str, rec: OrderRecord) -> bool:
        if rec.traded_volume == 0:
            return True
        trades = [e for e in self.journal.events(name, 0, 1000, order_client_id=rec.client_order_id)
                  if e["type"] == "trade"]
        return sum(int(e.get("volume") or 0) for e in trades) >= rec.traded_volume

    # ----- cancel and read orders
    def find_order(self, name: str, order_id: int | None = None, cid: str | None = None) -> OrderRecord:
        """The record of account `name` by the broker's id, else by client_order_id; OrderNotFound."""
        if order_id is not None:
            # The newest record with the id: a counter's ids start over, and the broker holds the newest.
            same_id = self.journal.orders_by_id(name, order_id)
            rec = same_id[-1] if same_id else None
        elif cid is not None:
            rec = self.journal.order_by_client_id(name, cid)
        else:
            raise InvalidArgument("give order_id or client_order_id", details={"argument": "order_id"})
        if rec is None:
            raise OrderNotFound("no such order on this account",
                                details={"order_id": order_id, "client_order_id": cid})
        return rec

    async def cancel_order(self, args: CancelArgs) -> dict[str, Any]:
        """Ask the broker to cancel an open order (cancels.py)."""
        return await self.cancels.cancel_order(args)

    async def get_order(self, args: OrderLookupArgs) -> dict[str, Any]:
        name, _ = self.account(args.account)
        rec = self.find_order(name, args.order_id, args.client_order_id)
        if args.wait_seconds > 0:
            await self._wait_terminal(name, rec.client_order_id, args.wait_seconds)
            rec = self.find_order(name, cid=rec.client_order_id)
        events = self.journal.events(name, 0, 1000, order_client_id=rec.client_order_id)
        return {"order": rec.to_wire(), "events": events, "journal_seq": self.journal.last_seq()}

    async def get_orders(self, args: OrdersArgs) -> dict[str, Any]:
        name, _ = self.account(args.account)
        if args.start is None and args.end is None:
            recs = self.journal.orders(name, since=day_start(self.clock.now()))
        else:   # the journal is the record of earlier days (a broker lists today's only)
            first, last = day_range(cn_date(self.clock.now()), args.start, args.end)
            until = start_of(last + timedelta(days=1))
            recs = [r for r in self.journal.orders(name, since=start_of(first)) if r.created_at < until]
        if args.cancelable_only:
            recs = [r for r in recs if r.status in CANCELABLE]
        return {"orders": [r.to_wire() for r in recs]}

    async def get_order_events(self, args: EventsArgs) -> dict[str, Any]:
        name, _ = self.account(args.account)
        after, limit, wait = args.after_seq, args.limit, args.wait_seconds
        if after > MAX_SEQ:
            # The model bounds after_seq below only; past SQLite's integers it is no seq at all.
            raise InvalidArgument(f"after_seq must be a whole number from 0 to {MAX_SEQ}",
                                  details={"argument": "after_seq"})
        events = self.journal.events(name, after, limit)
        if not events and wait > 0:
            with anyio.move_on_after(wait):
                while not events:
                    changed = self._changed
                    events = self.journal.events(name, after, limit)
                    if not events:
                        await changed.wait()
        next_seq = events[-1]["seq"] if events else max(after, 0)
        return {"events": events, "next_seq": next_seq}

    async def latest_events(self, args: dict[str, Any]) -> dict[str, Any]:
        name, _ = self.account(args.get("account"))
        events = self.journal.latest_events(name, opt_int(args, "limit", 100, 1, 1000))
        return {"events": events, "next_seq": events[-1]["seq"] if events else 0}

    async def note_gap(self, args: dict[str, Any]) -> dict[str, Any]:
        """A reader followed another journal (this one is new to it): record that in every account's
        events, so agents that follow by seq learn to re-read orders and positions."""
        prev = str(args.get("previous_journal_id", ""))[:32]
        seen = opt_int(args, "last_seq", 0, 0, MAX_SEQ)
        msg = ("event history was interrupted: the worker's journal is not the one followed before "
               "(seq restarted); re-read orders, trades and positions")
        for name in self.cfg.accounts:
            self.journal.append(GapEvent(account=name, message=msg, previous_journal_id=prev, previous_last_seq=seen),
                                self.clock.now())
        self.notify()
        return {"recorded": len(self.cfg.accounts)}

    # ----- misc
    async def tick(self) -> None:
        await self.broker.poll()
        await self.history.observe()   # the day roll: yesterday closed, today opened (history.py)
        await self.conditions.watch()   # each new quote against the armed conditions (conditions.py)
        await self.quotes.poll()        # the quotes of the codes servers follow (quotes.py)
        self.journal.tidy()             # the log's checkpoint, after the firings (journal.py)

    def next_change(self) -> anyio.Event:
        return self._changed


def assert_record(rec: OrderRecord | None) -> OrderRecord:
    if rec is None:
        raise QmtError("the order record vanished", code=ErrorCode.INTERNAL)
    return rec
