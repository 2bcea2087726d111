"""Statements across days: the accounting, exact to the fen. Pure: no I/O, no clock.

Cost is the average cost including fees, as A-share brokers report 成本价: a buy adds its amount and
its fees to the code's cost basis; a sell releases the average cost of the shares sold,
`round_fen(cost × sold / held)` (all of it when the position closes), and what is left stays the
basis of the rest, so the basis is never off by a rounding. A sell's realized P&L is its proceeds
after its fees less the cost it released. Unrealized P&L is market value (shares × price, rounded to
the fen per code) less the cost basis.

With fees inside the cost and inside the proceeds, a day without cash flows in or out satisfies

    closing_total_asset − opening_total_asset = realized_pnl + unrealized_pnl − opening_unrealized_pnl

and, with realized and unrealized taken before fees (fill prices only), the same change is
realized + Δunrealized − fees. Both are checked in tests/test_statements.py.

A day is valued from two snapshots of the account (domain types, taken by worker/history.py): at
its opening, at the previous close; at its closing, at the day's close (or the latest price while
the day is today). The worker's own trades carry the cost basis from day to day; where a snapshot
shows a holding the trades do not explain (shares before the history began, or bought by hand
while the worker did not see it), the broker's holding and cost are taken as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from .fees import Fees
from .money import ZERO, round_fen
from .orders import Side

LI = Decimal("0.001")
NO_FEES = Fees(ZERO, ZERO, ZERO)


def fen_text(amount: Decimal) -> str:
    """Money on the wire: a decimal string exact to the fen, `-12.30`, never `-0.00`."""
    q = round_fen(amount)
    return f"{abs(q) if q == 0 else q:.2f}"


def li_text(price: Decimal) -> str:
    """A per-share price on the wire: a decimal string to the li (0.001 yuan), half-up."""
    return f"{price.quantize(LI):.3f}" if price else "0.000"


def add_fees(a: Fees, b: Fees) -> Fees:
    return Fees(a.commission + b.commission, a.stamp_duty + b.stamp_duty, a.transfer_fee + b.transfer_fee)


def fees_wire(f: Fees) -> dict[str, str]:
    return {"commission": fen_text(f.commission), "stamp_duty": fen_text(f.stamp_duty),
            "transfer_fee": fen_text(f.transfer_fee), "total": fen_text(f.total)}


def fees_of_wire(d: Mapping[str, str]) -> Fees:
    return Fees(Decimal(d["commission"]), Decimal(d["stamp_duty"]), Decimal(d["transfer_fee"]))


@dataclass(frozen=True)
class Fill:
    """One trade: price yuan per share, volume shares, amount = price × volume yuan, fees itemized."""

    day: date
    code: str
    side: Side
    price: Decimal
    volume: int
    amount: Decimal
    fees: Fees


@dataclass(frozen=True)
class Holding:
    volume: int      # shares
    cost: Decimal    # the cost basis, buy fees included, yuan

    @property
    def cost_price(self) -> Decimal:
        return self.cost / self.volume if self.volume else ZERO


NOTHING = Holding(0, ZERO)


@dataclass(frozen=True)
class Snapshot:
    """The account at one moment: all its cash (available and frozen), its holdings, and the price
    (yuan per share) each holding is valued at."""

    cash: Decimal
    holdings: Mapping[str, Holding]
    prices: Mapping[str, Decimal]

    def value(self, code: str, volume: int) -> Decimal:
        return round_fen(volume * self.prices.get(code, ZERO))

    @property
    def market_value(self) -> Decimal:
        return sum((self.value(c, h.volume) for c, h in self.holdings.items()), ZERO)

    @property
    def total_asset(self) -> Decimal:
        return self.cash + self.market_value

    def to_wire(self) -> dict[str, Any]:
        return {"cash": str(self.cash),
                "holdings": {c: [h.volume, str(h.cost)] for c, h in sorted(self.holdings.items())},
                "prices": {c: str(p) for c, p in sorted(self.prices.items())}}

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> Snapshot:
        return cls(Decimal(d["cash"]), {c: Holding(int(v), Decimal(cost)) for c, (v, cost) in d["holdings"].items()},
                   {c: Decimal(p) for c, p in d["prices"].items()})


def opening_from(now: Snapshot, today: Iterable[Fill], prices: Mapping[str, Decimal]) -> Snapshot:
    """The account as it opened the day, from how it stands `now` and the day's fills so far (a
    worker that first sees a day after trades were made in it): each fill undone, valued at `prices`
    (the previous close). The cost of a holding a fill changed is its current average cost (the
    previous close when it is sold out now); it matters only where no earlier day carries the cost."""
    cash = now.cash
    volumes = {c: h.volume for c, h in now.holdings.items()}
    for f in today:
        if f.side is Side.BUY:
            cash += f.amount + f.fees.total
            volumes[f.code] = volumes.get(f.code, 0) - f.volume
        else:
            cash -= f.amount - f.fees.total
            volumes[f.code] = volumes.get(f.code, 0) + f.volume
    holdings = {}
    for code, volume in volumes.items():
        if volume <= 0:
            continue
        held = now.holdings.get(code, NOTHING)
        # Sold out since the opening: no cost left to average, so the previous close stands in for it.
        per_share = held.cost_price if held.volume else prices.get(code, ZERO)
        holdings[code] = held if held.volume == volume else Holding(volume, round_fen(per_share * volume))
    return Snapshot(cash, holdings, {c: prices.get(c, now.prices.get(c, ZERO)) for c in holdings})


@dataclass(frozen=True)
class DayInput:
    day: date
    opening: Snapshot
    closing: Snapshot
    fills: tuple[Fill, ...]


@dataclass(frozen=True)
class CodeDay:
    """One code on one day: what was bought and sold (yuan), realized and fees, and the holding at the
    close valued at `price`."""

    code: str
    bought: Decimal = ZERO
    sold: Decimal = ZERO
    bought_volume: int = 0
    sold_volume: int = 0
    realized: Decimal = ZERO
    fees: Fees = NO_FEES
    volume: int = 0
    cost: Decimal = ZERO
    price: Decimal = ZERO

    @property
    def market_value(self) -> Decimal:
        return round_fen(self.volume * self.price)

    @property
    def unrealized(self) -> Decimal:
        return self.market_value - self.cost if self.volume else ZERO

    def to_wire(self) -> dict[str, Any]:
        return {"code": self.code, "bought": str(self.bought), "sold": str(self.sold),
                "bought_volume": self.bought_volume, "sold_volume": self.sold_volume, "realized": str(self.realized),
                "fees": [str(self.fees.commission), str(self.fees.stamp_duty), str(self.fees.transfer_fee)],
                "volume": self.volume, "cost": str(self.cost), "price": str(self.price)}

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> CodeDay:
        c, s, t = (Decimal(x) for x in d["fees"])
        return cls(d["code"], Decimal(d["bought"]), Decimal(d["sold"]), int(d["bought_volume"]),
                   int(d["sold_volume"]), Decimal(d["realized"]), Fees(c, s, t), int(d["volume"]),
                   Decimal(d["cost"]), Decimal(d["price"]))


@dataclass(frozen=True)
class DayStatement:
    day: date
    opening_total: Decimal
    closing_total: Decimal
    cash: Decimal                  # all cash at the close
    market_value: Decimal          # at the close
    realized: Decimal
    unrealized: Decimal            # of what is held at the close
    opening_unrealized: Decimal    # of what was held at the opening, at the previous close
    fees: Fees
    turnover: Decimal              # bought + sold, yuan, fees excluded
    trades: int
    codes: tuple[CodeDay, ...] = field(default=())

    @property
    def pnl(self) -> Decimal:
        return self.closing_total - self.opening_total

    def to_wire(self) -> dict[str, Any]:
        """The contract's day: every figure a decimal string exact to the fen."""
        return {"date": self.day.isoformat(), "opening_total_asset": fen_text(self.opening_total),
                "closing_total_asset": fen_text(self.closing_total), "cash": fen_text(self.cash),
                "market_value": fen_text(self.market_value), "realized_pnl": fen_text(self.realized),
                "unrealized_pnl": fen_text(self.unrealized),
                "opening_unrealized_pnl": fen_text(self.opening_unrealized),
                "pnl": fen_text(self.pnl), "fees": fees_wire(self.fees), "turnover": fen_text(self.turnover),
                "trades": self.trades}

    def to_record(self) -> dict[str, Any]:
        """Everything, exact, for the journal's folded summaries (worker/history.py)."""
        return {"day": self.day.isoformat(), "opening_total": str(self.opening_total),
                "closing_total": str(self.closing_total), "cash": str(self.cash),
                "market_value": str(self.market_value), "realized": str(self.realized),
                "unrealized": str(self.unrealized), "opening_unrealized": str(self.opening_unrealized),
                "fees": [str(self.fees.commission), str(self.fees.stamp_duty), str(self.fees.transfer_fee)],
                "turnover": str(self.turnover), "trades": self.trades, "codes": [c.to_wire() for c in self.codes]}

    @classmethod
    def from_record(cls, d: Mapping[str, Any]) -> DayStatement:
        c, s, t = (Decimal(x) for x in d["fees"])
        return cls(date.fromisoformat(d["day"]), Decimal(d["opening_total"]), Decimal(d["closing_total"]),
                   Decimal(d["cash"]), Decimal(d["market_value"]), Decimal(d["realized"]), Decimal(d["unrealized"]),
                   Decimal(d["opening_unrealized"]), Fees(c, s, t), Decimal(d["turnover"]), int(d["trades"]),
                   tuple(CodeDay.from_wire(x) for x in d["codes"]))


