"""Every contract tool is listed with a title, description, annotations and an envelope outputSchema,
and answers through the SDK Client with structuredContent that validates against it."""

from __future__ import annotations

import re

import jsonschema
import pytest
from conftest import Session
from pydantic import ValidationError

from qmt_mcp.server import schemas as S

CONTRACT_TOOLS = {
    "health", "list_accounts", "get_quote", "get_klines", "get_ticks", "search_instruments", "get_instrument",
    "list_sectors", "get_asset", "get_positions", "get_orders", "get_trades", "get_order", "preview_order",
    "place_order", "cancel_order", "get_risk_status", "reset_risk", "get_order_events",
    "decide_approval",   # 0.2: the MCP Apps order ticket's, app-only (tests/test_apps.py)
    "get_statement", "get_pnl",   # 0.2: History and statements
    # 0.2: conditional orders held by the gateway
    "place_conditional_order", "list_conditional_orders", "cancel_conditional_order",
}
DESTRUCTIVE = {"place_order", "cancel_order", "reset_risk", "decide_approval", "place_conditional_order",
               "cancel_conditional_order"}

pytestmark = pytest.mark.anyio


async def test_every_contract_tool_is_listed_with_title_annotations_and_envelope_schema(session: Session) -> None:
    tools = {t.name: t for t in (await session.client.list_tools()).tools}
    assert set(tools) == CONTRACT_TOOLS
    for name, tool in tools.items():
        assert tool.title, name
        assert tool.description and len(tool.description) > 40, name
        assert tool.annotations is not None
        if name in DESTRUCTIVE:
            assert tool.annotations.destructive_hint is True, name
            assert tool.annotations.read_only_hint is False, name
        else:
            assert tool.annotations.read_only_hint is True, name
        schema = tool.output_schema
        assert schema is not None and schema["required"] == ["ok"], name
        assert "error" in schema["properties"], name


async def test_tool_descriptions_state_units(session: Session) -> None:
    tools = {t.name: t for t in (await session.client.list_tools()).tools}
    for name in ("get_quote", "get_klines", "place_order", "preview_order", "get_positions", "get_asset"):
        assert re.search(r"yuan|shares", tools[name].description or ""), name


async def test_read_tools_answer_with_valid_payloads(session: Session) -> None:
    h = await session.ok("health")
    assert h["worker"]["state"] == "up" and h["worker"]["backend"] == "sim"
    assert h["accounts"]["sim"]["trader"]["state"] == "alive"
    accts = await session.ok("list_accounts")
    assert accts["accounts"] == [{"name": "sim", "account_id": "****0001", "account_type": "STOCK", "live": False}]
    q = (await session.ok("get_quote", codes=["600000.SH", "sz000001", "688981"]))["quotes"]
    assert [x["code"] for x in q] == ["600000.SH", "000001.SZ", "688981.SH"]
    assert all(len(x["bid_prices"]) == 5 and len(x["ask_volumes"]) == 5 for x in q)
    k = await session.ok("get_klines", code="600519.SH", period="5m", count=12)
    assert len(k["bars"]) == 12 and k["code"] == "600519.SH"
    t = await session.ok("get_ticks", code="600000.SH", start="20261120095900", end="20261120100000")
    assert len(t["ticks"]) == 21
    s = await session.ok("search_instruments", query="银行")
    assert {x["code"] for x in s["instruments"]} == {"600000.SH", "000001.SZ"}
    assert (await session.ok("search_instruments", sector="科创板"))["instruments"][0]["code"] == "688981.SH"
    i = await session.ok("get_instrument", code="300750.SZ")
    assert i["board"] == "chinext" and i["buy_lot_min"] == 100
    assert "银行" in (await session.ok("list_sectors"))["sectors"]
    a = await session.ok("get_asset", account="sim")
    assert a["cash"] == 1_000_000 and a["total_asset"] == 1_000_000
    assert (await session.ok("get_positions", account="sim"))["positions"] == []
    assert (await session.ok("get_orders", account="sim"))["orders"] == []
    assert (await session.ok("get_trades", account="sim"))["trades"] == []
    r = await session.ok("get_risk_status", account="sim")
    assert r["accounts"]["sim"]["breaker"]["tripped"] is False
    e = await session.ok("get_order_events", account="sim")
    assert e == {"ok": True, "events": [], "next_seq": 0}
    reset = await session.ok("reset_risk", account="sim", note="start of day check")
    assert reset["breaker"] == {"tripped": False}


