"""Conditions survive a real worker's SIGKILL while a stop fires, at each point of the firing: armed
-> triggered committed but its order not yet recorded (the next worker sends it once, under the
condition's own client_order_id), the order recorded but not sent (reconciliation finds the broker
never had it: junk, never sent twice), sent but its answer not recorded (reconciliation finds it:
once). Whichever, the condition still armed fires when its price comes after the restart.

Real processes (`qmt-mcp worker`, tests/workerproc.py) on the exchange clock with injected time: the
config's `sim.start_at` (simulated time starts there at each start, at twice real speed) over a
replayed tick file, so which quote meets which trigger is written here.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from workerproc import WorkerProcess

pytestmark = pytest.mark.anyio
CODE = "600000.SH"
TICKS = """time,last,volume,amount
2024-03-01 09:30:00,10.00,1000,10000
2024-03-01 09:30:05,9.70,2000,19700
2024-03-01 09:30:16,10.50,3000,30200
"""


def config(data: Path) -> str:
    return f"""\
[sim]
clock = "exchange"
replay_dir = "{data}"
start_at = 2024-03-01T09:30:01+08:00
speed = 2

[worker]
reconcile_interval_s = 0.2
submit_timeout_s = 1

[accounts.sim]
account_id = "88000001"
positions = {{ "{CODE}" = 1000 }}
"""


def rows(path: Path, sql: str) -> list[Any]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def broker_remarks(home: Path) -> Counter[str]:
    """The simulated exchange's own book, read from its file: how often each client_order_id is there."""
    return Counter(json.loads(d)["remark"] for (d,) in rows(home / "sim.sqlite", "SELECT data FROM orders"))


async def conditions(w: WorkerProcess) -> dict[str, dict[str, Any]]:
    listed = (await w.client.call("list_conditional_orders", {"account": "sim"}))["conditions"]
    return {c["condition_id"]: c for c in listed}


# (crash site, how often the stop's order is at the broker in the end, its final status)
POINTS = [("condition.triggered", 1, "succeeded"), ("broker.send", 0, "junk"), ("broker.sent", 1, "succeeded")]


@pytest.mark.parametrize(("site", "sent_times", "final"), POINTS, ids=[p[0] for p in POINTS])
async def test_a_worker_killed_as_a_stop_fires_never_sends_it_twice_and_the_armed_one_still_fires(
    tmp_path: Path, site: str, sent_times: int, final: str,
) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    home.mkdir()
    data.mkdir()
    (data / f"{CODE}.csv").write_text(TICKS, encoding="utf-8")
    (home / "config.toml").write_text(config(data))
    sell = {"account": "sim", "code": CODE, "side": "sell", "volume": 300}

    with anyio.fail_after(120):
        first = WorkerProcess(home, 1, env={"QMT_MCP_CRASH_AT": f"{site}:1"})
        try:
            await first.ready()
            stop = (await first.client.call("place_conditional_order", {
                **sell, "trigger": {"type": "price_at_or_below", "price": 9.8},
                "order": {"order_type": "limit", "price": 9.7}}))["condition"]
            profit = (await first.client.call("place_conditional_order", {
                **sell, "trigger": {"type": "price_at_or_above", "price": 10.4},
                "order": {"order_type": "limit", "price": 10.4}}))["condition"]
            # The 9.70 quote fires the stop, and the worker dies right after recording that.
            await anyio.to_thread.run_sync(first.proc.wait, 30)
            assert first.proc.returncode == -9, first.stderr()
        finally:
            if first.proc.poll() is None:
                first.proc.kill()
                first.proc.wait(timeout=10)
            await first.client.aclose()

        statuses = dict(rows(home / "worker.sqlite", "SELECT condition_id, status FROM conditions"))
        assert statuses == {stop["condition_id"]: "triggered", profit["condition_id"]: "armed"}
        orders = rows(home / "worker.sqlite", "SELECT client_order_id FROM orders")
        # Killed before the order record (condition.triggered) or after it (the broker call's two sides).
        assert ((stop["client_order_id"],) in orders) is (site != "condition.triggered")
        assert broker_remarks(home)[stop["client_order_id"]] == (1 if site == "broker.sent" else 0)

        second = WorkerProcess(home, 2, env={"QMT_MCP_CRASH_AT": ""})
        try:
            await second.ready()
            for _ in range(400):   # another process: polled, bounded
                now = await conditions(second)
                if now[profit["condition_id"]]["status"] == "triggered" and \
                        now[stop["condition_id"]].get("order_status") == final:
                    break
                await anyio.sleep(0.05)
            else:
                raise AssertionError(f"not fired after the restart: {now}")
            sent = (await second.client.call("get_order", {"account": "sim",
                                                           "client_order_id": stop["client_order_id"]}))["order"]
            assert (sent["side"], sent["volume"], sent["status"]) == ("sell", 300, final)
        finally:
            try:
                await second.stop()
            except subprocess.TimeoutExpired:
                second.proc.kill()

    remarks = broker_remarks(home)
    assert remarks[stop["client_order_id"]] == sent_times and remarks[profit["client_order_id"]] == 1, remarks
    assert sum(remarks.values()) == sent_times + 1
