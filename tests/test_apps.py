"""MCP Apps through the SDK's own Client: preview_order, get_positions and get_klines carry their view
(`_meta.ui.resourceUri`), each view reads back as an MCP App HTML document, decide_approval is app-only
and decides a waiting order as the channel "app" only where `[approval] channels` lists it, and a
client without the extension gets the results it always got. The views in a real host and browser:
tests/test_apps_browser.py."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import Session, make_worker, open_session, serve_worker
from mcp.client import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID

from qmt_mcp.clock import ManualClock
from qmt_mcp.config import parse_config
from qmt_mcp.domain.errors import ErrorCode, QmtError
from qmt_mcp.server.supervisor import socket_path
from qmt_mcp.server.worker_client import WorkerClient

pytestmark = pytest.mark.anyio
APPS = {"extensions": [advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})]}
VIEWS = {"preview_order": "ui://qmt/order-ticket.html", "get_positions": "ui://qmt/portfolio.html",
         "get_klines": "ui://qmt/chart.html"}
ALL = {"approval": {"human": "all"}}


@asynccontextmanager
async def _session(clock: ManualClock, tmp_path: Path, sections: dict[str, Any], apps: bool = True,
                   ) -> AsyncIterator[Session]:
    worker = make_worker(parse_config(sections), tmp_path / "home", clock)
    try:
        async with open_session(worker, clock, **(APPS if apps else {})) as s:
            yield s
    finally:
        await worker.close()


async def _waiting(s: Session, cid: str) -> dict[str, Any]:
    order = (await s.ok("place_order", **await s.marketable_buy(cid)))["order"]
    assert order["status"] == "pending_approval"
    return dict(order)


def _audited(home: Path, call: str) -> list[dict[str, Any]]:
    lines = (home / "audit.jsonl").read_text(encoding="utf-8").splitlines()
    return [r for r in map(json.loads, lines) if r.get("call") == call]


async def test_the_three_tools_carry_their_view_and_decide_approval_is_for_the_view_only(
    clock: ManualClock, tmp_path: Path,
) -> None:
    async with _session(clock, tmp_path, {}) as s:
        tools = {t.name: t for t in (await s.client.list_tools()).tools}
        for name, uri in VIEWS.items():
            assert (tools[name].meta or {})["ui"] == {"resourceUri": uri}, name
        assert (tools["decide_approval"].meta or {})["ui"] == {
            "resourceUri": "ui://qmt/order-ticket.html", "visibility": ["app"]}
        assert set(tools["decide_approval"].input_schema["properties"]) == {"approval_id", "decision", "note"}
        unbound = [n for n, t in tools.items() if "ui" in (t.meta or {})]
        assert sorted(unbound) == sorted([*VIEWS, "decide_approval"])
        caps = s.client.server_capabilities
        assert caps is not None and EXTENSION_ID in (caps.extensions or {})


async def test_each_view_reads_back_as_one_self_contained_mcp_app_document(clock: ManualClock, tmp_path: Path) -> None:
    async with _session(clock, tmp_path, {}) as s:
        listed = {str(r.uri): r for r in (await s.client.list_resources()).resources}
        for uri in VIEWS.values():
            assert listed[uri].mime_type == APP_MIME_TYPE
            (content,) = (await s.client.read_resource(uri)).contents
            assert content.mime_type == APP_MIME_TYPE
            html = getattr(content, "text", "")
            assert html.lower().startswith("<!doctype html>") and "<script>" in html and "<style>" in html, uri
            # Nothing from the network (the host's CSP forbids it): no external script, style, image or
            # fetch; data goes in as text, never as markup.
            assert not re.search(r"<(script|link|img|iframe)[^>]*\s(src|href)=", html, re.I), uri
            assert "fetch(" not in html and "XMLHttpRequest" not in html and "innerHTML" not in html, uri
            assert len(html.encode()) < 40_000, (uri, len(html.encode()))


async def test_a_client_without_apps_gets_the_same_results(clock: ManualClock, tmp_path: Path) -> None:
    worker = make_worker(parse_config({"accounts": {"sim": {"account_id": "88000001",
                                                            "positions": {"600000.SH": 1000}}}}),
                         tmp_path / "home", clock)
    try:
        async with open_session(worker, clock) as plain, open_session(worker, clock, **APPS) as apps:
            order = {"account": "sim", "code": "600000.SH", "side": "sell", "volume": 100, "price": 10}
            for tool, args in [("preview_order", order), ("get_positions", {"account": "sim"}),
                               ("get_klines", {"code": "600000.SH", "period": "1d", "count": 20})]:
                a = await plain.client.call_tool(tool, args)
                b = await apps.client.call_tool(tool, args)
                assert a.structured_content is not None and a.structured_content["ok"], tool
                assert (a.structured_content, a.content, a.is_error) == (b.structured_content, b.content,
                                                                          b.is_error), tool
    finally:
        await worker.close()


async def test_decide_approval_from_the_ticket_sends_the_waiting_order_as_channel_app(
    clock: ManualClock, tmp_path: Path,
) -> None:
    async with _session(clock, tmp_path, ALL) as s:
        waiting = await _waiting(s, "app-ok-1")
        decided = await s.ok("decide_approval", approval_id=waiting["approval"]["approval_id"], decision="approve",
                             note="looks right")
        assert decided["decision"] == "approved" and decided["order"]["status"] == "succeeded"
        events = (await s.ok("get_order", account="sim", client_order_id="app-ok-1"))["events"]
        (event,) = [e for e in events if e["type"] == "approval_decided"]
        assert (event["channel"], event["note"]) == ("app", "looks right")
        again = await s.error("decide_approval", approval_id=waiting["approval"]["approval_id"], decision="deny")
        assert again["code"] == "INVALID_ARGUMENT" and again["details"]["reason"] == "already_decided"
    (record, _) = _audited(tmp_path / "home", "decide_approval")
    assert record["by"] == {"operator": False, "channel": "app"} and record["outcome"]["ok"]


async def test_deny_from_the_ticket_ends_the_order_denied_with_the_note(clock: ManualClock, tmp_path: Path) -> None:
    async with _session(clock, tmp_path, ALL) as s:
        waiting = await _waiting(s, "app-no-1")
        decided = await s.ok("decide_approval", approval_id=waiting["approval"]["approval_id"], decision="deny",
                             note="not today")
        assert decided["order"]["status"] == "denied" and "not today" in decided["order"]["status_msg"]
        assert (await s.ok("get_trades", account="sim"))["trades"] == []


async def test_decide_approval_is_refused_where_approval_channels_leave_out_app(
    clock: ManualClock, tmp_path: Path,
) -> None:
    async with _session(clock, tmp_path, {"approval": {"human": "all", "channels": ["console", "cli"]}}) as s:
        waiting = await _waiting(s, "app-off-1")
        refused = await s.error("decide_approval", approval_id=waiting["approval"]["approval_id"], decision="approve")
        assert refused["code"] == "UNAUTHORIZED" and refused["details"]["channel"] == "app"
        still = (await s.ok("get_order", account="sim", client_order_id="app-off-1"))["order"]
        assert still["status"] == "pending_approval"


async def test_decide_approval_with_an_unknown_or_malformed_id_is_refused(clock: ManualClock, tmp_path: Path) -> None:
    async with _session(clock, tmp_path, ALL) as s:
        unknown = await s.error("decide_approval", approval_id="ap-nosuch", decision="approve")
        assert unknown["code"] == "INVALID_ARGUMENT" and unknown["details"]["reason"] == "unknown_approval"
        malformed = await s.error("decide_approval", approval_id="ap 1; drop", decision="approve")
        assert malformed["code"] == "INVALID_ARGUMENT"
        channel = await s.error("decide_approval", approval_id="ap-nosuch", decision="approve", channel="cli")
        assert channel["code"] == "INVALID_ARGUMENT" and channel["details"]["arguments"] == ["channel"]


async def test_a_client_without_apps_cannot_decide(clock: ManualClock, tmp_path: Path) -> None:
    """Without the extension there is no ticket: the call can only be an agent's own."""
    async with _session(clock, tmp_path, ALL, apps=False) as s:
        waiting = await _waiting(s, "app-agent-1")
        refused = await s.error("decide_approval", approval_id=waiting["approval"]["approval_id"], decision="approve")
        assert refused["code"] == "UNAUTHORIZED"
        still = (await s.ok("get_order", account="sim", client_order_id="app-agent-1"))["order"]
        assert still["status"] == "pending_approval"


