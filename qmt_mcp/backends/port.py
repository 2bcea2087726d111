"""The broker port: what the worker needs from a broker, in domain types only.

Implementations translate their vendor's types, return codes and exceptions at this boundary:
`sim` (the embedded simulator) and, later, `xtquant`. Pushes reach the worker through the sink
given to `set_sink`, in the broker's order: order status, trade, position, asset. The pushes of one
state change arrive together, so the worker can journal them in one transaction (one fsync).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from ..domain.instruments import Instrument
from ..domain.market import Bar, Quote
from ..domain.orders import OrderRequest, Side
from ..domain.sessions import Phase
from ..domain.status import OrderStatus
from ..domain.timeutil import iso


@dataclass(frozen=True)
class BrokerOrder:
    account_id: str
    order_id: int
    code: str
    name: str
    side: Side
    volume: int
    price_type: int
    price: Decimal
    traded_volume: int
    traded_amount: Decimal
    status: OrderStatus
    status_msg: str
    remark: str
    time: datetime


@dataclass(frozen=True)
class BrokerTrade:
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
    time: datetime

    def to_wire(self) -> dict[str, Any]:
        return {
            "trade_id": self.trade_id, "order_id": self.order_id, "client_order_id": self.remark,
            "code": self.code, "side": self.side.value, "price": float(self.price),
            "volume": self.volume, "amount": float(self.amount), "commission": float(self.commission),
            "time": iso(self.time),
        }


@dataclass(frozen=True)
class Asset:
    cash: Decimal          # available
    frozen_cash: Decimal
    market_value: Decimal
    total_asset: Decimal

    def to_wire(self) -> dict[str, float]:
        return {
            "cash": float(self.cash), "frozen_cash": float(self.frozen_cash),
            "market_value": float(self.market_value), "total_asset": float(self.total_asset),
        }


@dataclass(frozen=True)
class Position:
    code: str
    name: str
    volume: int
    can_use_volume: int
    avg_price: Decimal
    last_price: Decimal

    @property
    def market_value(self) -> Decimal:
        return (self.last_price * self.volume).quantize(Decimal("0.01"))

    def to_wire(self) -> dict[str, Any]:
        cost = (self.avg_price * self.volume).quantize(Decimal("0.01"))
        return {
            "code": self.code, "name": self.name, "volume": self.volume,
            "can_use_volume": self.can_use_volume, "avg_price": float(self.avg_price),
            "last_price": float(self.last_price), "market_value": float(self.market_value),
            "unrealized_pnl": float(self.market_value - cost),
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


BrokerEvent = OrderUpdated | TradeFilled | PositionChanged | AssetChanged | OrderFailed | CancelFailed
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
