"""kill -9 of the worker at seeded points while orders are in flight: afterwards no broker order is
there twice, no record is lost, and every unknown outcome is resolved.

Real processes throughout: each round starts `qmt-mcp worker` on one state dir with a crash plan
(`QMT_MCP_CRASH_AT`, see qmt_mcp/worker/crashpoints.py: it SIGKILLs itself at the n-th pass of a
site on the order path), sends a burst of concurrent orders, cancels and retries through the worker's
real HTTP API, and is killed (by its plan, or with SIGKILL from here once the burst is over). The
next round's worker starts on what the dead one left, reconciles, and is checked before its own burst.
The plan is drawn from a fixed seed, so every run crashes at the same points of the same plan;
which orders are in flight at that moment is up to the scheduler, and the checks hold either way.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import SUMMARY
from workerproc import WorkerProcess

from qmt_mcp.domain.errors import QmtError
from qmt_mcp.worker.crashpoints import SITES

pytestmark = pytest.mark.anyio
SEED = 20261121
ROUNDS = 32
BURST = 6
CONFIG = """\
[risk]
enabled = false

[worker]
submit_timeout_s = 1
reconcile_interval_s = 0.2

[accounts.sim]
account_id = "88000001"
positions = { "600000.SH" = 100000, "000001.SZ" = 100000 }
"""
UNRESOLVED = {"pending_submit", "indeterminate"}


def crash_plan() -> list[tuple[str, int]]:
    rng = random.Random(SEED)  # noqa: S311 (a repeatable plan, not a secret)
    return [(SITES[i % len(SITES)], rng.randint(1, 3 * BURST)) for i in range(ROUNDS)]


class Round(WorkerProcess):
    """One worker process on the shared state dir, armed to crash at `crash_at` (or not at all)."""

    def __init__(self, home: Path, n: int, crash_at: str | None) -> None:
        # An empty QMT_MCP_CRASH_AT arms nothing, whatever the test runner's environment says.
        super().__init__(home, n, env={"QMT_MCP_CRASH_AT": crash_at or ""}, timeout_s=5)

    async def settled(self) -> list[dict[str, Any]]:
        """Today's records once reconciliation has resolved every unknown outcome."""
        for _ in range(300):
            orders = (await self.client.call("get_orders", {"account": "sim"}))["orders"]
            if not [o for o in orders if o["status"] in UNRESOLVED]:
                return list(orders)
            await anyio.sleep(0.05)
        raise AssertionError(f"unresolved after restart: {[o for o in orders if o['status'] in UNRESOLVED]}")

    async def killed(self) -> str:
        """How it ended: by its own plan, or by SIGKILL from here."""
        how = "plan"
        try:
            await anyio.to_thread.run_sync(self.proc.wait, 2)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            how = "external"
            self.proc.wait(timeout=10)
        assert self.proc.returncode == -signal.SIGKILL
        await self.client.aclose()
        return how


def broker_orders(home: Path) -> list[dict[str, Any]]:
    """The simulated broker's own book (what 'the exchange' has), read from its file."""
    con = sqlite3.connect(f"file:{home / 'sim.sqlite'}?mode=ro", uri=True)
    try:
        return [json.loads(d) for (d,) in con.execute("SELECT data FROM orders")]
    finally:
        con.close()


def check(home: Path, records: list[dict[str, Any]], acked: dict[str, int]) -> dict[str, int]:
    by_cid = {r["client_order_id"]: r for r in records}
    book = broker_orders(home)
    remarks = Counter(o["remark"] for o in book)
    duplicates = sum(n - 1 for n in remarks.values() if n > 1)
    lost_acked = [cid for cid, oid in acked.items() if by_cid.get(cid, {}).get("order_id") != oid]
    # Every order the broker has came from a record written before it was sent: none is "external".
    lost_records = [o["remark"] for o in book if o["remark"] not in by_cid]
    imported = [r["client_order_id"] for r in records if r["client_order_id"].startswith("ext-")]
    mismatched = [o["remark"] for o in book if o["remark"] in by_cid
                  and (by_cid[o["remark"]]["order_id"] != o["order_id"]
                       or by_cid[o["remark"]]["status"] != o["status"])]
    unresolved = [r["client_order_id"] for r in records if r["status"] in UNRESOLVED]
    assert duplicates == 0, remarks
    assert not lost_acked and not lost_records and not imported, (lost_acked, lost_records, imported)
    assert not mismatched, mismatched
    assert not unresolved, unresolved
    return {"duplicates": duplicates, "lost": len(lost_acked) + len(lost_records), "unresolved": len(unresolved),
            "broker_orders": len(book), "records": len(records)}