async def test_the_servers_token_decides_only_as_app_and_the_operator_key_never_as_app(
    clock: ManualClock, tmp_path: Path,
) -> None:
    worker = make_worker(parse_config(ALL), tmp_path / "home", clock)
    sock = socket_path(Path(tempfile.mkdtemp(prefix="qmt-test-")))
    try:
        async with serve_worker(worker, sock) as server_token:
            operator = WorkerClient.for_uds(str(sock), worker.operator_key)
            try:
                with pytest.raises(QmtError) as not_app:
                    await server_token.call("decide_approval", {"approval_id": "ap-x", "decision": "approve",
                                                                "channel": "console"})
                assert not_app.value.code is ErrorCode.UNAUTHORIZED
                with pytest.raises(QmtError) as claimed:
                    await operator.call("decide_approval", {"approval_id": "ap-x", "decision": "approve",
                                                            "channel": "app"})
                assert claimed.value.code is ErrorCode.UNAUTHORIZED
                with pytest.raises(QmtError) as unknown:   # each with its own channel: past the gate
                    await server_token.call("decide_approval", {"approval_id": "ap-x", "decision": "approve",
                                                                "channel": "app"})
                assert unknown.value.code is ErrorCode.INVALID_ARGUMENT
                with pytest.raises(QmtError) as listing:   # the server's token lists nothing
                    await server_token.call("list_approvals", {})
                assert listing.value.code is ErrorCode.UNAUTHORIZED
            finally:
                await operator.aclose()
    finally:
        await worker.close()
