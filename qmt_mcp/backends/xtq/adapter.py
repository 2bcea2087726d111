"""The broker port over xtquant's XtQuantTrader (miniQMT, or the simulator beneath xtquant's own layer).

Threading, from what xttrader.py does:
- one broker thread owns the XtQuantTrader and makes every xtquant call;
- only xtquant's asynchronous calls are used (`order_stock_async`, `cancel_order_stock_async`,
  `query_*_async`, and `common_op_async_with_seq` for `subscribe`): a sync call waits on a Future
  without a timeout, so an unanswered request would wedge the thread and every API behind it;
- xtquant's callbacks (its executor thread) only resolve a pending call or hand a push to the worker's
  event loop; they never call back into xtquant (a sync order from a callback deadlocks xttrader);
- every call has a deadline: a read that misses it is `TIMEOUT`, an order or cancel is
  `SUBMIT_INDETERMINATE` and is never sent again; a per-API breaker opens after repeated timeouts
  (`CIRCUIT_OPEN`) so one wedged API does not cost a deadline on every call.
`client_order_id` travels as xtquant's `order_remark`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import anyio

from ...clock import Clock
from ...config import Config
from ...domain.errors import BrokerReject, ErrorCode, QmtError, SubmitIndeterminate, Unavailable
from ...domain.events import AccountStatus
from ...domain.instruments import Instrument
from ...domain.market import Bar, Quote
from ...domain.orders import OrderRequest
from ...domain.sessions import Phase
from ...domain.timeutil import iso
from ..port import (
    AccountStatusChanged,
    Asset,
    AssetChanged,
    BrokerEvent,
    BrokerOrder,
    BrokerTrade,
    CancelFailed,
    Listed,
    OrderFailed,
    OrderUpdated,
    Position,
    PositionChanged,
    Sink,
    TradeFilled,
    TraderDisconnected,
)
from . import translate
from .breaker import Breakers
from .constants import ACCOUNT_STATUS, ACCOUNT_TYPES, FAILED, OK, ORDER_TYPES, SECURITY_ACCOUNT, xt_price_type
from .loader import load_xttrader
from .xtdata_source import XtDataSource

log = logging.getLogger("qmt_mcp.xtquant")
T = TypeVar("T")
# xttrader's XtQuantTrader restores an event loop in __del__ that it only saved on the main thread;
# ours live on the broker thread, so they are kept until the process ends instead of being collected.
_RETIRED: list[Any] = []


@dataclass
class TraderState:
    state: str = "never_connected"          # never_connected | alive | lost
    last_connect_at: datetime | None = None
    last_disconnect_at: datetime | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"state": self.state,
                "last_connect_at": None if self.last_connect_at is None else iso(self.last_connect_at),
                "last_disconnect_at": None if self.last_disconnect_at is None else iso(self.last_disconnect_at)}


class XtQuantBroker:
    name = "xtquant"

    def __init__(
        self, cfg: Config, clock: Clock, data: XtDataSource, phase: Callable[[], Phase], qmt_path: str,
        native: Any = None, clock_name: str = "exchange",
    ) -> None:
        """`data` reads market data through xtdata; `native` is the simulated native layer (None on
        miniQMT); `phase` tells the session phase now."""
        self.cfg = cfg
        self.clock = clock
        self.data = data
        self._phase = phase
        self.clock_name = clock_name
        self._data_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="xtq-data")
        self.native = native
        self.qmt_path = qmt_path
        self.accounts = {a.account_id: ACCOUNT_TYPES[a.account_type] for a in cfg.accounts.values()}
        self.breakers = Breakers(cfg.xtquant.breaker_failures, cfg.xtquant.breaker_cooldown_s)
        # xttrader has no call that tells an account's commission schedule: previews use the configured
        # one ([sim] commission_rate, commission_min), set to match what the broker charges.
        self.fees = cfg.sim.fee_schedule()
        self.state = TraderState()
        self.subscribed: set[str] = set()
        self._sink: Sink | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xtq-broker")
        self._trader: Any = None
        self._xttrader: Any = None
        self._sessions = itertools.count(cfg.xtquant.session_id or int(clock.now().timestamp()) % 1_000_000)
        self._pending: dict[int, Future[Any]] = {}     # seq -> the call waiting for its response
        self._early: dict[int, Any] = {}               # responses that beat their seq's registration
        self._lock = threading.Lock()
        self._pushes: list[BrokerEvent] = []           # queued by xtquant's thread for the worker's loop
        self._retry_at: datetime | None = None
        self._backoff_s = 1.0
        self._reconnected = False
        self.state_changed = anyio.Event()   # set (and replaced) whenever the trader's state changes

    # ----- lifecycle
    def set_sink(self, sink: Sink) -> None:
        self._sink = sink

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._connect()

    async def close(self) -> None:
        trader = self._trader
        if trader is not None:
            await self._run(lambda: trader.stop(), 5)
            _RETIRED.append(trader)
        self._thread.shutdown(wait=False)
        self._data_pool.shutdown(wait=False)

    def take_reconnected(self) -> bool:
        done, self._reconnected = self._reconnected, False
        return done

    async def poll(self) -> None:
        if self.native is not None:
            self.native.poll()
        self.data.pump()
        if self.state.state != "alive" and self._retry_at is not None and self.clock.now() >= self._retry_at:
            await self._connect()

    def phase(self) -> Phase:
        return self._phase()

    # ----- pushed quotes (port.QuoteFeed): xtdata's subscribe_quote
    def watch_quotes(self, codes: frozenset[str], sink: Callable[[Quote], None]) -> None:
        self.data.watch(codes, sink)

    def check_quotes(self) -> None:
        self.data.check_silent()

    def health(self) -> dict[str, Any]:
        now = self.clock.now()
        stale = sorted(self.data.stale)
        return {"backend": "xtquant", "xtquant_loaded": self._xttrader is not None, "fresh": not stale,
                "stale_codes": stale, "clock": self.clock_name, "trader": self.state.to_wire(),
                "open_breakers": self.breakers.open_apis(now)}

    async def _connect(self) -> None:
        """A new XtQuantTrader with a fresh session id (xtquant never reconnects an instance)."""
        was_lost = self.state.state == "lost"
        session = next(self._sessions)

        def build() -> tuple[Any, int]:
            xttrader = self._xttrader or load_xttrader(self.native is not None)
            self._xttrader = xttrader
            trader = xttrader.XtQuantTrader(self.qmt_path, session, _Callback(self, xttrader))
            trader.set_relaxed_response_order_enabled(True)
            trader.start()
            return trader, int(trader.connect())

        try:
            trader, rc = await self._run(build, self.cfg.worker.call_timeout_s)
        except QmtError as exc:
            rc, trader = FAILED, None
            log.warning("xtquant connect did not answer: %s", exc.message)
        old, self._trader = self._trader, trader if rc == OK else None
        if old is not None:
            _RETIRED.append(old)
        now = self.clock.now()
        if rc != OK:
            if trader is not None:
                _RETIRED.append(trader)
            log.warning("xtquant connect to %s failed (%s); retrying in %.0f s", self.qmt_path, rc, self._backoff_s)
            self._retry_at = now + timedelta(seconds=self._backoff_s)
            self._backoff_s = min(self._backoff_s * 2, 30.0)
            return
        self.subscribed.clear()
        self.state.state, self.state.last_connect_at = "alive", now
        self._retry_at, self._backoff_s = None, 1.0
        if was_lost:
            self._reconnected = True   # the worker reconciles what happened while we were away
        self._signal()
        log.info("xtquant connected (session %d)", session)

    def on_disconnected(self) -> None:
        """From xtquant's thread: mark the trader lost; the next poll reconnects, with backoff."""
        def mark() -> None:
            now, was_alive = self.clock.now(), self.state.state == "alive"
            self.state.state, self.state.last_disconnect_at = "lost", now
            self._signal()
            self._retry_at = self.clock.now()
            for fut in list(self._pending.values()):
                if not fut.done():
                    fut.set_exception(_Lost())
            self._pending.clear()
            if was_alive:   # one event per drop, however many times xtquant reports it
                self.push(TraderDisconnected(tuple(self.accounts), now, "the connection to miniQMT dropped "
                                             "(xtquant on_disconnected); reconnecting"))
        if self._loop is not None:
            self._loop.call_soon_threadsafe(mark)

    def _signal(self) -> None:
        self.state_changed.set()
        self.state_changed = anyio.Event()

    # ----- pushes: from xtquant's thread to the worker's loop
    def push(self, ev: BrokerEvent) -> None:
        """From xtquant's thread: queue the push. The loop takes everything queued by the time it runs,
        so a burst (order, trade, position, asset) is journaled in one transaction, still in order."""
        if self._loop is None or self._sink is None:
            return
        with self._lock:
            self._pushes.append(ev)
            first = len(self._pushes) == 1
        if first:
            self._loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        with self._lock:
            events, self._pushes = self._pushes, []
        if events and self._sink is not None:
            self._sink(events)

    def resolve(self, seq: int, value: Any) -> None:
        with self._lock:
            fut = self._pending.pop(seq, None)
            if fut is None:
                self._early[seq] = value
                return
        if not fut.done():
            fut.set_result(value)

    # ----- calls
    async def _run(self, fn: Callable[[], Any], deadline: float) -> Any:
        """Run `fn` on the broker thread, waiting at most `deadline` seconds."""
        fut = self._thread.submit(fn)
        try:
            with anyio.fail_after(deadline):
                return await asyncio.wrap_future(fut)
        except TimeoutError:
            raise Unavailable("the xtquant broker thread did not answer in time", code=ErrorCode.TIMEOUT) from None

    def _trader_or_raise(self) -> Any:
        if self._trader is None or self.state.state != "alive":
            raise Unavailable("miniQMT is not connected; the worker is reconnecting",
                              code=ErrorCode.TRADER_DISCONNECTED)
        return self._trader

    async def _request(self, api: str, send: Callable[[Any, Callable[[Any], None]], int | None],
                       deadline: float, submit: bool = False) -> Any:
        """Send an asynchronous xtquant request and wait for its answer.

        `send(trader, on_answer)` issues the request on the broker thread and returns the request's
        seq when the answer is routed by seq (orders, cancels), or None when xtquant calls `on_answer`
        itself (queries)."""
        answer: Future[Any] = Future()
        sent: list[int] = []

        def on_answer(value: Any) -> None:
            if not answer.done():
                answer.set_result(value)

        def issue(trader: Any) -> None:
            seq = send(trader, on_answer)
            if seq is None:
                return
            sent.append(seq)
            with self._lock:
                if seq in self._early:
                    on_answer(self._early.pop(seq))
                else:
                    self._pending[seq] = answer

        async def exchange() -> Any:
            trader = self._trader_or_raise()   # checked after the breaker, which answers first
            await asyncio.wrap_future(self._thread.submit(issue, trader))
            return await asyncio.wrap_future(answer)

        def missed() -> QmtError:
            with self._lock:   # a late answer, if one ever comes, has no one to wake
                for seq in sent:
                    self._pending.pop(seq, None)
            if submit:
                return SubmitIndeterminate(f"xtquant did not answer {api} in time; its outcome is unknown until "
                                           "reconciliation", details={"api": api})
            return Unavailable(f"xtquant did not answer {api} in time", code=ErrorCode.TIMEOUT, details={"api": api})

        try:
            return await self._guarded(api, deadline, exchange, missed)
        except _Lost:
            # Not the API's fault: the breaker neither opens nor closes on a dropped connection.
            if submit:
                raise SubmitIndeterminate(f"the connection to miniQMT dropped during {api}; its outcome is "
                                          "unknown until reconciliation", details={"api": api}) from None
            raise Unavailable("the connection to miniQMT dropped", code=ErrorCode.TRADER_DISCONNECTED) from None

    async def _guarded(self, api: str, deadline: float, call: Callable[[], Awaitable[T]],
                       missed: Callable[[], QmtError]) -> T:
        """`call()` within `deadline` seconds, under `api`'s circuit breaker: refused at once while the
        breaker is open (CIRCUIT_OPEN); a missed deadline counts against the breaker and raises what
        `missed()` says the miss means (it also forgets the call); an answer in time closes it. Every
        broker call with a deadline goes through here, trading (`_request`) and market data (`_read`)."""
        breaker = self.breakers.get(api)
        if not breaker.allow(self.clock.now()):
            raise Unavailable(f"{api} is failing repeatedly; calls are refused for a while",
                              code=ErrorCode.CIRCUIT_OPEN, details={"api": api})
        try:
            with anyio.fail_after(deadline):
                value = await call()
        except TimeoutError:
            breaker.failure(self.clock.now())
            raise missed() from None
        except BaseException:
            # Neither an answer nor a missed deadline (a dropped connection, a refusal): it says
            # nothing about the API, but a half-open breaker must let the next call be the trial,
            # or it would refuse the API for good.
            breaker.undecided()
            raise
        breaker.success()
        return value

    async def _account(self, account_id: str) -> Any:
        """The xtquant account object, subscribed on first use (lazy login per account)."""
        if account_id not in self.accounts:
            raise BrokerReject(f"account {account_id[-4:]} is not configured", code=ErrorCode.UNKNOWN_ACCOUNT)
        xttype = _xttype()
        acc = xttype.StockAccount(account_id, "STOCK" if self.accounts[account_id] == SECURITY_ACCOUNT else "CREDIT")
        if account_id not in self.subscribed:
            def send(trader: Any, on_answer: Callable[[Any], None]) -> int | None:
                req = self._xttrader._XTQC_.SubscribeReq()
                req.m_nAccountType, req.m_strAccountID = acc.account_type, acc.account_id
                seq = trader.async_client.nextSeq()
                trader.common_op_async_with_seq(seq, (trader.async_client.subscribeWithSeq, seq, req), on_answer)
                return None
            rc = await self._request("subscribe", send, self.cfg.worker.call_timeout_s)
            if rc != OK:
                raise Unavailable(f"miniQMT refused to subscribe account {account_id[-4:]} ({rc})",
                                  code=ErrorCode.TRADER_DISCONNECTED)
            self.subscribed.add(account_id)
        return acc

    # ----- trading
    async def place_order(self, account_id: str, req: OrderRequest, remark: str) -> int:
        acc = await self._account(account_id)

        def send(trader: Any, _: Callable[[Any], None]) -> int | None:
            seq = trader.order_stock_async(acc, req.code, ORDER_TYPES[req.side], req.volume,
                                           xt_price_type(req.order_type, req.market_type, req.code),
                                           float(req.price or 0), "qmt-mcp", remark)
            return int(seq)

        deadline = self.cfg.worker.submit_timeout_s * 0.9
        resp = await self._request("order_stock", send, deadline, submit=True)
        order_id = int(resp.order_id)
        if order_id < 0:
            # -1: refused before it reached the counter (xtquant's own answer), so nothing was placed.
            raise BrokerReject(translate.clean(resp.error_msg) or "miniQMT refused the order (-1)")
        return order_id

    async def cancel_order(self, account_id: str, order_id: int) -> None:
        acc = await self._account(account_id)

        def send(trader: Any, _: Callable[[Any], None]) -> int | None:
            return int(trader.cancel_order_stock_async(acc, order_id))

        resp = await self._request("cancel_order_stock", send, self.cfg.worker.call_timeout_s * 0.9, submit=True)
        if int(resp.cancel_result) != OK:
            msg = translate.clean(getattr(resp, "error_msg", "")) or "miniQMT refused the cancel"
            raise BrokerReject(msg, code=ErrorCode.NOT_CANCELABLE)

    async def _query(self, api: str, method: str, account_id: str) -> Any:
        acc = await self._account(account_id)

        def send(trader: Any, on_answer: Callable[[Any], None]) -> int | None:
            getattr(trader, method)(acc, on_answer)
            return None

        return await self._request(api, send, self.cfg.worker.call_timeout_s)

    async def asset(self, account_id: str) -> Asset:
        a = await self._query("query_stock_asset", "query_stock_asset_async", account_id)
        if a is None:
            raise Unavailable("miniQMT returned no asset for this account", code=ErrorCode.TIMEOUT)
        return translate.asset(a)

    async def positions(self, account_id: str) -> list[Position]:
        rows = await self._query("query_stock_positions", "query_stock_positions_async", account_id)
        return [translate.position(p) for p in rows or [] if int(p.volume) > 0]

    async def orders(self, account_id: str) -> list[BrokerOrder]:
        rows = await self._query("query_stock_orders", "query_stock_orders_async", account_id)
        return [translate.order(o) for o in rows or []]

    async def trades(self, account_id: str) -> list[BrokerTrade]:
        rows = await self._query("query_stock_trades", "query_stock_trades_async", account_id)
        return [translate.trade(t) for t in rows or []]

    # ----- market data through xtdata, each API with its deadline and breaker
    async def _read(self, api: str, fn: Callable[[], Any]) -> Any:
        async def call() -> Any:
            return await asyncio.wrap_future(self._data_pool.submit(fn))

        def missed() -> QmtError:
            return Unavailable(f"xtdata did not answer {api} in time", code=ErrorCode.TIMEOUT, details={"api": api})

        return await self._guarded(api, self.cfg.worker.call_timeout_s, call, missed)

    async def instrument(self, code: str) -> Instrument:
        inst: Instrument = await self._read("get_instrument_detail", lambda: self.data.instrument(code))
        return inst

    async def quotes(self, codes: list[str]) -> list[Quote]:
        quotes: list[Quote] = await self._read("get_full_tick", lambda: self.data.quotes(codes))
        return quotes

    async def bars(self, code: str, period: str, start: datetime, end: datetime, count: int) -> list[Bar]:
        bars: list[Bar] = await self._read("get_market_data_ex",
                                           lambda: self.data.bars(code, period, start, end, count))
        return bars

    async def ticks(self, code: str, start: datetime, end: datetime, limit: int) -> list[Quote]:
        ticks: list[Quote] = await self._read("get_market_data_ex", lambda: self.data.ticks(code, start, end, limit))
        return ticks

    async def listings(self) -> list[Listed]:
        listed: list[Listed] = await self._read("get_stock_list_in_sector", self.data.listings)
        return listed

    async def sectors(self) -> list[str]:
        sectors: list[str] = await self._read("get_sector_list", self.data.sectors)
        return sectors


