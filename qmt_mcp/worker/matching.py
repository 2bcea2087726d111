"""Which of our order records a broker order, fill or error belongs to.

A broker's order id alone does not name one of our orders: a real counter's ids start over every
trading day, and the simulator's start over with a new book (after a corrupt one was moved aside).
Nor does a remark alone: a person typing an order in QMT may type any remark, an agent's id too.
So a broker order belongs to a record only when the fields agree:

- by remark: the record whose client_order_id the remark is, if that record has no broker id yet
  (its first push, or an unknown outcome being reconciled) or has this one, and its code, side,
  volume and time fit the broker's (`OrderRecord.fits`);
- else by id: a record carrying this broker id whose code, side, volume and time fit, and whose
  client_order_id the remark is (or the broker echoed no remark, or the record was imported);
- else none. A broker order that names no record at all (an id we never saw, no usable remark) is an
  order typed by hand: it is imported. One whose id our records carry for a different order is
  ambiguous: a push of it is journaled as `unmatched` and left to reconciliation, which imports it
  (the broker listing it proves it is a real order, and none of ours).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..backends.port import BrokerOrder, BrokerTrade
from ..domain.orders import OrderRecord, client_id_of_remark
from .journal import Journal

# (order id, remark) -> (the record the remark names, the records carrying the id)
Candidates = dict[tuple[int, str], tuple[OrderRecord | None, list[OrderRecord]]]


@dataclass(frozen=True)
class OrderMatch:
    record: OrderRecord | None
    ambiguous: bool = False   # no record fits, but some carry this broker id


def _remark_agrees(rec: OrderRecord, remark: str) -> bool:
    # Our orders travel with their client_order_id as the remark: another remark is another order.
    return rec.external or remark == "" or remark == rec.client_order_id


class Matcher:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def _by_remark(self, name: str, order_id: int, remark: str) -> OrderRecord | None:
        cid = client_id_of_remark(remark)
        if cid is None:
            return None
        rec = self.journal.order_by_client_id(name, cid)
        if rec is None or rec.order_id not in (None, order_id):
            return None
        return rec

    def order(self, name: str, bo: BrokerOrder) -> OrderMatch:
        rec = self._by_remark(name, bo.order_id, bo.remark)
        if rec is not None and rec.fits(bo.code, bo.side, bo.volume, bo.time):
            return OrderMatch(rec)
        same_id = self.journal.orders_by_id(name, bo.order_id)
        for rec in reversed(same_id):   # newest first: the one the broker holds now, if any
            if rec.fits(bo.code, bo.side, bo.volume, bo.time) and _remark_agrees(rec, bo.remark):
                return OrderMatch(rec)
        return OrderMatch(None, ambiguous=bool(same_id))

    def trade(self, name: str, t: BrokerTrade, seen: Candidates | None = None) -> OrderRecord | None:
        """The record of the order a fill belongs to, or None. `seen` keeps the records looked up per
        (order id, remark) across the fills of one listing, so an order's fills read it once."""
        key = (t.order_id, t.remark)
        found = None if seen is None else seen.get(key)
        if found is None:
            found = (self._by_remark(name, t.order_id, t.remark), self.journal.orders_by_id(name, t.order_id))
            if seen is not None:
                seen[key] = found
        rec, same_id = found
        if rec is not None and rec.fits_fill(t.code, t.side, t.time):
            return rec
        for rec in reversed(same_id):
            if rec.fits_fill(t.code, t.side, t.time) and _remark_agrees(rec, t.remark):
                return rec
        return None

    def by_id(self, name: str, order_id: int, remark: str = "") -> OrderRecord | None:
        """The record an order error or cancel error is about (they carry no code, side or volume):
        by remark, else the newest record with this id whose remark agrees."""
        rec = self._by_remark(name, order_id, remark)
        if rec is not None:
            return rec
        for rec in reversed(self.journal.orders_by_id(name, order_id)):
            if _remark_agrees(rec, remark):
                return rec
        return None