async def test_kill_9_at_seeded_points_loses_nothing_and_sends_nothing_twice(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(CONFIG)
    rng = random.Random(SEED + 1)  # noqa: S311 (repeatable orders)
    acked: dict[str, int] = {}            # client_order_id -> order_id the worker confirmed
    pending: dict[str, dict[str, Any]] = {}  # sent without a confirmation: the agent will retry these
    outcomes: Counter[str] = Counter()
    ended: Counter[str] = Counter()
    resting: list[int] = []

    with anyio.fail_after(600):
        for n, (site, count) in enumerate([*crash_plan(), ("", 0)]):
            w = Round(home, n, f"{site}:{count}" if site else None)
            try:
                await w.ready()
                records = await w.settled()
                totals = check(home, records, acked)
                if not site:
                    break
                quotes = (await w.client.call("get_quote", {"codes": ["600000.SH", "000001.SZ"]}))["quotes"]
                burst: list[dict[str, Any]] = list(pending.values())  # the agent retries what it does not know
                for i in range(BURST):
                    q = quotes[rng.randrange(2)]
                    kind = rng.choice(["fill-buy", "fill-sell", "rest-buy"])
                    side = "sell" if kind == "fill-sell" else "buy"
                    price = {"fill-buy": q["ask_prices"][-1], "fill-sell": q["bid_prices"][-1],
                             "rest-buy": q["bid_prices"][-1]}[kind]
                    burst.append({"account": "sim", "code": q["code"], "side": side, "volume": 100 * rng.randint(1, 5),
                                  "price": price, "client_order_id": f"r{n}-{i}"})
                cancels = [resting.pop(rng.randrange(len(resting))) for _ in range(min(2, len(resting)))]

                async def place(order: dict[str, Any], w: Round = w) -> None:
                    cid = order["client_order_id"]
                    try:
                        got = await w.client.call("place_order", order)
                    except QmtError as exc:
                        outcomes[exc.code.value] += 1
                        if exc.code.value in ("SUBMIT_INDETERMINATE", "WORKER_UNAVAILABLE"):
                            pending[cid] = order  # state unknown (or nothing sent): try again later
                        else:
                            pending.pop(cid, None)
                        return
                    outcomes["replayed" if got["idempotent_replay"] else "ok"] += 1
                    assert acked.setdefault(cid, got["order"]["order_id"]) == got["order"]["order_id"]
                    pending.pop(cid, None)
                    if got["order"]["status"] in ("reported", "part_traded"):
                        resting.append(got["order"]["order_id"])

                async def cancel(order_id: int, w: Round = w) -> None:
                    try:
                        await w.client.call("cancel_order", {"account": "sim", "order_id": order_id})
                        outcomes["cancel"] += 1
                    except QmtError as exc:
                        outcomes[f"cancel:{exc.code.value}"] += 1

                async with anyio.create_task_group() as tg:
                    for order in burst:
                        tg.start_soon(place, order)
                    for order_id in cancels:
                        tg.start_soon(cancel, order_id)
                ended[await w.killed()] += 1
            finally:
                if w.proc.poll() is None:
                    w.proc.terminate()
                    w.proc.wait(timeout=30)
                await w.client.aclose()

    assert sum(ended.values()) == ROUNDS >= 30
    assert ended["plan"] >= ROUNDS // 2, ended  # most crashes land inside the order path, not after it
    assert outcomes["ok"] > 0 and outcomes["SUBMIT_INDETERMINATE"] + outcomes["WORKER_UNAVAILABLE"] > 0, outcomes
    SUMMARY.append(
        f"crash points {ROUNDS} (by plan {ended['plan']}, by kill -9 after the burst {ended['external']}); "
        f"broker orders {totals['broker_orders']}, records {totals['records']}; duplicates {totals['duplicates']}, "
        f"lost {totals['lost']}, unresolved {totals['unresolved']}; call outcomes {dict(sorted(outcomes.items()))}"
    )
