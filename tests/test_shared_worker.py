"""One worker per state dir: a second server (or `qmt-mcp health`) attaches to the running worker,
and whoever sees it die brings one back without losing the paper account."""

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

pytestmark = [pytest.mark.anyio, pytest.mark.skipif(sys.platform == "win32", reason="Unix socket worker")]


def _params(home: Path) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "qmt_mcp", "serve"],
                                 env={"QMT_MCP_HOME": str(home)})


async def _call(c: Client, tool: str, **args: Any) -> dict[str, Any]:
    res = await c.call_tool(tool, args)
    assert res.structured_content is not None
    return res.structured_content


async def _until_up(c: Client, restarts_at_least: int) -> None:
    while True:  # bounded by the caller's fail_after
        h = await _call(c, "health")
        if h["worker"]["state"] == "up" and h["worker"]["restarts"] >= restarts_at_least:
            return
        await anyio.sleep(0.1)


async def test_second_server_attaches_to_the_running_worker_and_sees_the_same_account(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with anyio.fail_after(120):
        async with Client(_params(home)) as a, Client(_params(home)) as b:
            assert len(_worker_pids(home)) == 1
            info = json.loads((home / "worker.json").read_text())
            assert oct((home / "worker.json").stat().st_mode & 0o777) == "0o600" and info["token"]
            q = (await _call(b, "get_quote", codes=["600000.SH"]))["quotes"][0]
            placed = await _call(b, "place_order", account="sim", code="600000.SH", side="buy", volume=100,
                                 price=q["ask_prices"][0], client_order_id="from-b")
            assert placed["ok"]
            seen = {o["client_order_id"] for o in (await _call(a, "get_orders", account="sim"))["orders"]}
            assert seen == {"from-b"}

            res = await anyio.run_process([sys.executable, "-m", "qmt_mcp", "health"], check=False,
                                          env={**os.environ, "QMT_MCP_HOME": str(home)})
            assert res.returncode == 0, res.stderr
            assert json.loads(res.stdout)["worker"]["state"] == "up"

            # The worker dies: its owner restarts it and the attached server follows.
            os.kill(_worker_pids(home)[0], signal.SIGKILL)
            await _until_up(a, 1)
            await _until_up(b, 1)
            assert len(_worker_pids(home)) == 1
            pos = (await _call(b, "get_positions", account="sim"))["positions"]
            assert [(p["code"], p["volume"]) for p in pos] == [("600000.SH", 100)]


async def test_attached_server_starts_its_own_worker_when_the_owner_exits(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with anyio.fail_after(120):
        async with Client(_params(home)) as b:
            async with Client(_params(home)) as a:
                await _call(a, "health")
                q = (await _call(a, "get_quote", codes=["600000.SH"]))["quotes"][0]
                await _call(a, "place_order", account="sim", code="600000.SH", side="buy", volume=100,
                            price=q["ask_prices"][0], client_order_id="from-a")
            # b spawned first (it owns the worker); a attached and has now left: nothing changes for b.
            assert (await _call(b, "health"))["worker"]["state"] == "up"
        async with Client(_params(home)) as a:
            # b's worker stopped with b: a starts a fresh one on the same state.
            orders = (await _call(a, "get_orders", account="sim"))["orders"]
            assert [o["client_order_id"] for o in orders] == ["from-a"]
    assert not _worker_pids(home)


async def test_a_damaged_worker_file_is_ignored_and_a_worker_is_started(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "worker.json").write_text(json.dumps({"token": "t", "url": "not a url", "pid": 1}))
    with anyio.fail_after(120):
        async with Client(_params(home)) as c:
            health = await _call(c, "health")
            assert health["ok"] and health["worker"]["state"] == "up"
            assert json.loads((home / "worker.json").read_text())["uds"]  # our own worker's, written anew
