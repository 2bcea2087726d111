"""One worker per state dir: a second server (or `qmt-mcp health`) attaches to the running worker,
and whoever sees it die brings one back without losing the paper account."""

from __future__ import annotations

import json
import os
import signal
import sys
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process
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


# ----- one configuration, no orphans, restarts that happened (real processes, kill -9)

INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}}
BUSY = "[risk]\nmax_orders_per_minute = 1000\nmax_daily_orders = 1000\nmax_daily_turnover = 100000000\n"


async def _started_server(home: Path) -> Process:
    """`qmt-mcp serve` as a bare process of our own (so it can be killed for real), once it has answered
    `initialize`: by then its worker is up and worker.json written (the lifespan runs first)."""
    proc = await anyio.open_process([sys.executable, "-m", "qmt_mcp", "serve"],
                                    env={**os.environ, "QMT_MCP_HOME": str(home)}, stderr=None)
    assert proc.stdin is not None and proc.stdout is not None
    await proc.stdin.send(json.dumps(INITIALIZE).encode() + b"\n")
    seen = b""
    while b"\n" not in seen:  # bounded by the caller's fail_after
        seen += await proc.stdout.receive()
    assert json.loads(seen.split(b"\n")[0])["id"] == 1
    return proc


async def _exited(pid: int) -> None:
    """Wait for a process that is not our child to end (a pidfd turns readable then; no polling)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        await anyio.wait_readable(fd)
    finally:
        os.close(fd)


def _worker_pid(home: Path) -> int:
    return int(json.loads((home / "worker.json").read_text())["pid"])


async def _order(c: Client, cid: str) -> dict[str, Any]:
    q = (await _call(c, "get_quote", codes=["600000.SH"]))["quotes"][0]
    return await _call(c, "place_order", account="sim", code="600000.SH", side="buy", volume=100,
                       price=q["bid_prices"][4], client_order_id=cid)


@pytest.mark.parametrize(("change", "section"), [
    ("[risk]\nkill_switch = true\n", "risk"),
    ('[accounts.sim]\naccount_id = "88000001"\nlive = true\n', "accounts"),
], ids=["kill_switch", "live"])
async def test_a_server_on_a_changed_config_is_refused_while_another_server_uses_the_worker(
    tmp_path: Path, change: str, section: str,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with anyio.fail_after(120):
        async with Client(_params(home)) as a:
            await _call(a, "health")
            worker = _worker_pid(home)
            (home / "config.toml").write_text(change)
            later = await anyio.run_process([sys.executable, "-m", "qmt_mcp", "serve"], check=False,
                                            env={**os.environ, "QMT_MCP_HOME": str(home)})
            assert later.returncode == 2, later.stderr
            named = [s for s in ("risk", "accounts", "sim", "worker", "confirm", "xtquant")
                     if f"[{s}]" in later.stderr.decode()]
            assert named == [section]   # the message names what differs, and only that
            # The first server and its worker carry on as they were.
            assert _worker_pids(home) == [worker]
            assert (await _order(a, "still-a"))["ok"]


async def test_a_server_on_a_changed_config_replaces_the_worker_of_a_killed_server(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with anyio.fail_after(150):
        old = await _started_server(home)
        old_worker = _worker_pid(home)
        old.kill()
        await old.wait()
        (home / "config.toml").write_text("[risk]\nkill_switch = true\n")
        async with Client(_params(home)) as b:
            refused = await _order(b, "after-the-change")
            assert not refused["ok"] and refused["error"]["details"]["rule"] == "KILL_SWITCH"
            await _exited(old_worker)
            assert _worker_pids(home) == [_worker_pid(home)] != [old_worker]
            assert (await _call(b, "health"))["worker"]["restarts"] == 0   # b never held the old one


async def test_a_worker_whose_only_server_was_killed_exits(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with anyio.fail_after(90):
        server = await _started_server(home)
        worker = _worker_pid(home)
        server.kill()
        await server.wait()
        await _exited(worker)   # once its lease lapses (LEASE_TTL_S), not never
    assert not _worker_pids(home)


async def test_a_long_history_read_delays_no_order_and_counts_no_restart_on_a_shared_worker(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(BUSY)
    slowest: dict[str, float] = {}
    with anyio.fail_after(180):
        async with Client(_params(home)) as a, Client(_params(home)) as b:
            reading = True

            async def long_histories() -> None:
                nonlocal reading
                try:
                    async with anyio.create_task_group() as tg:
                        for code in ("600000.SH", "000001.SZ", "600519.SH"):   # years of daily bars each
                            tg.start_soon(partial(_call, a, "get_klines", code=code, period="1d", count=5000))
                finally:
                    reading = False

            async def timed(name: str, call: Any) -> Any:
                started = anyio.current_time()
                out = await call
                slowest[name] = max(slowest.get(name, 0.0), anyio.current_time() - started)
                return out

            async with anyio.create_task_group() as tg:
                tg.start_soon(long_histories)
                n = 0
                while reading:
                    await timed("health", _call(b, "health"))
                    placed = await timed("place_order", _order(b, f"busy-{n}"))
                    assert placed["ok"], placed
                    got = await timed("cancel_order", _call(b, "cancel_order", account="sim",
                                                            order_id=placed["order"]["order_id"]))
                    assert got["ok"], got
                    n += 1
            assert max(slowest.values()) < 2.0, slowest
            assert (await _call(b, "health"))["worker"]["restarts"] == 0
            assert (await _call(a, "health"))["worker"]["restarts"] == 0
            assert len(_worker_pids(home)) == 1
