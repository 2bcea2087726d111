"""Paper-account values of the simulated counter: how an account starts, an order as the counter
keeps it (in the domain's statuses and order types, as the whole simulator speaks), and the stored
form of orders and trades."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from ...domain.codes import board_of
from ...domain.fees import Fees, split_fees
from ...domain.orders import MarketType, OrderType, Side
from ...domain.status import OrderStatus
from ...domain.timeutil import iso
from ..port import BrokerOrder, BrokerTrade, FeeDetail
from ..xtq import constants as legacy_codes

S = OrderStatus
# The statuses an order on the counter's book may still trade (or be canceled) in.
OPEN_STATUSES = frozenset({S.UNREPORTED, S.REPORTED, S.PART_SUCC})
# How an open order's status is written in the book: its name, or (a book written while the counter
# kept xtquant's codes) its code, so such a book's open orders are still found at start.
BOOK_OPEN_STATUSES: frozenset[str | int] = frozenset(
    {*(s.value for s in OPEN_STATUSES), *(legacy_codes.STATUS_XT[s] for s in OPEN_STATUSES)})
# The counter's error ids in its refusal pushes (a real counter numbers its refusals; these are ours).
ORDER_REFUSED = -61
CANCEL_REFUSED = -1
NO_FEES = Fees(Decimal(0), Decimal(0), Decimal(0))


@dataclass(frozen=True)
class PaperAccount:
    """How a paper account starts: cash in yuan and positions (code -> shares) held from before today,
    so they are sellable on the first day."""

    cash: Decimal
    positions: dict[str, int] = field(default_factory=dict)


@dataclass
class SimOrder:
    order_id: int
    account_id: str
    code: str
    name: str
    side: Side
    volume: int
    order_type: OrderType
    market_type: MarketType | None
    price: Decimal        # as submitted (protective price for SH/BJ market orders, 0 if none)
    limit: Decimal        # the price the order may trade at, at worst
    remark: str
    time: str
    day: str
    status: OrderStatus = OrderStatus.UNREPORTED
    status_msg: str = ""
    traded_volume: int = 0
    traded_amount: Decimal = Decimal(0)
    charged: Fees = NO_FEES   # the order's fees so far, item by item
    last_fill: Decimal = Decimal(0)

    @property
    def remaining(self) -> int:
        return self.volume - self.traded_volume

    @property
    def fees_charged(self) -> Decimal:
        return self.charged.total

    def to_row(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id, "account_id": self.account_id, "code": self.code,
            "name": self.name, "side": self.side.value, "volume": self.volume,
            "order_type": self.order_type.value,
            "market_type": None if self.market_type is None else self.market_type.value, "price": str(self.price),
            "limit": str(self.limit), "remark": self.remark, "time": self.time, "day": self.day,
            "status": self.status.value, "status_msg": self.status_msg, "traded_volume": self.traded_volume,
            "traded_amount": str(self.traded_amount), "fees_charged": str(self.fees_charged),
            "commission_charged": str(self.charged.commission), "stamp_duty_charged": str(self.charged.stamp_duty),
            "last_fill": str(self.last_fill),
        }

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> SimOrder:
        order_type, status = _types(r)
        return cls(
            order_id=r["order_id"], account_id=r["account_id"], code=r["code"], name=r["name"],
            side=Side(r["side"]), volume=r["volume"], order_type=order_type,
            market_type=None if r["market_type"] is None else MarketType(r["market_type"]),
            price=Decimal(r["price"]), limit=Decimal(r["limit"]),
            remark=r["remark"], time=r["time"], day=r["day"], status=status,
            status_msg=r["status_msg"], traded_volume=r["traded_volume"],
            traded_amount=Decimal(r["traded_amount"]), charged=_charged(r),
            last_fill=Decimal(r.get("last_fill", "0")),
        )

    def to_broker(self) -> BrokerOrder:
        return BrokerOrder(
            account_id=self.account_id, order_id=self.order_id, code=self.code, name=self.name,
            side=self.side, volume=self.volume, order_type=self.order_type, market_type=self.market_type,
            price=self.price, traded_volume=self.traded_volume, traded_amount=self.traded_amount,
            status=self.status, status_msg=self.status_msg, remark=self.remark,
            time=datetime.fromisoformat(self.time),
        )


def _types(r: dict[str, Any]) -> tuple[OrderType, OrderStatus]:
    """A stored order's type and status. A row written while the counter kept xtquant's codes (a
    `price_type` and a numeric `status`) is read through xtquant's own tables, the one place those
    numbers are written; nothing writes such a row any more."""
    if "order_type" in r:
        return OrderType(r["order_type"]), OrderStatus(r["status"])
    return legacy_codes.order_type_of(r["price_type"]), legacy_codes.from_xt(r["status"])


def _charged(r: dict[str, Any]) -> Fees:
    total = Decimal(r["fees_charged"])
    if "commission_charged" not in r:
        # Written before fees were itemized: only the total was kept; split it as a broker's total is.
        return split_fees(total, board_of(r["code"]), r["side"], Decimal(r["traded_amount"]),
                          date.fromisoformat(r["day"]))
    commission, stamp = Decimal(r["commission_charged"]), Decimal(r["stamp_duty_charged"])
    return Fees(commission, stamp, total - commission - stamp)


def trade_row(t: BrokerTrade) -> dict[str, Any]:
    return {
        "account_id": t.account_id, "trade_id": t.trade_id, "order_id": t.order_id, "remark": t.remark,
        "code": t.code, "side": t.side.value, "price": str(t.price), "volume": t.volume,
        "amount": str(t.amount), "commission": str(t.commission), "stamp_duty": str(t.stamp_duty),
        "transfer_fee": str(t.transfer_fee), "fee_detail": t.fee_detail, "time": iso(t.time),
    }


def trade_from_row(r: dict[str, Any]) -> BrokerTrade:
    time = datetime.fromisoformat(r["time"])
    amount = Decimal(r["amount"])
    detail: FeeDetail = "itemized"
    if "stamp_duty" in r:
        fees = Fees(Decimal(r["commission"]), Decimal(r["stamp_duty"]), Decimal(r["transfer_fee"]))
        if r.get("fee_detail") == "derived":
            detail = "derived"
    else:
        # Written before fees were itemized, when `commission` held all of them.
        fees = split_fees(Decimal(r["commission"]), board_of(r["code"]), r["side"], amount, time.date())
        detail = "derived"
    return BrokerTrade(
        account_id=r["account_id"], trade_id=r["trade_id"], order_id=r["order_id"], remark=r["remark"],
        code=r["code"], side=Side(r["side"]), price=Decimal(r["price"]), volume=r["volume"],
        amount=amount, commission=fees.commission, stamp_duty=fees.stamp_duty, transfer_fee=fees.transfer_fee,
        time=time, fee_detail=detail,
    )
