"""The worker with `backend = "xtquant"`: the wheel's own xttrader.py (from site-packages) over the
simulated native layer, through the MCP client — quotes, klines, accounts, a fill, a cancel, typed
errors — and its faults: a hung order, a hung query and its breaker, a disconnect and the recovery."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import Session, make_worker, open_session

from qmt_mcp.backends.xtq.adapter import XtQuantBroker
from qmt_mcp.clock import ManualClock
from qmt_mcp.config import ConfigError, parse_config
from qmt_mcp.domain.timeutil import CN_TZ

pytestmark = pytest.mark.anyio


def xtq_config(**extra: Any) -> dict[str, Any]:
    worker = {"backend": "xtquant", "call_timeout_s": 1.0, "submit_timeout_s": 1.0, **extra.pop("worker", {})}
    return {"worker": worker, "xtquant": {"native": "sim", **extra.pop("xtquant", {})},
            "risk": {"enabled": False}, **extra}


@asynccontextmanager
async def xtq_session(clock: ManualClock, home: Path, **extra: Any) -> AsyncIterator[Session]:
    worker = make_worker(parse_config(xtq_config(**extra)), home, clock)
    try:
        async with open_session(worker, clock) as s:
            yield s
    finally:
        await worker.close()


def adapter(s: Session) -> XtQuantBroker:
    broker = s.worker.broker
    assert isinstance(broker, XtQuantBroker)
    return broker


async def settle(s: Session, cid: str, want: set[str]) -> dict[str, Any]:
    """Pushes arrive from xtquant's own threads; wait (bounded) for the journal until the order
    reaches a status."""
    with anyio.fail_after(5):
        while True:
            changed = s.worker.service.next_change()
            order = (await s.ok("get_order", account="sim", client_order_id=cid))["order"]
            if order["status"] in want:
                return order
            await changed.wait()


async def test_the_xtquant_path_answers_every_read_and_fills_and_cancels(clock: ManualClock, tmp_path: Path) -> None:
    async with xtq_session(clock, tmp_path / "home") as s:
        health = await s.ok("health")
        assert health["worker"]["backend"] == "xtquant" and health["worker"]["xtquant_loaded"]
        assert health["accounts"]["sim"]["trader"]["state"] == "alive"
        q = (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
        assert len((await s.ok("get_klines", code="600000.SH", period="1m", count=5))["bars"]) == 5
        asset = await s.ok("get_asset", account="sim")
        assert asset["cash"] == 1_000_000
        placed = await s.ok("place_order", account="sim", code="600000.SH", side="buy", volume=100,
                            price=q["ask_prices"][0], client_order_id="xtq-fill")
        assert placed["order"]["order_id"] > 0
        filled = await settle(s, "xtq-fill", {"succeeded"})
        assert filled["traded_volume"] == 100
        positions = (await s.ok("get_positions", account="sim"))["positions"]
        assert [(p["code"], p["volume"], p["can_use_volume"]) for p in positions] == [("600000.SH", 100, 0)]
        trades = (await s.ok("get_trades", account="sim"))["trades"]
        assert trades[0]["client_order_id"] == "xtq-fill"   # client_order_id travelled as order_remark
        rest = await s.ok("place_order", account="sim", code="600000.SH", side="buy", volume=100,
                          price=q["bid_prices"][4], client_order_id="xtq-rest")
        await settle(s, "xtq-rest", {"reported"})
        await s.ok("cancel_order", account="sim", order_id=rest["order"]["order_id"])
        await settle(s, "xtq-rest", {"canceled"})
        err = await s.error("place_order", account="sim", code="600000.SH", side="buy", volume=150,
                            price=q["ask_prices"][0])
        assert err["code"] == "LOT_SIZE"
        err = await s.error("cancel_order", account="sim", order_id=filled["order_id"])
        assert err["code"] == "NOT_CANCELABLE"


async def test_a_counter_refusal_after_acceptance_reaches_the_order_as_junk(clock: ManualClock, tmp_path: Path) -> None:
    async with xtq_session(clock, tmp_path / "home") as s:
        q = (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
        adapter(s).native.faults.script("orderStock", "error_after_accept")
        res = await s.call("place_order", account="sim", code="600000.SH", side="buy", volume=100,
                           price=q["ask_prices"][0], client_order_id="xtq-late-error")
        # Whether the refusal lands before place_order returns is a race, as with a real counter.
        assert res["ok"] or (res["error"]["code"] == "BROKER_REJECT" and res["error"]["state_changed"] == "yes")
        with anyio.fail_after(5):
            while True:
                changed = s.worker.service.next_change()
                events = (await s.ok("get_order_events", account="sim"))["events"]
                if any(e["type"] == "order_error" for e in events):
                    break
                await changed.wait()
        order = await settle(s, "xtq-late-error", {"junk"})
        assert "rejected after acceptance" in order["status_msg"]


async def test_a_minus_one_answer_is_a_broker_reject_and_nothing_is_placed(clock: ManualClock, tmp_path: Path) -> None:
    async with xtq_session(clock, tmp_path / "home") as s:
        q = (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
        adapter(s).native.faults.script("orderStock", "reject")
        err = await s.error("place_order", account="sim", code="600000.SH", side="buy", volume=100,
                            price=q["ask_prices"][0], client_order_id="xtq-reject")
        assert err["code"] == "BROKER_REJECT" and err["state_changed"] == "no"
        assert adapter(s).native.broker.counter.orders == {}


async def test_a_hung_order_is_indeterminate_within_the_deadline_and_reconciliation_finds_it(
    clock: ManualClock, tmp_path: Path
) -> None:
    async with xtq_session(clock, tmp_path / "home") as s:
        q = (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
        adapter(s).native.faults.script("orderStock", "drop")   # the counter takes it; the answer is lost
        started = anyio.current_time()
        err = await s.error("place_order", account="sim", code="600000.SH", side="buy", volume=100,
                            price=q["ask_prices"][0], client_order_id="xtq-hung")
        assert err["code"] == "SUBMIT_INDETERMINATE" and anyio.current_time() - started < 1.5
        assert len(adapter(s).native.broker.counter.orders) == 1      # sent once, never again
        await s.worker.reconciler.run("test")
        order = (await s.ok("get_order", account="sim", client_order_id="xtq-hung"))["order"]
        assert order["status"] == "succeeded" and order["order_id"] > 0
        assert len(adapter(s).native.broker.counter.orders) == 1


async def test_a_hung_query_times_out_then_opens_its_breaker_while_other_tools_answer(
    clock: ManualClock, tmp_path: Path
) -> None:
    async with xtq_session(clock, tmp_path / "home", xtquant={"breaker_failures": 2}) as s:
        adapter(s).native.faults.script("queryStockPositions", "hang", sticky=True)
        for _ in range(2):
            err = await s.error("get_positions", account="sim")
            assert err["code"] == "TIMEOUT" and err["retryable"]
        started = anyio.current_time()
        err = await s.error("get_positions", account="sim")
        assert err["code"] == "CIRCUIT_OPEN" and anyio.current_time() - started < 0.5
        assert (await s.ok("get_asset", account="sim"))["cash"] == 1_000_000      # another API still answers
        health = await s.ok("health")
        assert health["worker"]["state"] == "degraded"
        adapter(s).native.faults.clear()
        clock.advance(31)   # past the cool-down: one trial call closes it again
        assert (await s.ok("get_positions", account="sim"))["positions"] == []


async def test_a_disconnect_shows_lost_and_the_worker_reconnects_to_alive(clock: ManualClock, tmp_path: Path) -> None:
    async with xtq_session(clock, tmp_path / "home") as s:
        await s.ok("get_asset", account="sim")
        changed = adapter(s).state_changed
        adapter(s).native.disconnect_all()
        with anyio.fail_after(5):
            await changed.wait()
        lost = (await s.ok("health"))["accounts"]["sim"]
        assert lost["trader"]["last_disconnect_at"] and not lost["ready_to_trade"]
        err = await s.error("get_asset", account="sim")
        assert err["code"] == "TRADER_DISCONNECTED"
        await s.worker.service.tick()          # the worker's poll reconnects with a fresh session
        assert adapter(s).take_reconnected()
        health = await s.ok("health")
        assert health["accounts"]["sim"]["trader"]["state"] == "alive"
        assert (await s.ok("get_asset", account="sim"))["cash"] == 1_000_000


async def test_market_data_through_xtdata_matches_the_simulator_after_lots_become_shares(
    clock: ManualClock, tmp_path: Path
) -> None:
    async with xtq_session(clock, tmp_path / "home") as s:
        sim = adapter(s).native.broker
        q = (await s.ok("get_quote", codes=["600519.SH"]))["quotes"][0]
        direct = sim.market.quote("600519.SH", clock.now())
        assert q["volume"] == direct.volume and q["ask_volumes"] == [lv.volume for lv in direct.asks]
        assert q["last"] == float(direct.last)
        bars = (await s.ok("get_klines", code="600519.SH", period="1d", count=3))["bars"]
        assert [b["volume"] for b in bars] == [b.volume for b in sim.bar_list(
            "600519.SH", "1d", clock.now().replace(year=2026, month=11, day=1), clock.now(), 3)]
        inst = await s.ok("get_instrument", code="688799.SH")
        assert inst["price_limited"] is False and inst["listed"] == "2026-11-16"   # UpStopPrice 0: no limit
        assert "688981.SH" in [i["code"] for i in (await s.ok("search_instruments", sector="科创板"))["instruments"]]


async def test_a_quote_whose_timetag_stops_while_its_price_moves_is_reported_stale(
    clock: ManualClock, tmp_path: Path
) -> None:
    async with xtq_session(clock, tmp_path / "home") as s:
        data = adapter(s).data.xtdata
        await s.ok("get_quote", codes=["600000.SH"])
        data.freeze("600000.SH")
        first = (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
        for _ in range(40):   # until the price moves under the stuck timetag
            clock.advance(3)
            q = (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
            if q["last"] != first["last"]:
                break
        assert q["stale"] is True
        health = await s.ok("health")
        assert health["data"] == {"fresh": False, "stale_codes": ["600000.SH"]}
        data.frozen.clear()
        clock.advance(3)
        assert (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]["stale"] is False
        assert (await s.ok("health"))["data"]["fresh"] is True


def test_a_real_miniqmt_worker_off_windows_is_refused_with_what_to_do(tmp_path: Path) -> None:
    cfg = parse_config({"worker": {"backend": "xtquant"},
                        "xtquant": {"native": "real", "qmt_path": "C:/QMT/userdata_mini"}})
    with pytest.raises(ConfigError, match="Windows"):
        make_worker(cfg, tmp_path / "home", ManualClock(datetime(2026, 11, 20, 10, tzinfo=CN_TZ)))
    cfg = parse_config({"worker": {"backend": "xtquant"}, "xtquant": {"native": "real"}})
    with pytest.raises(ConfigError, match="qmt_path"):
        make_worker(cfg, tmp_path / "home", ManualClock(datetime(2026, 11, 20, 10, tzinfo=CN_TZ)))


async def test_reading_past_ticks_does_not_mark_the_live_quote_stale(clock: ManualClock, tmp_path: Path) -> None:
    async with xtq_session(clock, tmp_path / "home") as s:
        ticks = (await s.ok("get_ticks", code="600000.SH", start="20261119", end="20261119093000"))["ticks"]
        assert ticks
        assert (await s.ok("health"))["data"] == {"fresh": True, "stale_codes": []}


async def test_a_trial_call_cut_short_by_a_disconnect_leaves_the_next_call_the_trial(
    clock: ManualClock, tmp_path: Path
) -> None:
    """The one call let through after the cool-down met a dropped connection: that says nothing
    about the API, so the breaker must not stay shut for good (it once answered CIRCUIT_OPEN until
    the worker restarted)."""
    async with xtq_session(clock, tmp_path / "home", xtquant={"breaker_failures": 2}) as s:
        adapter(s).native.faults.script("queryStockPositions", "hang", sticky=True)
        for _ in range(2):
            assert (await s.error("get_positions", account="sim"))["code"] == "TIMEOUT"
        adapter(s).native.faults.clear()
        clock.advance(31)
        changed = adapter(s).state_changed
        adapter(s).native.disconnect_all()
        with anyio.fail_after(5):
            await changed.wait()
        assert (await s.error("get_positions", account="sim"))["code"] == "TRADER_DISCONNECTED"
        await s.worker.service.tick()          # reconnects
        assert adapter(s).take_reconnected()
        assert (await s.ok("get_positions", account="sim"))["positions"] == []
