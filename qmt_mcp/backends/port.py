"""The broker port: what the worker needs from a broker, in domain types only.

Implementations translate their vendor's types, return codes and exceptions at this boundary:
`sim` (the embedded simulator) and `xtquant`. Pushes reach the worker through the sink given to
`set_sink`, in the broker's order: order status, trade, position, asset, and the connection's own
news (an account's status at the counter, the connection dropping). The pushes of one state change
arrive together, so the worker can journal them in one transaction (one fsync).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Protocol, runtime_checkable

from ..domain.events import AccountStatus
from ..domain.events import FeeDetail as FeeDetail  # re-exported: the simulator and adapters name it here
from ..domain.fees import FeeSchedule
from ..domain.instruments import Instrument
from ..domain.market import Bar, Quote
from ..domain.money import money_float
from ..domain.orders import EXTERNAL_PREFIX, MarketType, OrderRequest, OrderType, Side, client_id_of_remark
from ..domain.sessions import Phase
from ..domain.status import OrderStatus
from ..domain.timeutil import iso

LI = Decimal("0.001")  # per-share prices are shown to the li, as the exchanges quote them


@dataclass(frozen=True)
class BrokerOrder:
    """An order as the broker lists or pushes it. `price_type` is the broker's own xtquant price type
    when it reported one (the xtquant adapter: the contract shows it as is, even a type we have no
    name for); None from the simulator, whose orders are always `order_type`/`market_type` of ours."""

    account_id: str
    order_id: int
    code: str
    name: str
    side: Side
    volume: int
    order_type: OrderType
    market_type: MarketType | None
    price: Decimal
    traded_volume: int
    traded_amount: Decimal
    status: OrderStatus
    status_msg: str
    remark: str
    time: datetime
    price_type: int | None = None


@dataclass(frozen=True)
class BrokerTrade:
    """One fill. Fees are itemized: `commission` is the broker's commission only, `fees` all three.

    `fee_detail` says where the items come from: `itemized` (the counter charged each one: the
    simulator) or `derived` (the broker reported one total, as xtquant's trade push does; stamp duty
    and transfer fee are the statutory amounts on this fill and the commission is the rest)."""

    account_id: str
    trade_id: str
    order_id: int
    remark: str
    code: str
    side: Side
    price: Decimal
    volume: int
    amount: Decimal
    commission: Decimal
    stamp_duty: Decimal
    transfer_fee: Decimal
    time: datetime
    fee_detail: FeeDetail = "itemized"

    @property
    def fees(self) -> Decimal:
        """All fees of the fill, yuan: what the cash moved by besides the amount."""
        return self.commission + self.stamp_duty + self.transfer_fee

    def fee_wire(self) -> dict[str, Any]:
        return {"commission": money_float(self.commission), "stamp_duty": money_float(self.stamp_duty),
                "transfer_fee": money_float(self.transfer_fee), "fees": money_float(self.fees),
                "fee_detail": self.fee_detail}

    def to_wire(self, client_order_id: str | None = None) -> dict[str, Any]:
        """The fill for the agent, under `client_order_id` (the worker's record of its order); without
        one, under its remark only if that is a well-formed id, else the `ext-<order id>` it was imported as."""
        cid = client_order_id or client_id_of_remark(self.remark) or f"{EXTERNAL_PREFIX}{self.order_id}"
        return {
            "trade_id": self.trade_id, "order_id": self.order_id, "client_order_id": cid,
            "code": self.code, "side": self.side.value, "price": float(self.price),
            "volume": self.volume, "amount": float(self.amount), **self.fee_wire(), "time": iso(self.time),
        }


@dataclass(frozen=True)
class Asset:
    cash: Decimal          # available
    frozen_cash: Decimal
    market_value: Decimal
    total_asset: Decimal

    def to_wire(self) -> dict[str, float]:
        return {
            "cash": money_float(self.cash), "frozen_cash": money_float(self.frozen_cash),
            "market_value": money_float(self.market_value), "total_asset": money_float(self.total_asset),
        }


@dataclass(frozen=True)
class Position:
    """A holding, with its cost kept exact (yuan; rounded only in `to_wire`).

    `fill_cost` is what the held shares were bought for, fees excluded; `cost` (the cost basis) adds
    the buy fees. Per share they are `avg_price` (average fill price) and `cost_price` (成本价, as
    A-share brokers report it). Selling releases cost at the average, so both stay per-share averages."""

    code: str
    name: str
    volume: int
    can_use_volume: int
    last_price: Decimal
    fill_cost: Decimal
    cost: Decimal

    @property
    def avg_price(self) -> Decimal:
        return self.fill_cost / self.volume if self.volume else Decimal(0)

    @property
    def cost_price(self) -> Decimal:
        return self.cost / self.volume if self.volume else Decimal(0)

    @property
    def market_value(self) -> Decimal:
        return self.last_price * self.volume

    @property
    def unrealized_pnl(self) -> Decimal:
        """Market value less the cost basis (buy fees included), exact."""
        return self.market_value - self.cost

    def to_wire(self) -> dict[str, Any]:
        return {
            "code": self.code, "name": self.name, "volume": self.volume,
            "can_use_volume": self.can_use_volume, "avg_price": float(self.avg_price.quantize(LI, ROUND_HALF_UP)),
            "cost_price": float(self.cost_price.quantize(LI, ROUND_HALF_UP)), "last_price": float(self.last_price),
            "market_value": money_float(self.market_value), "cost_basis": money_float(self.cost),
            # Rounded once, from the exact figures: never from the rounded prices above.
            "unrealized_pnl": money_float(self.unrealized_pnl),
        }


@dataclass(frozen=True)
class OrderUpdated:
    order: BrokerOrder


@dataclass(frozen=True)
class TradeFilled:
    trade: BrokerTrade


@dataclass(frozen=True)
class PositionChanged:
    account_id: str
    code: str


@dataclass(frozen=True)
class AssetChanged:
    account_id: str


@dataclass(frozen=True)
class OrderFailed:
    """xtquant's on_order_error: the broker refused an order it had accepted for processing."""

    account_id: str
    order_id: int
    remark: str
    error_id: int
    message: str


@dataclass(frozen=True)
class CancelFailed:
    account_id: str
    order_id: int
    error_id: int
    message: str


@dataclass(frozen=True)
class AccountStatusChanged:
    """The counter reports an account's state (xtquant's on_account_status), mapped to a word."""

    account_id: str
    status: AccountStatus


@dataclass(frozen=True)
class TraderDisconnected:
    """The connection to the broker dropped (xtquant's on_disconnected), for every account it
    carried, at `time` (when it was reported); `reason` says why, as far as the backend knows."""

    account_ids: tuple[str, ...]
    time: datetime
    reason: str


BrokerEvent = (OrderUpdated | TradeFilled | PositionChanged | AssetChanged | OrderFailed | CancelFailed
               | AccountStatusChanged | TraderDisconnected)
Sink = Callable[[Sequence[BrokerEvent]], None]  # one state change's pushes, in order


@dataclass(frozen=True)
class Listed:
    code: str
    name: str
    board: str
    sectors: tuple[str, ...]


class BrokerPort(Protocol):
    name: str

    def set_sink(self, sink: Sink) -> None: ...
    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def poll(self) -> None:
        """Let time pass at the broker (the simulator matches resting orders against new quotes)."""

    # market data
    async def instrument(self, code: str) -> Instrument: ...
    async def quotes(self, codes: list[str]) -> list[Quote]: ...
    async def bars(self, code: str, period: str, start: datetime, end: datetime, count: int) -> list[Bar]: ...
    async def ticks(self, code: str, start: datetime, end: datetime, limit: int) -> list[Quote]: ...
    async def listings(self) -> list[Listed]: ...
    async def sectors(self) -> list[str]: ...
    def take_reconnected(self) -> bool:
        """True once after the broker reconnected (the worker then reconciles)."""
        ...

    def phase(self) -> Phase:
        """The session phase now (the simulator's continuous clock is always CONTINUOUS)."""
        ...

    # trading
    async def place_order(self, account_id: str, req: OrderRequest, remark: str) -> int:
        """The broker's order id. Raises BrokerReject if refused outright, SubmitIndeterminate if unknown."""
    async def cancel_order(self, account_id: str, order_id: int) -> None: ...
    async def asset(self, account_id: str) -> Asset: ...
    async def positions(self, account_id: str) -> list[Position]: ...
    async def orders(self, account_id: str) -> list[BrokerOrder]: ...
    async def trades(self, account_id: str) -> list[BrokerTrade]: ...
    def health(self) -> dict[str, Any]: ...

    @property
    def fees(self) -> FeeSchedule:
        """The commission schedule this broker charges, which previews cost orders with: the
        simulator's own; for xtquant the configured one, since miniQMT reports no schedule."""
        ...


@runtime_checkable
class QuoteFeed(Protocol):
    """A broker that pushes quotes itself (xtquant's subscribe_quote) rather than being read at each
    tick; the worker's quote streams (worker/quotes.py) use it when the broker has it."""

    def watch_quotes(self, codes: frozenset[str], sink: Callable[[Quote], None]) -> None:
        """Push every new quote of `codes` (the whole set followed now; an empty set stops every push)
        to `sink`, on the worker's event loop."""
        ...

    def check_quotes(self) -> None:
        """At each tick: push again, marked stale, a followed code that has gone silent."""
        ...