class _Lost(Exception):
    """The connection dropped while a call was waiting."""


def _xttype() -> Any:
    from xtquant import xttype
    return xttype


class _Callback:
    """xtquant's callback object: it only resolves pending calls and forwards pushes."""

    def __init__(self, broker: XtQuantBroker, xttrader: Any) -> None:
        self.broker = broker

    def on_connected(self) -> None:
        return None

    def on_disconnected(self) -> None:
        self.broker.on_disconnected()

    def on_account_status(self, status: Any) -> None:
        word = ACCOUNT_STATUS.get(status.status, AccountStatus.UNKNOWN)
        log.info("account %s status %s (%s)", str(status.account_id)[-4:], status.status, word.value)
        self.broker.push(AccountStatusChanged(str(status.account_id), word))

    def on_stock_order(self, order: Any) -> None:
        self.broker.push(OrderUpdated(translate.order(order)))

    def on_stock_trade(self, trade: Any) -> None:
        self.broker.push(TradeFilled(translate.trade(trade)))

    def on_stock_position(self, position: Any) -> None:
        self.broker.push(PositionChanged(str(position.account_id), str(position.stock_code)))

    def on_stock_asset(self, asset: Any) -> None:
        self.broker.push(AssetChanged(str(asset.account_id)))

    def on_order_error(self, e: Any) -> None:
        self.broker.push(OrderFailed(str(e.account_id), int(e.order_id), translate.remark(e.order_remark),
                                     int(e.error_id or FAILED), translate.clean(e.error_msg)))

    def on_cancel_error(self, e: Any) -> None:
        self.broker.push(CancelFailed(str(e.account_id), int(e.order_id), int(e.error_id or FAILED),
                                      translate.clean(e.error_msg)))

    def on_order_stock_async_response(self, resp: Any) -> None:
        self.broker.resolve(int(resp.seq), resp)

    def on_cancel_order_stock_async_response(self, resp: Any) -> None:
        self.broker.resolve(int(resp.seq), resp)

    def __getattr__(self, attr: str) -> Callable[..., None]:
        # Callbacks this gateway does not use (credit, SMT, bank, algo) are accepted and ignored.
        if attr.startswith("on_"):
            return lambda *args: None
        raise AttributeError(attr)

