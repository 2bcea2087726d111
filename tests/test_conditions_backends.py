"""Conditional orders beyond the in-process simulator: on the xtquant backend (the wheel's own
xttrader.py over the simulated native layer, its pushes from xtquant's threads), and through the
SDK's Client over stdio against `qmt-mcp serve` and the worker it spawns."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import make_worker, on_backend, open_session
from mcp import Client, StdioServerParameters
from test_conditions import CODE, STOP_PATH, at, at_quote, condition, sections, write_ticks

from qmt_mcp.clock import ManualClock

pytestmark = pytest.mark.anyio


async def test_a_stop_loss_fires_once_on_the_xtquant_backend(clock: ManualClock, tmp_path: Path) -> None:
    write_ticks(tmp_path / "data", STOP_PATH)
    clock.set(at("09:30:04"))
    worker = make_worker(on_backend("xtquant", sections(tmp_path / "data")), tmp_path / "home", clock)
    try:
        async with open_session(worker, clock) as s:
            assert (await s.ok("health"))["worker"]["backend"] == "xtquant"
            c = (await s.ok("place_conditional_order", account="sim", code=CODE, side="sell", volume=500,
                            trigger={"type": "price_at_or_below", "price": 9.85},
                            order={"order_type": "limit", "price": 9.80}))["condition"]
            await at_quote(s, at("09:30:07"))
            assert (await condition(s, c["condition_id"]))["status"] == "armed"
            await at_quote(s, at("09:30:10"))
            await at_quote(s, at("09:30:13"))
            with anyio.fail_after(10):   # xtquant pushes from its own threads: wait for the journal
                while (fired := await condition(s, c["condition_id"])).get("order_status") != "succeeded":
                    await s.worker.service.next_change().wait()
            assert fired["status"] == "triggered"
            assert [o.remark for o in s.counter.orders.values()] == [c["client_order_id"]]
            trades = (await s.ok("get_trades", account="sim"))["trades"]
            assert [(t["client_order_id"], t["volume"]) for t in trades] == [(c["client_order_id"], 500)]
    finally:
        await worker.close()


async def _call(c: Client, tool: str, **args: Any) -> dict[str, Any]:
    res = await c.call_tool(tool, args)
    assert res.structured_content is not None
    return res.structured_content


@pytest.mark.skipif(sys.platform == "win32", reason="Unix socket worker")
async def test_the_condition_tools_over_stdio_arm_list_fire_and_cancel(tmp_path: Path) -> None:
    home = tmp_path / "home"
    params = StdioServerParameters(command=sys.executable, args=["-m", "qmt_mcp", "serve"],
                                   env={"QMT_MCP_HOME": str(home)})
    with anyio.fail_after(120):
        async with Client(params) as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            assert tools["list_conditional_orders"].annotations.read_only_hint is True
            assert tools["cancel_conditional_order"].annotations.idempotent_hint is True
            assert tools["place_conditional_order"].annotations.destructive_hint is True
            q = (await _call(c, "get_quote", codes=["600000"]))["quotes"][0]
            now = q["time"]
            # A buy at the ask, due now: the spawned worker's own tick sends it.
            due = await _call(c, "place_conditional_order", account="sim", code="600000", side="buy", volume=100,
                              trigger={"type": "time", "at": now},
                              order={"order_type": "limit", "price": q["ask_prices"][4]})
            assert due["ok"], due
            far = await _call(c, "place_conditional_order", account="sim", code="600000.SH", side="buy", volume=100,
                              trigger={"type": "price_at_or_below", "price": q["down_limit"]},
                              order={"order_type": "market"})
            assert far["ok"] and far["condition"]["status"] == "armed"
            cid = due["condition"]["client_order_id"]
            for _ in range(200):   # another process: polled, bounded
                listed = {x["condition_id"]: x for x in (await _call(c, "list_conditional_orders",
                                                                     account="sim"))["conditions"]}
                if listed[due["condition"]["condition_id"]]["status"] == "triggered":
                    break
                await anyio.sleep(0.05)
            order = await _call(c, "get_order", account="sim", client_order_id=cid, wait_seconds=10)
            assert order["ok"] and order["order"]["status"] == "succeeded"
            # Nobody called for the order it sent: it is on the audit trail all the same.
            trail = [json.loads(line) for line in (home / "audit.jsonl").read_text().splitlines()]
            fired = [r for r in trail if r["call"] == "condition_fired"]
            assert [r["args"]["client_order_id"] for r in fired] == [cid]
            assert fired[0]["by"] == {"operator": False, "channel": "condition"} and fired[0]["outcome"]["ok"]
            canceled = await _call(c, "cancel_conditional_order", account="sim",
                                   condition_id=far["condition"]["condition_id"])
            assert canceled["ok"] and canceled["condition"]["status"] == "canceled"
            active = await _call(c, "list_conditional_orders", account="sim", active_only=True)
            assert active["conditions"] == []
            bad = await _call(c, "place_conditional_order", account="sim", code="600000", side="buy", volume=100,
                              trigger={"type": "price_at_or_above"})
            assert bad["ok"] is False and bad["error"]["code"] == "INVALID_ARGUMENT"