def _unrealized(book: Mapping[str, Holding], snap: Snapshot) -> Decimal:
    return sum((snap.value(c, h.volume) - h.cost for c, h in book.items() if h.volume), ZERO)


def run_days(prior: DayStatement | None, days: Sequence[DayInput]) -> list[DayStatement]:
    """Each day's statement, in order, carrying the cost basis on from `prior` (the day before the
    first of `days`, e.g. the last folded one; None: the history starts with `days`)."""
    book: dict[str, Holding] = {c.code: Holding(c.volume, c.cost) for c in prior.codes if c.volume} if prior else {}
    out = []
    for d in days:
        for code in set(book) | set(d.opening.holdings):
            theirs, ours = d.opening.holdings.get(code, NOTHING), book.get(code, NOTHING)
            if theirs.volume != ours.volume:   # shares the trades do not explain: the broker's as they are
                book[code] = theirs
        opening_unrealized = _unrealized(book, d.opening)
        codes: dict[str, CodeDay] = {}
        for f in d.fills:
            held = book.get(f.code, NOTHING)
            line = codes.get(f.code, CodeDay(f.code))
            if f.side is Side.BUY:
                book[f.code] = Holding(held.volume + f.volume, held.cost + f.amount + f.fees.total)
                line = _add(line, bought=f.amount, bought_volume=f.volume, fees=f.fees)
            else:
                sold = min(f.volume, held.volume)
                released = held.cost if sold >= held.volume else round_fen(held.cost * sold / held.volume)
                book[f.code] = Holding(held.volume - sold, held.cost - released)
                line = _add(line, sold=f.amount, sold_volume=f.volume, fees=f.fees,
                            realized=f.amount - f.fees.total - released)
            codes[f.code] = line
        for code in [c for c, h in book.items() if h.volume == 0]:
            del book[code]
        lines = []
        for code in sorted(set(codes) | set(book)):
            held = book.get(code, NOTHING)
            price = d.closing.prices.get(code) or d.opening.prices.get(code) or _last_price(d.fills, code)
            line = codes.get(code, CodeDay(code))
            lines.append(CodeDay(code, line.bought, line.sold, line.bought_volume, line.sold_volume, line.realized,
                                 line.fees, held.volume, held.cost, price))
        fees = NO_FEES
        for line in lines:
            fees = add_fees(fees, line.fees)
        out.append(DayStatement(
            day=d.day, opening_total=d.opening.total_asset, closing_total=d.closing.total_asset,
            cash=d.closing.cash, market_value=d.closing.market_value,
            realized=sum((x.realized for x in lines), ZERO),
            unrealized=sum((x.unrealized for x in lines), ZERO), opening_unrealized=opening_unrealized,
            fees=fees, turnover=sum((x.bought + x.sold for x in lines), ZERO), trades=len(d.fills),
            codes=tuple(lines)))
    return out


