"""A person decides from the terminal: `qmt-mcp approvals`, `approve`, `deny` reach the running worker with
the operator key while an agent's order waits (a real MCP client over stdio, real worker processes), and
a pending approval outlives a kill -9 of the worker."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from test_operator_controls import _audited, _call, _cli, _home, _params
from workerproc import WorkerProcess

from qmt_mcp.config import parse_config
from qmt_mcp.domain.errors import ErrorCode, QmtError
from qmt_mcp.server.worker_client import WorkerClient

pytestmark = [pytest.mark.anyio, pytest.mark.skipif(sys.platform == "win32", reason="Unix socket worker")]
CONFIG = '[accounts.sim]\naccount_id = "88000001"\n\n[approval]\nhuman = "all"\n'


async def _buy(c: Client, cid: str, wait: float = 0) -> dict[str, Any]:
    q = (await _call(c, "get_quote", codes=["600000.SH"]))["quotes"][0]
    return await _call(c, "place_order", account="sim", code="600000.SH", side="buy", volume=100,
                       price=q["ask_prices"][0], client_order_id=cid, wait_seconds=wait)


async def _listed(home: Path) -> list[dict[str, Any]]:
    while True:  # another process: polled, bounded by the caller's fail_after
        rc, out = await _cli(home, "approvals")
        assert rc == 0, out
        if out["approvals"]:
            return list(out["approvals"])
        await anyio.sleep(0.2)


async def test_qmt_mcp_approve_lets_a_waiting_place_order_return_the_filled_order(tmp_path: Path) -> None:
    home = _home(tmp_path, CONFIG)
    out: dict[str, Any] = {}
    with anyio.fail_after(120):
        async with Client(_params(home)) as c:

            async def place() -> None:
                out.update(await _buy(c, "cli-ok-1", wait=45))

            async with anyio.create_task_group() as tg:
                tg.start_soon(place)
                (waiting,) = await _listed(home)
                order = waiting["order"]
                assert (order["client_order_id"], order["status"]) == ("cli-ok-1", "pending_approval")
                rc, decided = await _cli(home, "approve", waiting["approval_id"], "--note", "checked")
                assert rc == 0 and decided["decision"] == "approved"
            assert out["ok"] and out["order"]["status"] == "succeeded" and out["order"]["order_id"] is not None
    (record,) = _audited(home, "decide_approval")
    assert record["by"] == {"operator": True, "channel": "cli"} and record["args"]["note"] == "checked"


async def test_qmt_mcp_deny_with_a_note_ends_the_order_denied_and_a_second_decision_is_refused(tmp_path: Path) -> None:
    home = _home(tmp_path, CONFIG)
    with anyio.fail_after(120):
        async with Client(_params(home)) as c:
            placed = await _buy(c, "cli-no-1")
            assert placed["ok"] and placed["order"]["status"] == "pending_approval"
            approval_id = placed["order"]["approval"]["approval_id"]
            rc, decided = await _cli(home, "deny", approval_id, "--note", "too much today")
            assert rc == 0 and decided["order"]["status"] == "denied"
            got = (await _call(c, "get_order", account="sim", client_order_id="cli-no-1"))["order"]
            assert got["status"] == "denied" and "too much today" in got["status_msg"] and got["order_id"] is None
            rc, again = await _cli(home, "approve", approval_id)
            assert rc == 1 and again["error"]["code"] == "INVALID_ARGUMENT"
            assert again["error"]["details"]["reason"] == "already_decided"
            trades = (await _call(c, "get_trades", account="sim"))["trades"]
            assert trades == []


async def test_a_pending_approval_survives_kill_9_of_the_worker_and_is_approved_after(tmp_path: Path) -> None:
    home = _home(tmp_path, CONFIG)
    first = WorkerProcess(home, 1)
    with anyio.fail_after(90):
        try:
            await first.ready()
            placed = await first.buy("survive-1")
            assert placed["order"]["status"] == "pending_approval"
            approval_id = placed["order"]["approval"]["approval_id"]
        finally:
            await first.kill()
        second = WorkerProcess(home, 2)
        try:
            await second.ready()
            operator = WorkerClient.for_uds(str(second.sock), (home / "operator.key").read_text().strip(), timeout_s=10)
            try:
                with pytest.raises(QmtError) as not_the_server:
                    await second.client.call("decide_approval", {"approval_id": approval_id, "decision": "approve"})
                assert not_the_server.value.code is ErrorCode.UNAUTHORIZED
                decided = await operator.call("decide_approval", {"approval_id": approval_id, "decision": "approve",
                                                                   "channel": "cli"})
                assert decided["order"]["order_id"] is not None
                with pytest.raises(QmtError) as twice:
                    await operator.call("decide_approval", {"approval_id": approval_id, "decision": "approve",
                                                            "channel": "cli"})
                assert twice.value.details["reason"] == "already_decided"
            finally:
                await operator.aclose()
            orders = (await second.client.call("get_orders", {"account": "sim"}))["orders"]
            assert [(o["client_order_id"], o["order_id"] is not None) for o in orders] == [("survive-1", True)]
        finally:
            await second.stop()


def test_config_init_writes_a_config_whose_live_orders_wait_for_a_person(tmp_path: Path) -> None:
    home = tmp_path / "home"
    res = subprocess.run([sys.executable, "-m", "qmt_mcp", "config", "init"],
                         env={**os.environ, "QMT_MCP_HOME": str(home)}, capture_output=True, text=True, timeout=60,
                         check=False)
    assert res.returncode == 0, res.stderr
    cfg = parse_config(tomllib.loads((home / "config.toml").read_text(encoding="utf-8")))
    assert cfg.approval.human == "live" and cfg.approval.timeout_s == 300
