"""The real thing over stdio: `qmt-mcp serve` spawns its worker (Unix socket, bearer token) and the
SDK Client drives it; killing the worker with SIGKILL is survived and reported by health."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

pytestmark = [pytest.mark.anyio, pytest.mark.skipif(sys.platform == "win32", reason="Unix socket worker")]


def _worker_pids(home: Path) -> list[int]:
    """Worker processes serving this home (found through /proc: their command line names the socket)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
            env = (entry / "environ").read_bytes()
        except OSError:
            continue
        if b"worker" in cmd and b"qmt_mcp" in cmd and f"QMT_MCP_HOME={home}".encode() in env.split(b"\0"):
            pids.append(int(entry.name))
    return pids


async def _call(c: Client, tool: str, **args: Any) -> dict[str, Any]:
    res = await c.call_tool(tool, args)
    assert res.structured_content is not None
    return res.structured_content


async def test_stdio_server_trades_through_its_spawned_worker_and_survives_a_kill(tmp_path: Path) -> None:
    home = tmp_path / "home"
    params = StdioServerParameters(command=sys.executable, args=["-m", "qmt_mcp", "serve"],
                                   env={"QMT_MCP_HOME": str(home)})
    with anyio.fail_after(120):
        async with Client(params) as c:
            h = await _call(c, "health")
            assert h["worker"]["state"] == "up" and h["worker"]["restarts"] == 0
            q = (await _call(c, "get_quote", codes=["600000"]))["quotes"][0]
            placed = await _call(c, "place_order", account="sim", code="600000.SH", side="buy", volume=200,
                                 price=q["ask_prices"][2], client_order_id="e2e-1", wait_seconds=5)
            assert placed["order"]["status"] == "succeeded"
            bad = await _call(c, "place_order", account="sim", code="600000.SH", side="buy", volume=150,
                              price=q["ask_prices"][0])
            assert bad["ok"] is False and bad["error"]["code"] == "LOT_SIZE"
            events = (await _call(c, "get_order_events", account="sim"))["events"]
            assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)

            pids = _worker_pids(home)
            assert len(pids) == 1
            os.kill(pids[0], signal.SIGKILL)
            while True:  # bounded by fail_after above; the supervisor restarts the worker
                h = await _call(c, "health")
                if h["worker"]["state"] == "up" and h["worker"]["restarts"] == 1:
                    break
                await anyio.sleep(0.1)
            assert _worker_pids(home) != pids
            # The paper account and the order journal survived the kill.
            pos = (await _call(c, "get_positions", account="sim"))["positions"]
            assert [(p["code"], p["volume"]) for p in pos] == [("600000.SH", 200)]
            replay = await _call(c, "place_order", account="sim", code="600000.SH", side="buy", volume=200,
                                 price=q["ask_prices"][2], client_order_id="e2e-1")
            assert replay["idempotent_replay"] is True
    assert not _worker_pids(home), "the worker must stop with the server"
    assert (home / "audit.jsonl").exists()


async def test_worker_refuses_requests_without_the_bearer_token(tmp_path: Path) -> None:
    import httpx

    home = tmp_path / "home"
    params = StdioServerParameters(command=sys.executable, args=["-m", "qmt_mcp", "serve"],
                                   env={"QMT_MCP_HOME": str(home)})
    with anyio.fail_after(60):
        async with Client(params) as c:
            await _call(c, "health")
            sock = next(home.glob("*.sock"), None)
            assert sock is not None
            async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(sock)),
                                         base_url="http://w") as http:
                r = await http.post("/v1/get_asset", json={"account": "sim"})
                assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHORIZED"
                r = await http.post("/v1/get_asset", json={"account": "sim"},
                                    headers={"Authorization": "Bearer wrong"})
                assert r.status_code == 401