def _add(line: CodeDay, *, bought: Decimal = ZERO, sold: Decimal = ZERO, bought_volume: int = 0,
         sold_volume: int = 0, fees: Fees = NO_FEES, realized: Decimal = ZERO) -> CodeDay:
    return CodeDay(line.code, line.bought + bought, line.sold + sold, line.bought_volume + bought_volume,
                   line.sold_volume + sold_volume, line.realized + realized, add_fees(line.fees, fees))


def _last_price(fills: Sequence[Fill], code: str) -> Decimal:
    prices = [f.price for f in fills if f.code == code]
    return prices[-1] if prices else ZERO


def totals(days: Sequence[DayStatement]) -> dict[str, Any]:
    """The range as one: opening of its first day, closing of its last, the sums in between."""
    if not days:
        return {"days": 0, "opening_total_asset": None, "closing_total_asset": None, "realized_pnl": fen_text(ZERO),
                "unrealized_pnl": None, "pnl": fen_text(ZERO), "fees": fees_wire(NO_FEES),
                "turnover": fen_text(ZERO), "trades": 0}
    fees = NO_FEES
    for d in days:
        fees = add_fees(fees, d.fees)
    first, last = days[0], days[-1]
    return {"days": len(days), "opening_total_asset": fen_text(first.opening_total),
            "closing_total_asset": fen_text(last.closing_total),
            "realized_pnl": fen_text(sum((d.realized for d in days), ZERO)),
            "unrealized_pnl": fen_text(last.unrealized), "pnl": fen_text(last.closing_total - first.opening_total),
            "fees": fees_wire(fees), "turnover": fen_text(sum((d.turnover for d in days), ZERO)),
            "trades": sum(d.trades for d in days)}