async def test_argument_validation_failures_are_typed_envelopes(session: Session) -> None:
    err = await session.error("get_quote", codes=[])
    assert err["code"] == "INVALID_ARGUMENT"
    err = await session.error("place_order", account="sim", code="600000.SH", side="hold", volume=100, price=10)
    assert err["code"] == "INVALID_ARGUMENT" and "side" in err["details"]["arguments"]
    err = await session.error("get_klines", code="600000.SH", period="2m")
    assert err["code"] == "INVALID_ARGUMENT"
    err = await session.error("place_order", account="sim", code="600000.SH", side="buy", volume="many", price=10)
    assert err["code"] == "INVALID_ARGUMENT" and err["state_changed"] == "no"


async def test_error_text_content_carries_code_and_hint(session: Session) -> None:
    res = await session.client.call_tool("get_instrument", {"code": "999999.SH"})
    assert res.is_error
    text = res.content[0].text  # type: ignore[union-attr]
    assert text.startswith("UNKNOWN_INSTRUMENT:") and "hint:" in text


async def test_resources_and_templates_are_readable(session: Session) -> None:
    templates = {t.uri_template for t in (await session.client.list_resource_templates()).resource_templates}
    assert {"qmt://accounts/{account}/events", "qmt://accounts/{account}/orders/{order_id}",
            "qmt://accounts/{account}/positions", "qmt://accounts/{account}/asset"} <= templates
    static = {str(r.uri) for r in (await session.client.list_resources()).resources}
    assert "qmt://health" in static
    import json

    health = await session.client.read_resource("qmt://health")
    assert json.loads(health.contents[0].text)["worker"]["state"] == "up"  # type: ignore[union-attr]
    asset = await session.client.read_resource("qmt://accounts/sim/asset")
    assert json.loads(asset.contents[0].text)["cash"] == 1_000_000  # type: ignore[union-attr]
    events = await session.client.read_resource("qmt://accounts/sim/events")
    assert json.loads(events.contents[0].text) == {"events": [], "next_seq": 0}  # type: ignore[union-attr]


async def test_prompts_render_from_the_prompts_directory(session: Session) -> None:
    names = {p.name for p in (await session.client.list_prompts()).prompts}
    assert names == {"place_order_safely", "review_portfolio", "reconcile_unknown_order"}
    p = await session.client.get_prompt(
        "place_order_safely", {"account": "sim", "code": "600000.SH", "side": "buy", "volume": "100"})
    text = p.messages[0].content.text  # type: ignore[union-attr]
    assert "preview_order" in text and "600000.SH" in text
    p = await session.client.get_prompt("reconcile_unknown_order", {"account": "sim", "client_order_id": "abc"})
    assert "abc" in p.messages[0].content.text  # type: ignore[union-attr]


async def test_a_bar_is_declared_by_its_seven_keys_and_checked_by_type_on_the_server(session: Session) -> None:
    """The bars schema names every key (typed fields per bar cost a validating client ~5 µs each)."""
    schema = next(t for t in (await session.client.list_tools()).tools if t.name == "get_klines").output_schema
    assert schema is not None
    bars = jsonschema.validators.validator_for(schema)(schema)
    good = (await session.ok("get_klines", code="600000.SH", count=3))
    assert bars.is_valid(good) and len(good["bars"]) == 3
    bar = good["bars"][0]
    assert not bars.is_valid({**good, "bars": [{k: v for k, v in bar.items() if k != "amount"}]})
    assert not bars.is_valid({**good, "bars": [{**bar, "vwap": 1.0}]})
    assert not bars.is_valid({**good, "bars": [1]})
    # The types the schema gives in words are the model's: a worker answer that drifts is refused.
    with pytest.raises(ValidationError):
        S.GetKlinesResult.model_validate({**good, "bars": [{**bar, "volume": "many"}]})
