"""The simulated broker counter: paper accounts, order matching on the 5-level book, T+1, fees.

Behaviour follows what xtquant reports for a real counter: an accepted order goes unreported →
reported, fills move it to part_succ / succeeded, a cancel goes reported_cancel → canceled (or
partsucc_cancel → part_cancel after a partial fill), a refusal is junk with a reason plus an
order-error push. Pushes are emitted after the state change is saved, in the order order → trade →
position → asset. The counter speaks the domain's statuses and order types; xtquant's numbers for
them are the xtquant stand-in's (backends/xtq/simnative.py).

On the exchange clock the counter keeps the sessions: orders of a call auction rest until it
uncrosses at one price (09:25, 15:00), continuous matching runs only in the continuous auction,
limit orders outside the price cage are held unmatched, and what is open after the close expires.

What the accounts hold, and the book it is saved in, is the ledger's (ledger.py); how each order
type is priced, ordertypes.py's.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal

from ...domain.codes import exchange_of
from ...domain.errors import BrokerReject, ErrorCode, NotCancelable, OrderNotFound
from ...domain.fees import compute_fees
from ...domain.instruments import Instrument, cage_base, price_cage
from ...domain.market import Quote
from ...domain.money import yuan_text
from ...domain.orders import MARKET_TYPES, MarketType, OrderRequest, OrderType, Side
from ...domain.sessions import ACCEPTS_CANCELS, CLOSING_UNCROSS, OPENING_UNCROSS, Phase, describe
from ...domain.status import OrderStatus
from ...domain.timeutil import CN_TZ, iso
from ..port import AssetChanged, BrokerTrade, CancelFailed, OrderFailed, PositionChanged, TradeFilled
from .ledger import Batch, PaperLedger
from .ordertypes import Rest, after_sweep, limit_price, session_refusal
from .paper import CANCEL_REFUSED, OPEN_STATUSES, ORDER_REFUSED, SimOrder
from .store import PositionRow
from .timeline import QUOTES_PER_MINUTE

S = OrderStatus


class SimCounter(PaperLedger):
    """The counter's operations (place, cancel, poll) over its ledger."""

    # ----- helpers
    def _quote(self, code: str) -> Quote:
        return self.market.quote(code, self.clock.now())

    def _phase(self) -> Phase:
        return self.market.timeline.phase(self.clock.now())

    def _roll_day(self, account_id: str, batch: Batch) -> None:
        """A new trading day: yesterday's buys become sellable and open day orders expire."""
        today = self._today().isoformat()
        if self.day[account_id] >= today:
            return
        self.day[account_id] = today
        batch.accounts.add(account_id)
        for code, p in self.positions[account_id].items():
            if p.today_bought:
                p.today_bought = 0
                batch.positions.add((account_id, code))
        for o in list(self.open.values()):
            if o.account_id == account_id and o.day < today:
                self._set_status(o, S.PART_CANCEL if o.traded_volume else S.CANCELED, "expired at day end", batch)

    def _keep_sessions(self, batch: Batch) -> None:
        """Run the call auctions and the day end that the exchange clock has passed since last time."""
        tl = self.market.timeline
        if tl.name != "exchange":
            return
        now = self.clock.now().astimezone(CN_TZ)
        day = now.date()
        if not tl.is_trading_day(day):
            return
        key = day.isoformat()
        if now.time() >= OPENING_UNCROSS and self._uncrossed["open"] < key:
            self._uncrossed["open"] = key
            self._uncross(day, 0, batch)
            batch.accounts.update(self.cash)   # so the batch is saved, with the markers
        if now.time() >= CLOSING_UNCROSS and self._uncrossed["close"] < key:
            self._uncrossed["close"] = key
            self._uncross(day, tl.minutes * QUOTES_PER_MINUTE - 1, batch)
            for o in list(self.open.values()):
                if o.day <= key:
                    self._set_status(o, S.PART_CANCEL if o.traded_volume else S.CANCELED, "expired at day end",
                                     batch)
            batch.accounts.update(self.cash)

    def _uncross(self, day: date, index: int, batch: Batch) -> None:
        """A call auction: every open limit order that the auction price satisfies trades at that one
        price, in time order, up to the volume the auction printed. A print at the up limit leaves
        buyers unfilled (sealed: more bids than asks at the limit), and the mirror at the down limit."""
        at = datetime.combine(day, time(9, 25) if index == 0 else time(15, 0), CN_TZ)
        for code in sorted({o.code for o in self.open.values()}):
            inst = self.market.instrument(code, day)
            if inst.suspended:
                continue
            q = self.market.quote(code, at)
            price = q.last
            printed = q.volume if index == 0 else q.volume - self.market.quote(code, at - timedelta(seconds=1)).volume
            room = {Side.BUY: printed if price != inst.up_limit else 0,
                    Side.SELL: printed if price != inst.down_limit else 0}
            for o in list(self.open.values()):
                if o.code != code or o.status not in OPEN_STATUSES or o.order_type is not OrderType.LIMIT:
                    continue
                crosses = o.limit >= price if o.side is Side.BUY else o.limit <= price
                qty = min(o.remaining, room[o.side])
                if crosses and qty > 0:
                    room[o.side] -= qty
                    self._fill(o, price, qty, inst, batch)

    # ----- orders
    def place(self, account_id: str, req: OrderRequest, inst: Instrument, remark: str) -> int:
        with self._lock:
            self._check_account(account_id)
            if req.order_type is OrderType.MARKET:
                _check_market_type(req)
            batch = Batch()
            self._roll_day(account_id, batch)
            self._keep_sessions(batch)
            now = self.clock.now()
            phase = self._phase()
            quote = self._quote(req.code)
            limit = limit_price(req, inst, quote)
            o = SimOrder(
                order_id=self.next_order_id, account_id=account_id, code=req.code, name=inst.name,
                side=req.side, volume=req.volume, order_type=req.order_type, market_type=req.market_type,
                price=req.price or Decimal(0), limit=limit or Decimal(0), remark=remark,
                time=iso(now), day=now.date().isoformat(),
            )
            self.next_order_id += 1
            # Checked before the order joins the book, so it does not freeze its own cash or shares.
            refusal = session_refusal(o, phase) or self._refusal(o, inst, limit)
            self.orders[o.order_id] = o
            self._set_status(o, S.UNREPORTED, "", batch)
            if refusal is not None:
                self._set_status(o, S.JUNK, refusal, batch)
                batch.events.append(OrderFailed(account_id, o.order_id, remark, ORDER_REFUSED, refusal))
            else:
                self._set_status(o, S.REPORTED, "", batch)
                if phase is Phase.CONTINUOUS:
                    self._match(o, quote, inst, batch)
                    self._after_market_sweep(o, batch)
            self._commit(batch)
            return o.order_id

    def _refusal(self, o: SimOrder, inst: Instrument, limit: Decimal | None) -> str | None:
        if inst.suspended:
            return "停牌 suspended"
        if limit is None:
            return "no counter-party or own-side quote for this market order"
        if not inst.within_limits(limit) and o.order_type is OrderType.LIMIT:
            return "price outside the daily limit"
        if o.side is Side.BUY:
            amount = limit * o.volume
            need = amount + compute_fees(self.fees, inst.board, "buy", amount, self._today()).total
            available = self.cash[o.account_id] - self._frozen_cash(o.account_id)
            if need > available:
                return f"可用资金不足 insufficient cash: need {yuan_text(need)}, available {yuan_text(available)}"
        elif self._can_use(o.account_id, o.code, inst.t_plus) < o.volume:
            return "可用股份不足 insufficient sellable shares"
        return None

    def _after_market_sweep(self, o: SimOrder, batch: Batch) -> None:
        """What a market order does with volume the book could not fill at once (ordertypes)."""
        if o.status not in OPEN_STATUSES or o.order_type is OrderType.LIMIT or o.remaining == 0:
            return
        rest = after_sweep(o)
        if rest is Rest.AT_LAST_FILL:
            o.limit = o.last_fill
            batch.orders[o.order_id] = o
        elif rest is Rest.CANCELED:
            self._set_status(o, S.PART_CANCEL if o.traded_volume else S.CANCELED, "remainder canceled", batch)

    def _match(self, o: SimOrder, quote: Quote, inst: Instrument, batch: Batch) -> None:
        buy = o.side is Side.BUY
        levels = quote.asks if buy else quote.bids
        if not levels:
            return
        if o.order_type is OrderType.LIMIT and not self._inside_cage(o, quote, inst):
            return  # held by the exchange until the cage admits its price
        _, index = self.market.quote_index(quote.time)
        fok = o.market_type is MarketType.FOK
        for price, qty in self.liquidity.take(o.code, index, levels, buy, o.limit, o.remaining, fok):
            self._fill(o, price, qty, inst, batch)

    def _inside_cage(self, o: SimOrder, quote: Quote, inst: Instrument) -> bool:
        buy = o.side is Side.BUY
        base = cage_base(buy, quote.bids[0].price if quote.bids else None,
                         quote.asks[0].price if quote.asks else None, quote.last, inst.pre_close)
        bound = price_cage(inst.board, buy, base, inst.price_tick, self._today())
        return bound is None or (o.limit <= bound if buy else o.limit >= bound)

    def _fill(self, o: SimOrder, price: Decimal, qty: int, inst: Instrument, batch: Batch) -> None:
        on = self._today()
        amount = price * qty
        o.traded_volume += qty
        o.traded_amount += amount
        o.last_fill = price
        # Fees are the order's (the commission minimum applies once per order): each fill is charged
        # what it adds to them, item by item.
        charged = compute_fees(self.fees, inst.board, o.side.value, o.traded_amount, on)
        fees = charged.minus(o.charged)
        o.charged = charged
        fee = fees.total
        self._set_status(o, S.SUCCEEDED if o.remaining == 0 else S.PART_SUCC, "", batch)
        trade = BrokerTrade(
            account_id=o.account_id, trade_id=f"T{self.next_trade_no:08d}", order_id=o.order_id,
            remark=o.remark, code=o.code, side=o.side, price=price, volume=qty, amount=amount,
            commission=fees.commission, stamp_duty=fees.stamp_duty, transfer_fee=fees.transfer_fee,
            time=self.clock.now(),
        )
        self.next_trade_no += 1
        batch.trades.append(trade)
        batch.events.append(TradeFilled(trade))
        positions = self.positions[o.account_id]
        p = positions.setdefault(o.code, PositionRow.empty())
        if o.side is Side.BUY:
            p.buy(qty, amount, fee, locked=bool(inst.t_plus))
            self.cash[o.account_id] -= amount + fee
        else:
            p.sell(qty)
            self.cash[o.account_id] += amount - fee
        batch.positions.add((o.account_id, o.code))
        batch.accounts.add(o.account_id)
        batch.events.append(PositionChanged(o.account_id, o.code))
        batch.events.append(AssetChanged(o.account_id))

    def cancel(self, account_id: str, order_id: int) -> None:
        with self._lock:
            o = self.orders.get(order_id)
            if o is None or o.account_id != account_id:
                raise OrderNotFound(f"order {order_id} is not on this account")
            batch = Batch()
            self._keep_sessions(batch)
            phase = self._phase()
            if o.status not in OPEN_STATUSES:
                msg = f"order {order_id} is {o.status.value} and cannot be canceled"
                batch.events.append(CancelFailed(account_id, order_id, CANCEL_REFUSED, msg))
                self._commit(batch)
                raise NotCancelable(msg)
            if phase not in ACCEPTS_CANCELS:
                msg = f"撤单被拒 {describe(phase)}"
                batch.events.append(CancelFailed(account_id, order_id, CANCEL_REFUSED, msg))
                self._commit(batch)
                if phase in (Phase.CLOSED, Phase.LUNCH_BREAK):
                    raise BrokerReject(msg, code=ErrorCode.MARKET_CLOSED, state_changed="no")
                raise NotCancelable(msg, details={"phase": phase.value})
            if o.traded_volume:
                self._set_status(o, S.PARTSUCC_CANCEL, "", batch)
                self._set_status(o, S.PART_CANCEL, "canceled", batch)
            else:
                self._set_status(o, S.REPORTED_CANCEL, "", batch)
                self._set_status(o, S.CANCELED, "canceled", batch)
            self._commit(batch)

    def poll(self) -> None:
        """Match resting orders against quotes published since the last poll."""
        with self._lock:
            batch = Batch()
            for acc in self.cash:
                self._roll_day(acc, batch)
            self._keep_sessions(batch)
            now = self.clock.now()
            located = self.market.quote_index(now)
            open_orders = list(self.open.values())
            if self._phase() is Phase.CONTINUOUS:
                quotes: dict[str, Quote] = {}
                for o in open_orders:
                    if self._last_index.get(o.code) == located or o.status not in OPEN_STATUSES:
                        continue
                    if o.code not in quotes:
                        quotes[o.code] = self.market.quote(o.code, now)
                    self._match(o, quotes[o.code], self.market.instrument(o.code, self._today()), batch)
            for o in open_orders:
                self._last_index[o.code] = located
            self.liquidity.forget_before(located[1])
            if batch.events or batch.accounts:
                self._commit(batch)


def _check_market_type(req: OrderRequest) -> None:
    """A market order type the code's exchange does not have is refused before it reaches the book
    (the worker's parser refuses it first; this is an order typed at the counter)."""
    exchange = exchange_of(req.code)
    market_type = req.market_type or MarketType.BEST5_CANCEL
    if (exchange, market_type) not in MARKET_TYPES:
        raise BrokerReject(f"{market_type.value} market orders are not available on {exchange.value}",
                           code=ErrorCode.ORDER_TYPE_UNSUPPORTED, state_changed="no")