def pnl_by_code(days: Sequence[DayStatement], code: str | None = None) -> list[dict[str, Any]]:
    """Per code over `days`: bought and sold (yuan, fees excluded), realized P&L and fees, and the
    holding after the last day: position (shares), cost_price (成本价, to the li), cost basis, price
    and unrealized P&L. Codes neither traded nor held in the range are left out."""
    acc: dict[str, CodeDay] = {}
    for d in days:
        for line in d.codes:
            if code is not None and line.code != code:
                continue
            prev = acc.get(line.code, CodeDay(line.code))
            acc[line.code] = _add(prev, bought=line.bought, sold=line.sold, bought_volume=line.bought_volume,
                                  sold_volume=line.sold_volume, fees=line.fees, realized=line.realized)
    final = {line.code: line for line in days[-1].codes} if days else {}
    out = []
    for c in sorted(acc):
        a, end = acc[c], final.get(c, CodeDay(c))
        out.append({"code": c, "bought": fen_text(a.bought), "bought_volume": a.bought_volume,
                    "sold": fen_text(a.sold), "sold_volume": a.sold_volume, "realized_pnl": fen_text(a.realized),
                    "fees": fees_wire(a.fees), "position": end.volume,
                    "cost_price": li_text(Holding(end.volume, end.cost).cost_price), "cost_basis": fen_text(end.cost),
                    "price": li_text(end.price), "market_value": fen_text(end.market_value),
                    "unrealized_pnl": fen_text(end.unrealized)})
    return out


def table(days: Sequence[Mapping[str, Any]]) -> str:
    """Statement days in their wire form (DayStatement.to_wire) for people: one line a day, yuan."""
    cols = (("date", "date"), ("opening", "opening_total_asset"), ("closing", "closing_total_asset"),
            ("cash", "cash"), ("market value", "market_value"), ("realized", "realized_pnl"),
            ("unrealized", "unrealized_pnl"), ("fees", "fees"), ("turnover", "turnover"), ("trades", "trades"))
    rows = [tuple(h for h, _ in cols)]
    for d in days:
        rows.append(tuple(str(d[k]["total"] if k == "fees" else d[k]) for _, k in cols))
    widths = [max(len(r[i]) for r in rows) for i in range(len(cols))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths, strict=True)))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