async def test_every_tool_over_stdio_validates_against_its_output_schema(tmp_path: Path) -> None:
    import jsonschema

    params = StdioServerParameters(command=sys.executable, args=["-m", "qmt_mcp", "serve"],
                                   env={"QMT_MCP_HOME": str(tmp_path / "home")})
    with anyio.fail_after(120):
        async with Client(params) as c:
            schemas = {t.name: t.output_schema for t in (await c.list_tools()).tools}
            q = (await _call(c, "get_quote", codes=["600000.SH"]))["quotes"][0]
            rest = await _call(c, "place_order", account="sim", code="600000.SH", side="buy", volume=100,
                               price=q["bid_prices"][4], client_order_id="rest-1")
            calls: list[tuple[str, dict[str, Any]]] = [
                ("health", {}), ("list_accounts", {}), ("get_quote", {"codes": ["600000.SH", "830799"]}),
                ("get_klines", {"code": "600000.SH", "period": "15m", "count": 4}),
                ("get_ticks", {"code": "600000.SH", "start": "20261120093000", "end": "20261120093100"}),
                ("search_instruments", {"query": "ETF"}), ("get_instrument", {"code": "510300"}),
                ("list_sectors", {}), ("get_asset", {"account": "sim"}), ("get_positions", {"account": "sim"}),
                ("get_orders", {"account": "sim"}), ("get_trades", {"account": "sim"}),
                ("get_order", {"account": "sim", "client_order_id": "rest-1"}),
                ("preview_order", {"account": "sim", "code": "600000.SH", "side": "buy", "volume": 100,
                                   "price": q["ask_prices"][0]}),
                ("place_order", {"account": "sim", "code": "600000.SH", "side": "buy", "volume": 100,
                                 "price": q["ask_prices"][0]}),
                ("cancel_order", {"account": "sim", "order_id": rest["order"]["order_id"]}),
                ("get_risk_status", {}), ("reset_risk", {"account": "sim", "note": "stdio check"}),
                ("get_order_events", {"account": "sim"}),
                ("get_statement", {"account": "sim"}), ("get_pnl", {"account": "sim", "start": "20261101"}),
                ("get_orders", {"account": "sim", "start": "20261101"}),
                ("get_trades", {"account": "sim", "start": "20261101", "end": "20261102"}),
                ("place_conditional_order", {"account": "sim", "code": "600000.SH", "side": "buy", "volume": 100,
                                             "trigger": {"type": "price_at_or_below", "price": q["down_limit"]}}),
                ("list_conditional_orders", {"account": "sim"}),
                ("cancel_conditional_order", {"account": "sim", "condition_id": "cd-none"}),
                # and errors, which must fit the same schemas (decide_approval: this client has no MCP Apps)
                ("decide_approval", {"approval_id": "ap-none", "decision": "approve"}),
                ("get_asset", {"account": "nobody"}), ("get_order", {"account": "sim", "order_id": 7}),
                ("place_order", {"account": "sim", "code": "600000.SH", "side": "sell", "volume": 100,
                                 "price": q["bid_prices"][0]}),
                ("get_statement", {"account": "sim", "start": "someday"}),
            ]
            assert {name for name, _ in calls} == set(schemas)
            for name, args in calls:
                res = await c.call_tool(name, args)
                assert res.structured_content is not None, name
                jsonschema.validate(res.structured_content, schemas[name])
                assert res.is_error == (not res.structured_content["ok"]), name


async def test_subscription_survives_a_worker_kill_and_resumes_with_no_missing_seq(tmp_path: Path) -> None:
    home = tmp_path / "home"
    params = StdioServerParameters(command=sys.executable, args=["-m", "qmt_mcp", "serve"],
                                   env={"QMT_MCP_HOME": str(home)})
    uri = "qmt://accounts/sim/events"
    with anyio.fail_after(120):
        async with Client(params) as c, c.listen(resource_subscriptions=[uri]) as sub:
            q = (await _call(c, "get_quote", codes=["600000.SH"]))["quotes"][0]
            await _call(c, "place_order", account="sim", code="600000.SH", side="buy", volume=100,
                        price=q["ask_prices"][0], client_order_id="before-kill")
            async for event in sub:
                assert str(event.uri) == uri  # type: ignore[union-attr]
                break
            os.kill(_worker_pids(home)[0], signal.SIGKILL)
            while True:
                h = await _call(c, "health")
                if h["worker"]["state"] == "up" and h["worker"]["restarts"] == 1:
                    break
                await anyio.sleep(0.1)
            await _call(c, "place_order", account="sim", code="600000.SH", side="buy", volume=100,
                        price=q["ask_prices"][0], client_order_id="after-kill")
            async for event in sub:  # the same subscription, still delivering after the restart
                assert str(event.uri) == uri  # type: ignore[union-attr]
                break
            events = (await _call(c, "get_order_events", account="sim"))["events"]
            seqs = [e["seq"] for e in events]
            assert seqs == list(range(1, len(seqs) + 1))  # nothing lost, nothing reused
            for _ in range(200):  # the server's feed catches up with the journal (another process)
                h = await _call(c, "health")
                if h["events"]["last_seq"] >= seqs[-1]:
                    break
                await anyio.sleep(0.05)
            assert h["events"]["connected"] is True and h["events"]["gaps"] == 0
            assert {e["client_order_id"] for e in events} == {"before-kill", "after-kill"}


async def test_stdio_server_spawns_an_xtquant_worker_over_the_simulated_native_layer(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    config = home / "config.toml"
    config.write_text('[worker]\nbackend = "xtquant"\n[xtquant]\nnative = "sim"\n', encoding="utf-8")
    params = StdioServerParameters(command=sys.executable, args=["-m", "qmt_mcp", "serve", "--config", str(config)],
                                   env={"QMT_MCP_HOME": str(home)})
    with anyio.fail_after(120):
        async with Client(params) as c:
            h = await _call(c, "health")
            assert h["worker"]["backend"] == "xtquant" and h["worker"]["xtquant_loaded"]
            assert h["accounts"]["sim"]["trader"]["state"] == "alive"
            q = (await _call(c, "get_quote", codes=["600000.SH"]))["quotes"][0]
            placed = await _call(c, "place_order", account="sim", code="600000.SH", side="buy", volume=200,
                                 price=q["ask_prices"][2], client_order_id="xtq-e2e", wait_seconds=5)
            assert placed["order"]["status"] == "succeeded"
            assert (await _call(c, "get_positions", account="sim"))["positions"][0]["volume"] == 200
