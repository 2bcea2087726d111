"""A stand-in for xtquant's native `xtpythonclient` module, backed by the simulated counter.

xttrader.py (from the real wheel) imports `xtquant.xtpythonclient`, a Windows-only .pyd. Putting this
module in its place lets the unmodified xttrader run over the simulator on any OS, so the production
adapter path is rehearsed and tested for real. What it provides is what xttrader calls: the request
structs, `XtQuantAsyncClient` with its `bindOn*` binders and `*WithSeq` requests, and callbacks from
one dispatcher thread in FIFO order (as the native layer delivers them). Faults can be scripted per
request to rehearse a bad day: hang, drop, delay, refuse with -1, accept then report an error, or
disconnect.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from ...domain.codes import exchange_of
from ...domain.errors import BrokerReject, QmtError
from ...domain.orders import OrderRequest, OrderType, Side
from ...domain.status import OrderStatus
from ..port import (
    AssetChanged,
    BrokerEvent,
    BrokerOrder,
    BrokerTrade,
    CancelFailed,
    OrderFailed,
    OrderUpdated,
    PositionChanged,
    TradeFilled,
)
from ..sim.broker import SimBroker
from ..sim.paper import ORDER_REFUSED
from .constants import (
    ACCOUNT_STATUS_OK,
    DIRECTION_FLAG_LONG,
    FAILED,
    FIX_PRICE,
    MARKETS,
    OFFSET_FLAG_CLOSE,
    OFFSET_FLAG_OPEN,
    OK,
    ORDER_JUNK,
    ORDER_TYPES,
    SECURITY_ACCOUNT,
    SH_MARKET,
    STATUS_XT,
    STOCK_BUY,
    market_type_of,
    xt_price_type,
)

REQUEST_STRUCTS = (
    "SubscribeReq", "UnsubscribeReq", "OrderStockReq", "CancelOrderStockReq", "QueryAccountInfosReq",
    "QueryAccountStatusReq", "QueryStockAssetReq", "QueryStockOrdersReq", "QueryStockTradesReq",
    "QueryStockPositionsReq", "QueryCreditDetailReq", "QueryStkCompactsReq", "QueryCreditSubjectsReq",
    "QueryCreditSloCodeReq", "QueryCreditAssureReq", "QueryNewPurchaseLimitReq", "QueryIPODataReq",
    "TransferParam", "QueryComFundReq", "QueryComPositionReq", "SmtQueryQuoterReq", "SmtNegotiateOrderReq",
    "SmtAppointmentOrderReq", "SmtAppointmentCancelReq", "SmtQueryOrderReq", "SmtQueryCompactReq",
    "SmtCompactRenewalReq", "SmtCompactReturnReq", "QueryPositionStatisticsReq", "BankTransferReq",
    "QueryBankInfoReq", "QueryBankAmountReq", "QueryBankTransferStreamReq", "QuerySecuAccountReq",
    "CtpInternalTransferReq", "OperateSmartAlgoTaskReq",
)

log = logging.getLogger(__name__)


class _Struct:
    """A request struct: xttrader only sets attributes on it."""


def _structs() -> dict[str, type]:
    return {name: type(name, (_Struct,), {}) for name in REQUEST_STRUCTS}


@dataclass
class Faults:
    """Scripted misbehaviour, per request name (`orderStock`, `queryStockAsset`, ...), one call each
    unless `sticky`: `hang` (never answer), `drop` (answer lost), `delay:<s>`, `reject` (order id -1),
    `error_after_accept` (an order id, then an order-error push)."""

    modes: dict[str, list[str]] = field(default_factory=dict)
    sticky: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, request: str, mode: str, sticky: bool = False) -> None:
        with self.lock:
            if sticky:
                self.sticky[request] = mode
            else:
                self.modes.setdefault(request, []).append(mode)

    def clear(self, request: str | None = None) -> None:
        with self.lock:
            if request is None:
                self.modes.clear()
                self.sticky.clear()
            else:
                self.modes.pop(request, None)
                self.sticky.pop(request, None)

    def take(self, request: str) -> str | None:
        with self.lock:
            queued = self.modes.get(request)
            if queued:
                return queued.pop(0)
            return self.sticky.get(request)


class SimNative:
    """The simulated counter behind every `XtQuantAsyncClient` the stand-in module creates."""

    def __init__(self, broker: SimBroker) -> None:
        self.broker = broker
        self.faults = Faults()
        self.clients: list[XtQuantAsyncClientBase] = []
        self.connected_accounts: set[str] = set()
        self._order_seq: dict[int, int] = {}   # order id -> seq of the request that placed it
        broker.set_sink(self._on_event)

    # The counter's events become native pushes to every connected client, in the counter's order.
    def _on_event(self, events: Sequence[BrokerEvent]) -> None:
        for ev in events:
            for client in list(self.clients):
                client.push_event(ev, self)

    def poll(self) -> None:
        self.broker.counter.poll()

    def disconnect_all(self) -> None:
        """The connection to miniQMT drops: every client hears OnDisconnected, once."""
        for client in list(self.clients):
            client.drop_connection()

    def report_account_status(self, account_id: str, status: int) -> None:
        """The counter reports an account's state (an xtconstant ACCOUNT_STATUS_* number, e.g. 6 after
        the close): every connected client hears OnUpdateAccountStatus, as from miniQMT."""
        push = SimpleNamespace(m_strAccountID=account_id, m_nAccountType=SECURITY_ACCOUNT, m_nStatus=status)
        for client in list(self.clients):
            client._emit("OnUpdateAccountStatusCallback", push)

    def register(self) -> str:
        """The `qmt_path` under which xttrader reaches this simulator (xttrader is imported once per
        process, so one stand-in module serves every simulator by path)."""
        path = f"sim://{id(self)}"
        _REGISTRY[path.encode("gb18030")] = self
        return path

    def unregister(self) -> None:
        for key in [k for k, v in _REGISTRY.items() if v is self]:
            del _REGISTRY[key]


class XtQuantAsyncClientBase:
    _seqs = itertools.count(1)

    def __init__(self, native: SimNative, path: bytes, name: str, session: int) -> None:
        self.native = native
        self.path, self.name, self.session = path, name, session
        self.binds: dict[str, Callable[..., Any]] = {}
        self.timeout_ms = 0
        self.connected = False
        self._queue: queue.Queue[tuple[str, tuple[Any, ...]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    # ----- lifecycle
    def init(self) -> None:
        return None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._dispatch, name=f"xtq-native-{self.session}", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self.connected = False
        if self in self.native.clients:
            self.native.clients.remove(self)
        self._queue.put(None)

    def connect(self) -> int:
        mode = self.native.faults.take("connect")
        if mode == "refuse":
            return FAILED
        self.connected = True
        self.native.clients.append(self)
        return OK

    def setTimeout(self, ms: int) -> None:
        self.timeout_ms = ms

    def nextSeq(self) -> int:
        return next(self._seqs)

    def drop_connection(self) -> None:
        if self.connected:
            self.connected = False
            if self in self.native.clients:
                self.native.clients.remove(self)
            self._emit("OnDisconnectedCallback")

    # ----- binders and requests by name
    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("bindOn"):
            return lambda cb, _name=attr[4:]: self.binds.__setitem__(_name, cb)
        if attr.endswith("WithSeq"):
            return lambda seq, *args, _name=attr: self._unsupported(_name, seq)
        raise AttributeError(attr)

    def _emit(self, callback: str, *args: Any) -> None:
        self._queue.put((callback, args))

    def _dispatch(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            name, args = item
            cb = self.binds.get(name)
            if cb is not None:
                try:
                    cb(*args)
                except Exception:
                    # A callback's failure must not stop the native thread (nor does it in miniQMT).
                    log.exception("xtquant callback %s failed", name)

    def _answer(self, request: str, seq: int, callback: str, payload: Any) -> None:
        """Send a response unless a fault says otherwise."""
        mode = self.native.faults.take(request)
        if mode in ("hang", "drop"):
            return
        if mode is not None and mode.startswith("delay:"):
            delay = float(mode.split(":", 1)[1])
            threading.Timer(delay, self._emit, (callback, seq, payload)).start()
            return
        self._emit(callback, seq, payload)

    def _unsupported(self, name: str, seq: int) -> None:
        # Credit, SMT, bank and algo requests are out of scope: answer empty so nothing hangs. xttrader
        # binds one common response handler (keyed by seq) to every query binder, so any of them will do.
        self._emit("OnQueryAccountInfosCallback", seq, [])

    # ----- the stock path
    def subscribeWithSeq(self, seq: int, req: Any) -> None:
        ok = self.connected and req.m_strAccountID in self.native.broker.counter.cash
        if ok:
            self.native.connected_accounts.add(req.m_strAccountID)
        self._answer("subscribe", seq, "OnSubscribeRespCallback", OK if ok else FAILED)

    def unsubscribeWithSeq(self, seq: int, req: Any) -> None:
        self.native.connected_accounts.discard(req.m_strAccountID)
        self._answer("unsubscribe", seq, "OnUnsubscribeRespCallback", OK)

    def orderStockWithSeq(self, seq: int, req: Any) -> None:
        mode = self.native.faults.take("orderStock")
        if mode in ("hang", "drop"):
            if mode == "drop":
                self._place(seq, req)   # the counter takes it; the answer is lost on the way back
            return
        if mode == "reject":
            self._emit("OnOrderStockRespCallback", seq, _order_resp(req, FAILED, "委托失败 refused by fault script"))
            return
        if mode == "error_after_accept":
            self._accept_then_refuse(seq, req)
            return
        order_id, error = self._place(seq, req)
        delay = float(mode.split(":", 1)[1]) if mode and mode.startswith("delay:") else 0.0
        resp = _order_resp(req, order_id, error)
        if delay:
            threading.Timer(delay, self._emit, ("OnOrderStockRespCallback", seq, resp)).start()
        else:
            self._emit("OnOrderStockRespCallback", seq, resp)

    def _accept_then_refuse(self, seq: int, req: Any) -> None:
        """The counter gives an order id, then refuses the order: an order push with status junk and an
        order-error push (the order error waits in xttrader until the response is handled)."""
        counter = self.native.broker.counter
        with counter._lock:
            order_id = counter.next_order_id
            counter.next_order_id += 1
        msg = "柜台拒绝 rejected after acceptance (fault script)"
        self._emit("OnOrderStockRespCallback", seq, _order_resp(req, order_id, ""))
        self._emit("OnStockOrderCallback", SimpleNamespace(
            account_type=SECURITY_ACCOUNT, account_id=req.m_strAccountID, stock_code=req.m_strStockCode,
            order_id=order_id, order_sysid="", order_time=int(self.native.broker.clock.now().timestamp()),
            order_type=req.m_nOrderType, order_volume=req.m_nOrderVolume, price_type=req.m_nPriceType,
            price=req.m_dPrice, traded_volume=0, traded_price=0.0, order_status=ORDER_JUNK, status_msg=msg,
            strategy_name=req.m_strStrategyName, order_remark=req.m_strOrderRemark, direction=DIRECTION_FLAG_LONG,
            offset_flag=OFFSET_FLAG_OPEN, secu_account="", instrument_name=""))
        self._emit("OnOrderErrorCallback", SimpleNamespace(
            account_type=SECURITY_ACCOUNT, account_id=req.m_strAccountID, order_id=order_id, error_id=ORDER_REFUSED,
            error_msg=msg, strategy_name=req.m_strStrategyName, order_remark=req.m_strOrderRemark, seq=seq))

    def _place(self, seq: int, req: Any) -> tuple[int, str]:
        counter = self.native.broker.counter
        try:
            order = _order_request(req)
            inst = self.native.broker.market.instrument(order.code, self.native.broker.session_day())
            with counter._lock:   # the order id is known before the pushes, as on a real counter
                self.native._order_seq[counter.next_order_id] = seq
                order_id = counter.place(req.m_strAccountID, order, inst, req.m_strOrderRemark)
        except QmtError as exc:
            return FAILED, exc.message
        status = counter.orders[order_id].status
        return order_id, counter.orders[order_id].status_msg if status is OrderStatus.JUNK else ""

    def cancelOrderStockWithSeq(self, seq: int, req: Any) -> None:
        mode = self.native.faults.take("cancelOrderStock")
        if mode in ("hang", "drop"):
            return
        order_id = int(req.m_nOrderID)
        try:
            self.native.broker.counter.cancel(req.m_strAccountID, order_id)
            result, msg = OK, ""
        except QmtError as exc:
            result, msg = FAILED, exc.message
        self._emit("OnCancelOrderStockRespCallback", seq, SimpleNamespace(
            m_strAccountID=req.m_strAccountID, m_nCancelResult=result, m_nOrderID=order_id,
            m_strOrderSysID=str(order_id), m_strErrorMsg=msg))

    def queryStockAssetWithSeq(self, seq: int, req: Any) -> None:
        counter = self.native.broker.counter
        a = counter.asset(req.m_strAccountID)
        obj = SimpleNamespace(account_type=SECURITY_ACCOUNT, account_id=req.m_strAccountID, cash=float(a.cash),
                              frozen_cash=float(a.frozen_cash), market_value=float(a.market_value),
                              total_asset=float(a.total_asset), fetch_balance=float(a.cash))
        self._answer("queryStockAsset", seq, "OnQueryStockAssetCallback", [obj])

    def queryStockOrdersWithSeq(self, seq: int, req: Any) -> None:
        orders = self.native.broker.counter.order_list(req.m_strAccountID)
        wanted = getattr(req, "m_nOrderID", None)
        if wanted is not None:
            orders = [o for o in orders if o.order_id == wanted]
        elif getattr(req, "m_bCanCancel", False):
            orders = [o for o in orders if o.status.value in ("unreported", "reported", "part_succ")]
        self._answer("queryStockOrders", seq, "OnQueryStockOrdersCallback", [xt_order(o) for o in orders])

    def queryStockTradesWithSeq(self, seq: int, req: Any) -> None:
        trades = self.native.broker.todays_trades(req.m_strAccountID)
        self._answer("queryStockTrades", seq, "OnQueryStockTradesCallback", [xt_trade(t) for t in trades])

    def queryStockPositionsWithSeq(self, seq: int, req: Any) -> None:
        positions = self.native.broker.counter.position_list(req.m_strAccountID)
        code = getattr(req, "m_strStockCode", None)
        out = [xt_position(req.m_strAccountID, p) for p in positions if code is None or p.code == code]
        self._answer("queryStockPositions", seq, "OnQueryStockPositionsCallback", out)

    def queryAccountInfosWithSeq(self, seq: int, req: Any) -> None:
        infos = [SimpleNamespace(account_type=SECURITY_ACCOUNT, account_id=acc, broker_type=SECURITY_ACCOUNT,
                                 platform_id=0, account_classification=0, login_status=ACCOUNT_STATUS_OK)
                 for acc in self.native.broker.counter.cash]
        self._answer("queryAccountInfos", seq, "OnQueryAccountInfosCallback", infos)

    def queryAccountStatusWithSeq(self, seq: int, req: Any) -> None:
        status = [SimpleNamespace(account_type=SECURITY_ACCOUNT, account_id=acc, status=ACCOUNT_STATUS_OK)
                  for acc in self.native.broker.counter.cash]
        self._answer("queryAccountStatus", seq, "OnQueryAccountStatusCallback", status)

    # ----- pushes
    def push_event(self, ev: BrokerEvent, native: SimNative) -> None:
        if not self.connected:
            return
        if isinstance(ev, OrderUpdated):
            if ev.order.account_id in native.connected_accounts:
                self._emit("OnStockOrderCallback", xt_order(ev.order))
        elif isinstance(ev, TradeFilled):
            if ev.trade.account_id in native.connected_accounts:
                self._emit("OnStockTradeCallback", xt_trade(ev.trade))
        elif isinstance(ev, PositionChanged):
            if ev.account_id in native.connected_accounts:
                for p in native.broker.counter.position_list(ev.account_id):
                    if p.code == ev.code:
                        self._emit("OnStockPositionCallback", xt_position(ev.account_id, p))
        elif isinstance(ev, AssetChanged):
            if ev.account_id in native.connected_accounts:
                a = native.broker.counter.asset(ev.account_id)
                self._emit("OnStockAssetCallback", SimpleNamespace(
                    account_type=SECURITY_ACCOUNT, account_id=ev.account_id, cash=float(a.cash),
                    frozen_cash=float(a.frozen_cash), market_value=float(a.market_value),
                    total_asset=float(a.total_asset), fetch_balance=float(a.cash)))
        elif isinstance(ev, OrderFailed):
            self._emit("OnOrderErrorCallback", SimpleNamespace(
                account_type=SECURITY_ACCOUNT, account_id=ev.account_id, order_id=ev.order_id,
                error_id=ev.error_id, error_msg=ev.message, strategy_name="qmt-mcp", order_remark=ev.remark,
                seq=native._order_seq.get(ev.order_id, 0)))
        elif isinstance(ev, CancelFailed):
            order = native.broker.counter.orders.get(ev.order_id)
            self._emit("OnCancelErrorCallback", SimpleNamespace(
                account_type=SECURITY_ACCOUNT, account_id=ev.account_id, order_id=ev.order_id,
                market=SH_MARKET if order is None else MARKETS[exchange_of(order.code)],
                order_sysid=str(ev.order_id), error_id=ev.error_id, error_msg=ev.message))


_REGISTRY: dict[bytes, SimNative] = {}


class XtQuantAsyncClient(XtQuantAsyncClientBase):
    """The class xttrader instantiates: it finds its simulator by the userdata path it was given."""

    def __init__(self, path: bytes, name: str, session: int) -> None:
        native = _REGISTRY.get(path)
        if native is None:
            raise RuntimeError(f"no simulated miniQMT at {path.decode('gb18030', 'replace')}")
        super().__init__(native, path, name, session)


MODULE = SimpleNamespace(XtQuantAsyncClient=XtQuantAsyncClient, **_structs())


# ----- xtquant-shaped values (the attributes of xttype's XtOrder, XtTrade, XtPosition)


def _order_resp(req: Any, order_id: int, error: str) -> SimpleNamespace:
    return SimpleNamespace(m_strAccountID=req.m_strAccountID, m_nOrderID=order_id,
                           m_strStrategyName=req.m_strStrategyName, m_strOrderRemark=req.m_strOrderRemark,
                           m_strErrorMsg=error)


def _order_request(req: Any) -> OrderRequest:
    """The order xttrader sent, in the counter's terms (the domain's): its price type read back into
    an order type and a market type."""
    side = Side.BUY if req.m_nOrderType == STOCK_BUY else Side.SELL
    price = Decimal(str(req.m_dPrice)) if req.m_dPrice else None
    if req.m_nPriceType == FIX_PRICE:
        return OrderRequest("", req.m_strStockCode, side, int(req.m_nOrderVolume), OrderType.LIMIT, price, None)
    market = market_type_of(int(req.m_nPriceType))
    if market is None:
        raise BrokerReject(f"price type {req.m_nPriceType} is not supported by this counter")
    return OrderRequest("", req.m_strStockCode, side, int(req.m_nOrderVolume), OrderType.MARKET, price, market)


def xt_order(o: BrokerOrder) -> SimpleNamespace:
    """The counter's order as XtOrder: its domain status and order type become xtquant's numbers."""
    price_type = xt_price_type(o.order_type, o.market_type, o.code) if o.price_type is None else o.price_type
    return SimpleNamespace(
        account_type=SECURITY_ACCOUNT, account_id=o.account_id, stock_code=o.code, order_id=o.order_id,
        order_sysid=str(o.order_id), order_time=int(o.time.timestamp()),
        order_type=ORDER_TYPES[o.side], order_volume=o.volume,
        price_type=price_type, price=float(o.price), traded_volume=o.traded_volume,
        traded_price=float(o.traded_amount / o.traded_volume) if o.traded_volume else 0.0,
        order_status=STATUS_XT[o.status], status_msg=o.status_msg, strategy_name="qmt-mcp", order_remark=o.remark,
        direction=DIRECTION_FLAG_LONG, offset_flag=_offset(o.side), secu_account="", instrument_name=o.name,
    )


def _offset(side: Side) -> int:
    # As miniQMT reports stock orders: a buy opens, a sell closes (direction is always long).
    return OFFSET_FLAG_OPEN if side is Side.BUY else OFFSET_FLAG_CLOSE


def xt_trade(t: BrokerTrade) -> SimpleNamespace:
    return SimpleNamespace(
        account_type=SECURITY_ACCOUNT, account_id=t.account_id, stock_code=t.code,
        order_type=ORDER_TYPES[t.side], traded_id=t.trade_id,
        traded_time=int(t.time.timestamp()), traded_price=float(t.price), traded_volume=t.volume,
        traded_amount=float(t.amount), order_id=t.order_id, order_sysid=str(t.order_id), strategy_name="qmt-mcp",
        order_remark=t.remark, direction=DIRECTION_FLAG_LONG, offset_flag=_offset(t.side),
        commission=float(t.fees),   # xtquant's 手续费: all the fees of the fill, in one number
    )


def xt_position(account_id: str, p: Any) -> SimpleNamespace:
    # As miniQMT fills them: open_price (开仓价) the average fill price, avg_price (成本价) fees included.
    return SimpleNamespace(
        account_type=SECURITY_ACCOUNT, account_id=account_id, stock_code=p.code, volume=p.volume,
        can_use_volume=p.can_use_volume, open_price=float(p.avg_price), market_value=float(p.market_value),
        frozen_volume=0, on_road_volume=0, yesterday_volume=p.volume, avg_price=float(p.cost_price),
        direction=DIRECTION_FLAG_LONG,
        last_price=float(p.last_price), profit_rate=0.0, secu_account="", instrument_name=p.name,
    )

