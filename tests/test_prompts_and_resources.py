"""Prompts and resources outside the tools: resources/list names every configured account's
resources, and requests that cannot be answered are typed JSON-RPC errors (-32602, invalid params)
with the names sorted and one log line, not code 0 and a traceback. On both protocol eras."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Session, make_worker, open_session
from mcp import MCPError
from mcp.types import INVALID_PARAMS

from qmt_mcp.clock import ManualClock
from qmt_mcp.config import parse_config

pytestmark = pytest.mark.anyio
TWO_ACCOUNTS = {"accounts": {"sim": {"account_id": "88000001"}, "spare": {"account_id": "88000002"}}}


@pytest.fixture(params=["legacy", "auto"], ids=["2025-11-25", "2026-07-28"])
async def s(request: Any, clock: ManualClock, tmp_path: Path) -> AsyncIterator[Session]:
    worker = make_worker(parse_config(TWO_ACCOUNTS), tmp_path / "h", clock)
    async with open_session(worker, clock, mode=request.param) as session:
        yield session
    await worker.close()


async def _refused(call: Any) -> MCPError:
    with pytest.raises(MCPError) as info:
        await call
    return info.value


def _no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []


async def test_prompt_without_its_required_arguments_is_invalid_params_naming_them_sorted(
    s: Session, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    err = await _refused(s.client.get_prompt("place_order_safely", {"account": "sim"}))
    assert err.error.code == INVALID_PARAMS
    assert err.error.data == {"prompt": "place_order_safely", "missing": ["code", "side", "volume"], "unknown": []}
    assert "code, side, volume" in err.error.message
    assert len([r for r in caplog.records if "prompts/get" in r.getMessage()]) == 1
    _no_tracebacks(caplog)


async def test_unknown_prompt_is_invalid_params(s: Session, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    err = await _refused(s.client.get_prompt("no_such_prompt", {}))
    assert err.error.code == INVALID_PARAMS
    assert err.error.data == {"prompt": "no_such_prompt",
                              "known": ["place_order_safely", "reconcile_unknown_order", "review_portfolio"]}
    _no_tracebacks(caplog)


async def test_prompt_given_an_argument_it_does_not_take_is_invalid_params(
    s: Session, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    err = await _refused(s.client.get_prompt("review_portfolio", {"account": "sim", "zeta": "1", "alpha": "2"}))
    assert err.error.code == INVALID_PARAMS
    assert err.error.data == {"prompt": "review_portfolio", "missing": [], "unknown": ["alpha", "zeta"]}
    _no_tracebacks(caplog)


async def test_prompt_with_its_arguments_renders(s: Session) -> None:
    got = await s.client.get_prompt("reconcile_unknown_order", {"account": "sim", "client_order_id": "abc-1"})
    assert "abc-1" in got.messages[0].content.text  # type: ignore[union-attr]


@pytest.mark.parametrize("uri", [
    "qmt://nothing/here",                   # no resource or template matches
    "qmt://accounts/nosuch/asset",          # a template matches; the worker knows no such account
    "qmt://accounts/sim/orders/999999",     # no such order
    "qmt://accounts/sim/orders/abc",        # not an order id
])
async def test_reading_an_unknown_resource_is_invalid_params(
    s: Session, caplog: pytest.LogCaptureFixture, uri: str,
) -> None:
    caplog.set_level(logging.INFO)
    err = await _refused(s.client.read_resource(uri))
    assert err.error.code == INVALID_PARAMS
    _no_tracebacks(caplog)


async def test_resource_list_names_each_configured_accounts_events_positions_and_asset(s: Session) -> None:
    listed = {str(r.uri): r for r in (await s.client.list_resources()).resources}
    assert set(listed) == {"qmt://health"} | {
        f"qmt://accounts/{a}/{part}" for a in ("sim", "spare") for part in ("events", "positions", "asset",
                                                                             "conditions")} | {
        f"ui://qmt/{view}.html" for view in ("order-ticket", "portfolio", "chart")}   # MCP Apps (test_apps.py)
    assert listed["qmt://accounts/spare/asset"].mime_type == "application/json"
    assert listed["qmt://accounts/spare/asset"].title == "Asset (spare)"
    templates = {t.uri_template for t in (await s.client.list_resource_templates()).resource_templates}
    assert templates == {f"qmt://accounts/{{account}}/{part}"
                         for part in ("events", "orders/{order_id}", "positions", "asset", "statement/{date}",
                                      "conditions")} | {"qmt://quotes/{code}", "qmt://klines/{code}/{period}"}
    for uri in listed:  # every listed resource reads
        assert (await s.client.read_resource(uri)).contents
