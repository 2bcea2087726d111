"""A person's controls (kill switch, block list, breaker reset) reach the worker from the CLI with the
operator key only: the MCP server's worker token and every MCP tool are kept out, the change holds
at the agent's next order and across a worker restart, and the audit trail says who and why."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from test_stdio_e2e import _worker_pids
from workerproc import WorkerProcess

from qmt_mcp.calls import CATALOGUE, OPERATOR, SERVER_CHANNEL
from qmt_mcp.domain.errors import ErrorCode, QmtError
from qmt_mcp.server.tools import TOOLS
from qmt_mcp.server.worker_client import WorkerClient

pytestmark = [pytest.mark.anyio, pytest.mark.skipif(sys.platform == "win32", reason="Unix socket worker")]

OPERATOR_ARGS: dict[str, dict[str, Any]] = {
    "set_kill_switch": {"account": "sim", "on": True, "note": "stop"},
    "set_blocked_code": {"account": "sim", "code": "600000.SH", "blocked": True, "note": "stop"},
    "operator_reset_risk": {"account": "sim", "note": "go on"},
    "list_approvals": {},
    "decide_approval": {"approval_id": "ap-any", "decision": "approve"},
}


def _home(tmp_path: Path, config: str) -> Path:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "config.toml").write_text(config, encoding="utf-8")
    os.chmod(home / "config.toml", 0o600)
    return home


def _params(home: Path) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "qmt_mcp", "serve"],
                                 env={"QMT_MCP_HOME": str(home)})


async def _call(c: Client, tool: str, **args: Any) -> dict[str, Any]:
    res = await c.call_tool(tool, args)
    assert res.structured_content is not None
    return res.structured_content


async def _cli(home: Path, *argv: str) -> tuple[int, dict[str, Any]]:
    res = await anyio.run_process([sys.executable, "-m", "qmt_mcp", *argv, "--json"], check=False,
                                  env={**os.environ, "QMT_MCP_HOME": str(home)})
    return res.returncode, json.loads(res.stdout)


async def _order(c: Client, account: str, side: str, cid: str) -> dict[str, Any]:
    q = (await _call(c, "get_quote", codes=["600000.SH"]))["quotes"][0]
    order: dict[str, Any] = {"account": account, "code": "600000.SH", "side": side, "volume": 100,
                             "price": q["ask_prices"][0] if side == "buy" else q["bid_prices"][0]}
    preview = await _call(c, "preview_order", **order)
    if "confirm_token" in preview:
        order["confirm_token"] = preview["confirm_token"]
    return await _call(c, "place_order", **order, client_order_id=cid, wait_seconds=5)


async def _until_restarted(c: Client) -> None:
    while True:  # another process: polled, bounded by the caller's fail_after
        h = await _call(c, "health")
        if h["worker"]["state"] == "up" and h["worker"]["restarts"] >= 1:
            return
        await anyio.sleep(0.1)


def _audited(home: Path, call: str) -> list[dict[str, Any]]:
    lines = (home / "audit.jsonl").read_text(encoding="utf-8").splitlines()
    return [r for r in map(json.loads, lines) if r.get("call") == call]


def test_no_mcp_tool_reaches_an_operator_call() -> None:
    assert set(OPERATOR_ARGS) == OPERATOR
    # The one exception: the MCP Apps ticket's decide_approval, as channel "app" only (tests/test_apps.py).
    assert SERVER_CHANNEL == {"decide_approval": "app"}
    for name in OPERATOR - set(SERVER_CHANNEL):
        # Every operator call that changes something is audited; reading the pending list is not.
        assert CATALOGUE[name].tool is None and (CATALOGUE[name].changes_state or name == "list_approvals"), name
    assert not (OPERATOR - set(SERVER_CHANNEL)) & set(TOOLS)


async def test_the_servers_worker_token_is_refused_on_every_operator_call_and_the_key_on_ordinary_ones(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    w = WorkerProcess(home, 1)
    try:
        with anyio.fail_after(60):
            await w.ready()
            for name, args in OPERATOR_ARGS.items():
                with pytest.raises(QmtError) as refused:
                    await w.client.call(name, args)   # the worker token, as the MCP server holds it
                assert refused.value.code is ErrorCode.UNAUTHORIZED, name
            key_file = home / "operator.key"
            assert oct(key_file.stat().st_mode & 0o777) == "0o600"
            operator = WorkerClient.for_uds(str(w.sock), key_file.read_text().strip(), timeout_s=10)
            try:
                with pytest.raises(QmtError) as not_orders:
                    await operator.call("get_quote", {"codes": ["600000.SH"]})
                assert not_orders.value.code is ErrorCode.UNAUTHORIZED
                # The block list, live: the next buy of the code is refused, and allowed again once removed.
                await operator.call("set_blocked_code", OPERATOR_ARGS["set_blocked_code"])
                with pytest.raises(QmtError) as blocked:
                    await w.buy("blocked-1")
                assert blocked.value.code is ErrorCode.RISK_REJECT and blocked.value.details["rule"] == "SYMBOL_BLOCKED"
                await operator.call("set_blocked_code", {**OPERATOR_ARGS["set_blocked_code"], "blocked": False})
                assert (await w.buy("unblocked-1"))["order"]["client_order_id"] == "unblocked-1"
            finally:
                await operator.aclose()
            assert not any(r["outcome"]["ok"] for r in _audited(home, "set_kill_switch"))
    finally:
        await w.stop()


async def test_kill_switch_from_the_cli_stops_the_agents_buys_not_its_sells_and_survives_a_worker_restart(
    tmp_path: Path,
) -> None:
    home = _home(tmp_path, '[accounts.sim]\naccount_id = "88000001"\npositions = {"600000.SH" = 1000}\n')
    with anyio.fail_after(120):
        async with Client(_params(home)) as c:
            assert (await _order(c, "sim", "buy", "before-1"))["ok"]
            rc, out = await _cli(home, "kill-switch", "on", "--account", "sim", "--note", "market looks wrong")
            assert rc == 0 and out["ok"] and out["kill_switch"] is True

            refused = await _order(c, "sim", "buy", "during-1")
            assert refused["error"]["code"] == "RISK_REJECT" and refused["error"]["details"]["rule"] == "KILL_SWITCH"
            assert (await _order(c, "sim", "sell", "during-2"))["ok"]
            status = (await _call(c, "get_risk_status", account="sim"))["accounts"]["sim"]
            assert status["kill_switch"] is True and status["operator"]["channel"] == "cli"

            os.kill(_worker_pids(home)[0], signal.SIGKILL)
            await _until_restarted(c)
            again = await _order(c, "sim", "buy", "after-1")
            assert again["error"]["code"] == "RISK_REJECT" and again["error"]["details"]["rule"] == "KILL_SWITCH"

            rc, out = await _cli(home, "kill-switch", "off", "--account", "sim", "--note", "all clear")
            assert rc == 0 and out["kill_switch"] is False
            assert (await _order(c, "sim", "buy", "after-2"))["ok"]
            events = (await _call(c, "get_order_events", account="sim", limit=1000))["events"]
            assert [e["rule"] for e in events if e["type"] == "risk"] == ["KILL_SWITCH", "KILL_SWITCH"]
    records = _audited(home, "set_kill_switch")
    assert [(r["by"]["channel"], r["args"]["note"], r["outcome"]["ok"]) for r in records] == [
        ("cli", "market looks wrong", True), ("cli", "all clear", True)]


async def test_risk_reset_from_the_cli_lifts_a_live_accounts_breaker_with_no_confirm_token(tmp_path: Path) -> None:
    home = _home(tmp_path, '[accounts.real]\naccount_id = "99000002"\nlive = true\n\n[risk]\nmax_daily_loss = 1\n')
    with anyio.fail_after(120):
        async with Client(_params(home)) as c:
            await _call(c, "get_risk_status", account="real")   # today's baseline
            assert (await _order(c, "real", "buy", "loss-1"))["ok"]   # its fees are a loss past 1 yuan
            risk = (await _call(c, "get_risk_status", account="real"))["accounts"]["real"]
            assert risk["breaker"]["tripped"] is True

            rc, out = await _cli(home, "risk", "reset", "--account", "real", "--note", "checked the fills")
            assert rc == 0 and out["ok"] and out["breaker"] == {"tripped": False}
            risk = (await _call(c, "get_risk_status", account="real"))["accounts"]["real"]
            assert risk["breaker"]["tripped"] is False
            events = (await _call(c, "get_order_events", account="real", limit=1000))["events"]
            assert [e["rule"] for e in events if e["type"] == "risk"][-1] == "RESET"
    (record,) = _audited(home, "operator_reset_risk")
    assert record["by"] == {"operator": True, "channel": "cli"} and record["args"]["note"] == "checked the fills"
    assert "confirm_token" not in record["args"] and record["outcome"]["ok"] is True


async def test_an_operator_command_with_no_worker_running_says_so(tmp_path: Path) -> None:
    rc, out = await _cli(tmp_path / "home", "kill-switch", "on", "--account", "sim", "--note", "stop")
    assert rc == 1 and out["error"]["code"] == "WORKER_UNAVAILABLE"
