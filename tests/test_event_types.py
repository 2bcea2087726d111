"""Events are types: one class per event type, appended one way, and the journal alone sets an
event's seq, time and type; each event's wire form is the one it always had."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import START

from qmt_mcp.domain.events import (
    EVENT_CLASSES,
    AccountStatus,
    AccountStatusEvent,
    Event,
    EventType,
    ReconciledEvent,
    RiskEvent,
    TradeEvent,
    UnmatchedEvent,
)
from qmt_mcp.domain.orders import Side
from qmt_mcp.domain.status import OrderStatus
from qmt_mcp.domain.timeutil import iso
from qmt_mcp.worker.journal import Journal

CONTRACT_TYPES = {"order_status", "trade", "order_error", "cancel_error", "account_status", "disconnected",
                  "reconciled", "risk",
                  "approval_requested", "approval_decided",   # the 0.2 additions' approvals
                  "condition_armed", "condition_triggered", "condition_canceled", "condition_expired",
                  "condition_failed"}   # ... and conditional orders


def test_every_event_type_has_exactly_one_class_and_the_contracts_types_are_all_there() -> None:
    assert set(EVENT_CLASSES) == set(EventType)
    assert {cls.type for cls in EVENT_CLASSES.values()} == set(EventType)
    assert CONTRACT_TYPES | {"gap", "unmatched"} == {t.value for t in EventType}


@pytest.mark.parametrize("name", ["seq", "time", "type"])
def test_an_event_class_cannot_declare_a_field_the_journal_sets(name: str) -> None:
    with pytest.raises(TypeError, match=name):
        type(f"Sneaky_{name}", (Event,), {"__annotations__": {name: "str"}, "__module__": __name__})


def test_a_second_class_for_one_event_type_is_refused() -> None:
    with pytest.raises(TypeError, match="risk"):
        @dataclass(frozen=True, kw_only=True)
        class AnotherRisk(Event):
            type = EventType.RISK
            note: str


def test_the_journal_sets_seq_time_and_type_of_what_it_appends(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "worker.sqlite")
    first = journal.append(RiskEvent(account="sim", rule="RESET", message="a"), START)
    second = journal.append(AccountStatusEvent(account="sim", status=AccountStatus.CLOSED), START)
    assert first == {"seq": 1, "time": iso(START), "account": "sim", "type": "risk", "rule": "RESET", "message": "a"}
    assert second == {"seq": 2, "time": iso(START), "account": "sim", "type": "account_status", "status": "closed"}
    assert journal.events("sim", 0, 10) == [first, second]   # what is read back is what was appended
    journal.close()


def test_a_stored_payload_never_overwrites_the_journals_seq_time_type_or_account(tmp_path: Path) -> None:
    """A row written before events were typed may hold a payload key named like the envelope's:
    reading it back, the journal's own columns win on every read path."""
    journal = Journal(tmp_path / "worker.sqlite")
    forged = {"seq": 999, "time": "forged", "type": "trade", "account": "other", "order_id": 7,
              "client_order_id": "x", "rule": "RESET", "message": "m"}
    with journal._db:
        journal._db.execute(
            "INSERT INTO events (account, time, type, order_id, client_order_id, data) VALUES (?,?,?,?,?,?)",
            ("sim", iso(START), "risk", None, None, json.dumps(forged)))
    want = [{"seq": 1, "time": iso(START), "account": "sim", "type": "risk", "rule": "RESET", "message": "m"}]
    assert journal.events("sim", 0, 10) == want
    assert journal.events_after(0, 10) == want
    assert journal.latest_events("sim", 10) == want
    journal.close()


def test_a_trade_event_carries_exact_figures_and_shows_them_as_the_wire_always_had() -> None:
    trade = TradeEvent(account="sim", order_id=5, client_order_id="c1", code="600000.SH", side=Side.SELL,
                       trade_id="T1", price=Decimal("10.125"), volume=100, amount=Decimal("1012.5"),
                       commission=Decimal("5.004"), stamp_duty=Decimal("0.50625"), transfer_fee=Decimal("0.010125"),
                       fees=Decimal("5.520375"), fee_detail="itemized")
    assert trade.payload() == {
        "code": "600000.SH", "side": "sell", "trade_id": "T1", "price": 10.125, "volume": 100, "amount": 1012.5,
        "commission": 5.0, "stamp_duty": 0.51, "transfer_fee": 0.01, "fees": 5.52, "fee_detail": "itemized",
    }


def test_an_unmatched_push_shows_only_the_figures_its_push_had() -> None:
    order = UnmatchedEvent(account="sim", order_id=9, push="order", code="600000.SH", side=Side.BUY, volume=100,
                           status=OrderStatus.REPORTED)
    assert order.payload() == {"push": "order", "code": "600000.SH", "side": "buy", "volume": 100,
                               "status": "reported", "message": order.message}
    assert "reconciliation records the broker's order" in order.message
    fill = UnmatchedEvent(account="sim", order_id=9, push="trade", code="600000.SH", side=Side.BUY, trade_id="T9",
                          price=Decimal("10"), volume=100, amount=Decimal("1000"), commission=Decimal(5),
                          stamp_duty=Decimal(0), transfer_fee=Decimal("0.01"), fees=Decimal("5.01"),
                          fee_detail="derived")
    assert list(fill.payload()) == ["push", "code", "side", "trade_id", "price", "volume", "amount", "commission",
                                    "stamp_duty", "transfer_fee", "fees", "fee_detail", "message"]


def test_a_reconciled_event_of_an_imported_order_shows_no_previous_status() -> None:
    ev = ReconciledEvent(account="sim", order_id=3, client_order_id="ext-3", code="600000.SH", side=Side.BUY,
                         status=OrderStatus.SUCCEEDED, volume=100, traded_volume=100, traded_price=Decimal("10.000"),
                         status_msg="", reason="start", resolution="external", previous_status=None)
    assert ev.payload() == {"code": "600000.SH", "side": "buy", "status": "succeeded", "volume": 100,
                            "traded_volume": 100, "traded_price": 10.0, "status_msg": "", "reason": "start",
                            "resolution": "external", "previous_status": None}
