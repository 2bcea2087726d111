"""The worker's order path and event journal: everything that must hold for every client.

place_order: normalize → validate (rule book) → confirm token (live) → risk → record
`pending_submit` durably → broker call (order_remark = client_order_id) → broker pushes advance the
record through the status table and land in the journal as events.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import anyio

from ..backends.port import (
    BrokerPort,
)
from ..clock import Clock, IdSource
from ..config import AccountConfig, Config, mask_account_id
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
from ..domain.orders import (
    OrderRecord,
    OrderRequest,
    check_client_order_id,
    check_new_client_order_id,
    parse_order_request,
)
from ..domain.risk import RiskContext, evaluate, first_denial
from ..domain.status import CANCELABLE, TERMINAL, OrderStatus
from ..domain.text import clean_text
from ..domain.timeutil import iso, iso_ms
from ..domain.validation import AccountView, MarketState, estimate, first_failure, run_checks
from . import crashpoints
from .args import opt_bool, opt_float, opt_int, opt_str, req_str
from .cancels import Cancels
from .confirm import ConfirmTokens
from .journal import Journal
from .person import PersonProofs, person_needed
from .pushes import PushRecorder, status_data
from .riskbook import RiskBook, day_start

log = logging.getLogger("qmt_mcp.worker")


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
        self.risk = RiskBook(journal, broker, clock)
        self.proofs = PersonProofs(tokens)
        self.started_at = clock.now()
        self._changed = anyio.Event()
        self.quarantined: list[dict[str, str]] = []  # state files moved aside at start (statefiles)
        self.order_lock = anyio.Lock()  # one order decision at a time: risk usage must see pending orders
        self.pushes = PushRecorder(cfg, journal, clock, self.notify)
        broker.set_sink(self.pushes.on_events)
        self.cancels = Cancels(self)

    # ----- accounts
    def account(self, args: dict[str, Any]) -> tuple[str, AccountConfig]:
        name = req_str(args, "account")
        acct = self.cfg.accounts.get(name)
        if acct is None:
            raise UnknownAccount(f"no account named {name!r}", details={"accounts": sorted(self.cfg.accounts)})
        return name, acct

    def notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    # ----- preview and place
    async def _validate(self, req: OrderRequest) -> dict[str, Any]:
        inst = await self.broker.instrument(req.code)
        quote = (await self.broker.quotes([req.code]))[0]
        account_id = self.cfg.accounts[req.account].account_id
        asset = await self.broker.asset(account_id)
        positions = await self.broker.positions(account_id)
        view = AccountView(
            cash=asset.cash,
            can_use_volume={p.code: p.can_use_volume for p in positions},
            volume={p.code: p.volume for p in positions},
        )
        best_ask = quote.asks[0].price if quote.asks else None
        best_bid = quote.bids[0].price if quote.bids else None
        today = self.clock.now().date()
        est = estimate(req, inst, best_ask, best_bid, self.cfg.sim.fee_schedule(), today)
        mkt = MarketState(self.broker.phase(), today, best_bid, best_ask, quote.last if quote.volume else None)
        checks = run_checks(req, inst, view, est, mkt)
        limits = self.cfg.risk_for(req.account)
        state = await self.risk.refresh(req.account, account_id, limits)
        usage = await self.risk.usage(req.account, account_id)
        ctx = RiskContext(
            order=req, order_value=est.amount, limits=limits, usage=usage,
            breaker_tripped=state["tripped"], baseline_total_asset=state["baseline"],
            total_asset=state["total_asset"],
            position_value={p.code: p.market_value for p in positions},
        )
        return {"inst": inst, "est": est, "checks": checks, "decisions": evaluate(ctx), "usage": usage}

    async def preview_order(self, args: dict[str, Any]) -> dict[str, Any]:
        req = parse_order_request(args)
        _, acct = self.account(args)
        v = await self._validate(req)
        would = all(c.ok for c in v["checks"]) and all(d.ok for d in v["decisions"])
        out: dict[str, Any] = {
            "would_accept": would,
            "checks": [c.to_wire() for c in v["checks"]],
            "estimate": v["est"].to_wire(req.side),
            "risk": {"decisions": [d.to_wire() for d in v["decisions"]],
                     "usage": RiskBook.usage_wire(v["usage"])},
            "live": acct.live,
            "order": {**req.fingerprint(), "volume": req.volume, "name": v["inst"].name},
        }
        if acct.live and would:
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

    async def _decide(self, req: OrderRequest, acct: AccountConfig, token: str | None) -> tuple[Any, str | None]:
        """Validation, the confirm token and risk, in that order; the first refusal is raised. Returns
        the decision and the token's id. Call under the order lock: usage must see pending orders."""
        v = await self._validate(req)
        failure = first_failure(v["checks"])
        if failure is not None:
            raise failure
        token_id = self.check_token("place_order", req.fingerprint(), token, acct.live)
        denial = first_denial(v["decisions"])
        if denial is not None:
            raise denial
        if token_id is not None and self.journal.token_used(token_id):
            raise ConfirmError("this confirm token was already used", code=ErrorCode.CONFIRM_USED)
        return v, token_id

    async def check_order(self, args: dict[str, Any]) -> dict[str, Any]:
        """place_order's whole decision without sending anything: whether a person must confirm it,
        and if so the proof their confirmation will carry (person.py). A refusal is raised as it
        would be by place_order, so nobody is asked about an order that would not go."""
        req = parse_order_request(args)
        name, acct = self.account(args)
        cid = check_new_client_order_id(args.get("client_order_id"))
        token = opt_str(args, "confirm_token", 1024)
        async with self.order_lock:
            if cid is not None and self._replay(name, cid, req) is not None:
                return {"person": None}  # the recorded result is answered; nothing new is sent
            v, token_id = await self._decide(req, acct, token)
        if token_id is None or not person_needed(self.cfg, acct, args):
            return {"person": None}
        proof, expires = self.proofs.issue("place_order", req.fingerprint(), token_id, self.clock.now())
        order = {**req.fingerprint(), "volume": req.volume, "name": clean_text(v["inst"].name)}
        return {"person": {"proof": proof, "expires_at": expires, "order": order,
                           "estimate": v["est"].to_wire(req.side)}}

    async def place_order(self, args: dict[str, Any]) -> dict[str, Any]:
        crashpoints.arm()
        req = parse_order_request(args)
        name, acct = self.account(args)
        cid = check_new_client_order_id(args.get("client_order_id")) or self.ids.client_order_id()
        token = opt_str(args, "confirm_token", 1024)
        proof = opt_str(args, "person_proof", 1024)
        wait = opt_float(args, "wait_seconds", 0, 0, 60)
        async with self.order_lock:
            replay = self._replay(name, cid, req)
            if replay is not None:
                return {"order": replay.to_wire(), "idempotent_replay": True}
            v, token_id = await self._decide(req, acct, token)
            if token_id is not None and person_needed(self.cfg, acct, args):
                # Checked here, under the lock and after risk, never trusted from an earlier look.
                self.proofs.verify(proof, "place_order", req.fingerprint(), token_id, self.clock.now())
            if token_id is not None and not self.journal.use_token(token_id, iso(self.clock.now())):
                raise ConfirmError("this confirm token was already used", code=ErrorCode.CONFIRM_USED)
            rec = OrderRecord(
                account=name, client_order_id=cid, code=req.code, name=clean_text(v["inst"].name), side=req.side,
                order_type=req.order_type, market_type=req.market_type, price_type=req.price_type,
                price=req.price or v["est"].price, volume=req.volume, status=OrderStatus.PENDING_SUBMIT,
                created_at=iso_ms(self.clock.now()), live=acct.live, fingerprint=req.fingerprint(),
            )
            if not self.journal.insert_order(rec):
                # Unreachable while the lock serializes orders; kept so a record is never overwritten.
                raise IdempotencyConflict(f"client_order_id {cid} is already recorded",
                                          details={"client_order_id": cid})
            log.info("submit account=%s client_order_id=%s %s %s %d @ %s", mask_account_id(acct.account_id),
                     cid, req.side.value, req.code, req.volume, rec.price)
            await self._submit(name, acct, req, cid)
        if wait > 0:
            await self._wait_terminal(name, cid, wait)
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
                self.journal.append_event(name, iso(self.clock.now()), "order_status", new.order_id, cid,
                                          status_data(new))
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
    def find_order(self, name: str, args: dict[str, Any]) -> OrderRecord:
        order_id = args.get("order_id")
        cid = args.get("client_order_id")
        if order_id is None and cid is None:
            raise InvalidArgument("give order_id or client_order_id", details={"argument": "order_id"})
        if order_id is not None:
            if isinstance(order_id, str) and order_id.isdigit():
                order_id = int(order_id)
            if not isinstance(order_id, int) or isinstance(order_id, bool):
                raise InvalidArgument("order_id must be a whole number", details={"argument": "order_id"})
            # The newest record with the id: a counter's ids start over, and the broker holds the newest.
            same_id = self.journal.orders_by_id(name, order_id)
            rec = same_id[-1] if same_id else None
        else:
            rec = self.journal.order_by_client_id(name, str(check_client_order_id(cid)))
        if rec is None:
            raise OrderNotFound("no such order on this account",
                                details={"order_id": order_id, "client_order_id": cid})
        return rec

    async def cancel_order(self, args: dict[str, Any]) -> dict[str, Any]:
        """Ask the broker to cancel an open order (cancels.py)."""
        return await self.cancels.cancel_order(args)

    async def get_order(self, args: dict[str, Any]) -> dict[str, Any]:
        name, _ = self.account(args)
        wait = opt_float(args, "wait_seconds", 0, 0, 60)
        rec = self.find_order(name, args)
        if wait > 0:
            await self._wait_terminal(name, rec.client_order_id, wait)
            rec = self.find_order(name, {"client_order_id": rec.client_order_id})
        events = self.journal.events(name, 0, 1000, order_client_id=rec.client_order_id)
        return {"order": rec.to_wire(), "events": events, "journal_seq": self.journal.last_seq()}

    async def get_orders(self, args: dict[str, Any]) -> dict[str, Any]:
        name, _ = self.account(args)
        only = opt_bool(args, "cancelable_only")
        recs = self.journal.orders(name, since=day_start(self.clock.now()))
        if only:
            recs = [r for r in recs if r.status in CANCELABLE]
        return {"orders": [r.to_wire() for r in recs]}

    async def get_order_events(self, args: dict[str, Any]) -> dict[str, Any]:
        name, _ = self.account(args)
        after = opt_int(args, "after_seq", 0, 0, 2**62)
        limit = opt_int(args, "limit", 100, 1, 1000)
        wait = opt_float(args, "wait_seconds", 0, 0, 60)
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
        name, _ = self.account(args)
        events = self.journal.latest_events(name, opt_int(args, "limit", 100, 1, 1000))
        return {"events": events, "next_seq": events[-1]["seq"] if events else 0}

    async def note_gap(self, args: dict[str, Any]) -> dict[str, Any]:
        """A reader followed another journal (this one is new to it): record that in every account's
        events, so agents that follow by seq learn to re-read orders and positions."""
        prev = str(args.get("previous_journal_id", ""))[:32]
        seen = opt_int(args, "last_seq", 0, 0, 2**62)
        msg = ("event history was interrupted: the worker's journal is not the one followed before "
               "(seq restarted); re-read orders, trades and positions")
        for name in self.cfg.accounts:
            self.journal.append_event(name, iso(self.clock.now()), "gap", None, None,
                                      {"message": msg, "previous_journal_id": prev, "previous_last_seq": seen})
        self.notify()
        return {"recorded": len(self.cfg.accounts)}

    # ----- misc
    async def tick(self) -> None:
        await self.broker.poll()

    def next_change(self) -> anyio.Event:
        return self._changed


def assert_record(rec: OrderRecord | None) -> OrderRecord:
    if rec is None:
        raise QmtError("the order record vanished", code=ErrorCode.INTERNAL)
    return rec
