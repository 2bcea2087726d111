"""Arguments as agents and clients really send them: a name a tool does not take is refused, never
ignored (a typo must not silently change an order), and bare numbers for codes and dates, as newer
clients send them, are read as the digits they were typed as."""

from __future__ import annotations

import pytest
from conftest import Session

pytestmark = pytest.mark.anyio


async def test_an_unknown_argument_is_refused_and_named_and_no_order_is_sent(session: Session) -> None:
    order = await session.marketable_buy("typo-1")
    err = await session.error("place_order", **order, qty=500, wait_second=5)
    assert err["code"] == "INVALID_ARGUMENT" and err["state_changed"] == "no"
    assert err["details"]["arguments"] == ["qty", "wait_second"]
    assert "wait_seconds" in err["hint"]
    assert session.counter.orders == {}
    assert (await session.ok("get_orders", account="sim"))["orders"] == []


async def test_a_tool_without_arguments_refuses_any(session: Session) -> None:
    err = await session.error("health", verbose=True)
    assert err["code"] == "INVALID_ARGUMENT" and err["details"]["arguments"] == ["verbose"]


async def test_input_schemas_say_no_other_argument_is_taken(session: Session) -> None:
    for tool in (await session.client.list_tools()).tools:
        assert tool.input_schema.get("additionalProperties") is False, tool.name


async def test_a_code_sent_as_a_number_is_read_as_its_six_digits(session: Session) -> None:
    quotes = (await session.ok("get_quote", codes=[600000, 1]))["quotes"]
    assert [q["code"] for q in quotes] == ["600000.SH", "000001.SZ"]
    assert (await session.ok("get_instrument", code=300750))["code"] == "300750.SZ"
    err = await session.error("get_instrument", code=1234567)
    assert err["code"] == "INVALID_ARGUMENT"


async def test_dates_sent_as_numbers_are_read_as_typed(session: Session) -> None:
    as_text = await session.ok("get_klines", code="600519.SH", period="1d", start="20260101", count=5)
    as_number = await session.ok("get_klines", code=600519, period="1d", start=20260101, count=5)
    assert as_number["bars"] == as_text["bars"] and as_number["code"] == "600519.SH"
