"""Conditional orders held by the gateway, on the exchange clock with injected time: a stop-loss fires
once (even on two quotes at once), a gap through the trigger fires at the first quote beyond it with
its limit price clipped to the band, take-profit and stop in one OCO group, a trailing stop follows
the high, a time condition waits for a session that takes it, an alert notifies subscribers, expiry,
the T+1 wait across the day roll, refusals at arming and at firing, and live arming's confirm token.

The prices are a replayed CSV (sim.replay_dir): every quote is written out here, so each trigger is
met by a quote the test names. The replay quotes one tick either side of `last`, so a sell at or
below `last` fills."""

from __future__ import annotations

import json
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import Session, make_worker, open_session
from mcp import MCPDeprecationWarning
from mcp.types import ResourceUpdatedNotification

from qmt_mcp.calls import DecideApprovalArgs, ListApprovalsArgs
from qmt_mcp.clock import ManualClock
from qmt_mcp.config import parse_config
from qmt_mcp.domain.conditions import Condition, ConditionStatus, fires, make_trigger, moved_mark, stop_level
from qmt_mcp.domain.errors import ErrorCode, QmtError
from qmt_mcp.domain.orders import Side
from qmt_mcp.domain.timeutil import CN_TZ

pytestmark = pytest.mark.anyio
CODE = "600000.SH"
DAY, NEXT_DAY = "2024-03-01", "2024-03-04"   # a Friday and the Monday after it: trading days


def at(hms: str, day: str = DAY) -> datetime:
    return datetime.fromisoformat(f"{day}T{hms}").replace(tzinfo=CN_TZ)


def write_ticks(folder: Path, rows: list[tuple[str, str, float]], code: str = CODE) -> None:
    """A tick file: (day, time, last) rows, 1,000 shares traded at each."""
    folder.mkdir(parents=True, exist_ok=True)
    lines, volume, amount, day = ["time,last,volume,amount"], 0, Decimal(0), ""
    for d, hms, last in rows:
        if d != day:
            day, volume, amount = d, 0, Decimal(0)
        volume += 1000
        amount += Decimal(str(last)) * 1000
        lines.append(f"{d} {hms},{last},{volume},{amount}")
    (folder / f"{code}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def sections(data: Path, **extra: Any) -> dict[str, Any]:
    accounts = extra.pop("accounts", {"sim": {"account_id": "88000001", "positions": {CODE: 1000}}})
    return {"sim": {"replay_dir": str(data), "clock": "exchange"}, "accounts": accounts, **extra}


@asynccontextmanager
async def market(tmp_path: Path, clock: ManualClock, rows: list[tuple[str, str, float]], start: datetime,
                 **extra: Any) -> AsyncIterator[Session]:
    write_ticks(tmp_path / "data", rows)
    clock.set(start)
    client = extra.pop("client", {})
    worker = make_worker(parse_config(sections(tmp_path / "data", **extra)), tmp_path / "home", clock)
    try:
        async with open_session(worker, clock, **client) as s:
            yield s
    finally:
        await worker.close()


async def at_quote(s: Session, when: datetime) -> None:
    """Time moves to `when`; the worker's tick (matching, then the conditions) runs once."""
    s.clock.set(when)
    await s.worker.service.tick()


def broker_orders(s: Session, cid: str) -> list[Any]:
    return [o for o in s.counter.orders.values() if o.remark == cid]


async def condition(s: Session, condition_id: str) -> dict[str, Any]:
    listed = (await s.ok("list_conditional_orders", account="sim"))["conditions"]
    return next(c for c in listed if c["condition_id"] == condition_id)


async def event_types(s: Session) -> list[str]:
    return [e["type"] for e in (await s.ok("get_order_events", account="sim"))["events"]]


STOP_PATH = [(DAY, "09:30:03", 10.00), (DAY, "09:30:06", 9.95), (DAY, "09:30:09", 9.80), (DAY, "09:30:12", 9.70),
             (DAY, "09:30:15", 9.60)]


async def test_a_stop_loss_fires_once_when_the_price_trades_through_even_on_two_quotes_at_once(
    clock: ManualClock, tmp_path: Path,
) -> None:
    async with market(tmp_path, clock, STOP_PATH, at("09:30:04")) as s:
        placed = await s.ok("place_conditional_order", account="sim", code=CODE, side="sell", volume=500,
                            trigger={"type": "price_at_or_below", "price": 9.85},
                            order={"order_type": "limit", "price": 9.80})
        armed = placed["condition"]
        assert armed["status"] == "armed" and armed["client_order_id"].startswith("c-")
        # The order it would send, previewed as preview_order would now: the same checks and fees.
        same = await s.ok("preview_order", account="sim", code=CODE, side="sell", volume=500, price=9.80)
        assert placed["preview"]["would_accept"] is True and placed["preview"]["estimate"] == same["estimate"]
        await at_quote(s, at("09:30:07"))   # 9.95: above the stop
        assert (await condition(s, armed["condition_id"]))["status"] == "armed"
        s.clock.set(at("09:30:10"))         # 9.80: through it; two rounds at once see the same quote
        async with anyio.create_task_group() as tg:
            tg.start_soon(s.worker.service.tick)
            tg.start_soon(s.worker.service.tick)
        for later in ("09:30:13", "09:30:16"):
            await at_quote(s, at(later))
        assert len(broker_orders(s, armed["client_order_id"])) == 1
        fired = await condition(s, armed["condition_id"])
        assert fired["status"] == "triggered" and fired["triggered_price"] == 9.80
        assert fired["order_status"] == "succeeded" and fired["order_id"] is not None
        order = (await s.ok("get_order", account="sim", client_order_id=armed["client_order_id"]))["order"]
        assert (order["side"], order["volume"], order["traded_volume"]) == ("sell", 500, 500)
        types = await event_types(s)
        assert types.count("condition_armed") == 1 and types.count("condition_triggered") == 1
        assert types.index("condition_triggered") < types.index("order_status")   # recorded before it was sent


async def test_a_gap_through_the_trigger_fires_at_the_first_quote_beyond_it_with_the_price_clipped_to_the_band(
    clock: ManualClock, tmp_path: Path,
) -> None:
    rows = [(DAY, "09:30:03", 10.00), (DAY, "09:30:06", 9.20), (DAY, "09:30:09", 9.10)]
    async with market(tmp_path, clock, rows, at("09:30:04")) as s:
        # Today's band is [9.00, 11.00]: a stop-limit at 8.50 would be refused by the exchange.
        c = (await s.ok("place_conditional_order", account="sim", code=CODE, side="sell", volume=300,
                        trigger={"type": "price_at_or_below", "price": 9.85},
                        order={"order_type": "limit", "price": 8.50}))["condition"]
        await at_quote(s, at("09:30:07"))   # the first quote past 9.85 is 9.20
        fired = await condition(s, c["condition_id"])
        assert fired["status"] == "triggered" and fired["triggered_price"] == 9.20
        assert "clipped to the down limit 9.00" in fired["status_msg"]
        (sent,) = broker_orders(s, c["client_order_id"])
        assert Decimal("9.00") <= sent.price <= Decimal("9.20")
        assert fired["order_status"] == "succeeded"


async def test_a_take_profit_and_a_stop_in_one_oco_group_one_fires_and_the_other_is_canceled(
    clock: ManualClock, tmp_path: Path,
) -> None:
    rows = [(DAY, "09:30:03", 10.00), (DAY, "09:30:06", 10.30), (DAY, "09:30:09", 10.60), (DAY, "09:30:12", 9.50)]
    async with market(tmp_path, clock, rows, at("09:30:04")) as s:
        common = {"account": "sim", "code": CODE, "side": "sell", "volume": 1000, "oco_group": "exit-600000"}
        profit = (await s.ok("place_conditional_order", **common, trigger={"type": "price_at_or_above", "price": 10.5},
                             order={"order_type": "limit", "price": 10.50}))["condition"]
        stop = (await s.ok("place_conditional_order", **common, trigger={"type": "price_at_or_below", "price": 9.6},
                           order={"order_type": "market"}))["condition"]
        await at_quote(s, at("09:30:07"))   # 10.30: neither
        await at_quote(s, at("09:30:10"))   # 10.60: the take-profit
        await at_quote(s, at("09:30:13"))   # 9.50 would have been the stop's, had it not been canceled
        assert (await condition(s, profit["condition_id"]))["status"] == "triggered"
        canceled = await condition(s, stop["condition_id"])
        assert canceled["status"] == "canceled" and profit["condition_id"] in canceled["status_msg"]
        assert len(broker_orders(s, profit["client_order_id"])) == 1 and not broker_orders(s, stop["client_order_id"])
        active = (await s.ok("list_conditional_orders", account="sim", active_only=True))["conditions"]
        assert active == []


async def test_a_trailing_stop_follows_the_high_and_fires_on_the_retrace(clock: ManualClock, tmp_path: Path) -> None:
    rows = [(DAY, "09:30:03", 10.00), (DAY, "09:30:06", 10.40), (DAY, "09:30:09", 10.20), (DAY, "09:30:12", 10.80),
            (DAY, "09:30:15", 10.55), (DAY, "09:30:18", 10.25)]
    async with market(tmp_path, clock, rows, at("09:30:04")) as s:
        c = (await s.ok("place_conditional_order", account="sim", code=CODE, side="sell", volume=500,
                        trigger={"type": "trailing_stop", "trail_percent": 5},
                        order={"order_type": "limit", "price": 10.20}))["condition"]
        assert (c["high_water"], c["stop_price"]) == (10.00, 9.50)
        seen = []
        for when in ("09:30:07", "09:30:10", "09:30:13", "09:30:16"):
            await at_quote(s, at(when))
            now = await condition(s, c["condition_id"])
            seen.append((now["high_water"], now["status"]))
        # The mark rises with 10.40 and 10.80, never falls with 10.20 or 10.55 (stop 10.26 at the high).
        assert seen == [(10.40, "armed"), (10.40, "armed"), (10.80, "armed"), (10.80, "armed")]
        await at_quote(s, at("09:30:19"))   # 10.25 <= 10.80 x 0.95 = 10.26
        fired = await condition(s, c["condition_id"])
        assert fired["status"] == "triggered" and fired["triggered_price"] == 10.25
        assert len(broker_orders(s, c["client_order_id"])) == 1


async def test_the_trailing_mark_is_persisted_as_it_moves(clock: ManualClock, tmp_path: Path) -> None:
    rows = [(DAY, "09:30:03", 10.00), (DAY, "09:30:06", 10.40)]
    async with market(tmp_path, clock, rows, at("09:30:04")) as s:
        c = (await s.ok("place_conditional_order", account="sim", code=CODE, side="sell", volume=500,
                        trigger={"type": "trailing_stop", "trail_amount": 0.3}))["condition"]
        await at_quote(s, at("09:30:07"))
    # A new worker on the same state dir reads the mark the first one wrote.
    worker = make_worker(parse_config(sections(tmp_path / "data")), tmp_path / "home", clock)
    try:
        async with open_session(worker, clock) as again:
            assert (await condition(again, c["condition_id"]))["high_water"] == 10.40
    finally:
        await worker.close()


async def test_a_time_condition_fires_at_its_minute_in_the_first_session_that_takes_it(
    clock: ManualClock, tmp_path: Path,
) -> None:
    rows = [(DAY, "11:00:00", 10.00), (DAY, "13:00:03", 10.05)]
    async with market(tmp_path, clock, rows, at("11:00:01")) as s:
        c = (await s.ok("place_conditional_order", account="sim", code=CODE, side="buy", volume=200,
                        trigger={"type": "time", "at": "2024-03-01T11:45:00+08:00"},
                        order={"order_type": "limit", "price": 10.10}))["condition"]
        await at_quote(s, at("11:44:59"))
        await at_quote(s, at("11:45:00"))   # its minute, but the lunch break takes no orders
        assert (await condition(s, c["condition_id"]))["status"] == "armed"
        await at_quote(s, at("13:00:04"))
        fired = await condition(s, c["condition_id"])
        assert fired["status"] == "triggered" and fired["triggered_at"] == "2024-03-01T13:00:04+08:00"
        assert len(broker_orders(s, c["client_order_id"])) == 1


class Updates:
    def __init__(self) -> None:
        self.uris: list[str] = []
        self.arrived = anyio.Event()

    async def on_message(self, message: Any) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            self.uris.append(str(message.params.uri))
            self.arrived.set()
            self.arrived = anyio.Event()


async def test_an_alert_notifies_subscribers_of_the_conditions_resource_and_sends_nothing(
    clock: ManualClock, tmp_path: Path,
) -> None:
    uri = "qmt://accounts/sim/conditions"
    updates = Updates()
    rows = [(DAY, "09:30:03", 10.00), (DAY, "09:30:06", 10.50)]
    async with market(tmp_path, clock, rows, at("09:30:04"),
                      client={"mode": "legacy", "message_handler": updates.on_message}) as s:
        listed = {str(r.uri) for r in (await s.client.list_resources()).resources}
        assert uri in listed
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await s.client.subscribe_resource(uri)
        c = (await s.ok("place_conditional_order", account="sim", code=CODE, side="buy", volume=100,
                        trigger={"type": "price_at_or_above", "price": 10.4}))["condition"]
        assert c["order"] is None
        with anyio.fail_after(10):
            while updates.uris.count(uri) < 1:   # condition_armed
                await updates.arrived.wait()
            await at_quote(s, at("09:30:07"))
            while updates.uris.count(uri) < 2:   # condition_triggered
                await updates.arrived.wait()
        events = (await s.ok("get_order_events", account="sim"))["events"]
        (triggered,) = [e for e in events if e["type"] == "condition_triggered"]
        assert triggered["alert"] is True and triggered.get("client_order_id") is None
        assert triggered["condition_id"] == c["condition_id"] and triggered["triggered_price"] == 10.50
        assert s.counter.orders == {}
        text = (await s.client.read_resource(uri)).contents[0]
        assert '"triggered"' in getattr(text, "text", "")


async def test_a_condition_expires_unfired(clock: ManualClock, tmp_path: Path) -> None:
    async with market(tmp_path, clock, STOP_PATH, at("09:30:04")) as s:
        c = (await s.ok("place_conditional_order", account="sim", code=CODE, side="sell", volume=500,
                        trigger={"type": "price_at_or_below", "price": 9.0},
                        order={"order_type": "limit", "price": 9.0}, expires_at="20240301093010"))["condition"]
        await at_quote(s, at("09:30:07"))
        assert (await condition(s, c["condition_id"]))["status"] == "armed"
        await at_quote(s, at("09:30:11"))
        gone = await condition(s, c["condition_id"])
        assert gone["status"] == "expired" and "condition_expired" in await event_types(s)
        err = await s.error("place_conditional_order", account="sim", code=CODE, side="sell", volume=500,
                            trigger={"type": "price_at_or_below", "price": 9.0}, expires_at="20240301090000")
        assert err["code"] == "INVALID_ARGUMENT" and err["details"]["argument"] == "expires_at"


async def test_a_stop_on_shares_bought_today_waits_for_t_plus_1_and_fires_after_the_day_roll(
    clock: ManualClock, tmp_path: Path,
) -> None:
    rows = [(DAY, "09:30:03", 10.00), (DAY, "09:30:06", 9.70), (NEXT_DAY, "09:30:03", 9.65)]
    async with market(tmp_path, clock, rows, at("09:30:04"), accounts={"sim": {"account_id": "88000001"}}) as s:
        bought = await s.ok("place_order", account="sim", code=CODE, side="buy", volume=500, price=10.01,
                            client_order_id="buy-1")
        assert bought["order"]["status"] == "succeeded"
        placed = await s.ok("place_conditional_order", account="sim", code=CODE, side="sell", volume=500,
                            trigger={"type": "price_at_or_below", "price": 9.80},
                            order={"order_type": "limit", "price": 9.60})
        c = placed["condition"]
        assert c["status"] == "armed" and "T+1" in c["status_msg"]
        assert placed["preview"]["would_accept"] is False   # as of now: the shares are not sellable today
        await at_quote(s, at("09:30:07"))   # 9.70: through the stop, but nothing is sellable today
        waiting = await condition(s, c["condition_id"])
        assert waiting["status"] == "armed" and "T+1" in waiting["status_msg"]
        assert not broker_orders(s, c["client_order_id"])
        await at_quote(s, at("09:30:04", NEXT_DAY))   # GTC: still armed on Monday, the shares sellable
        fired = await condition(s, c["condition_id"])
        assert fired["status"] == "triggered" and len(broker_orders(s, c["client_order_id"])) == 1


async def test_refusals_at_arming_carry_their_codes(clock: ManualClock, tmp_path: Path) -> None:
    async with market(tmp_path, clock, STOP_PATH, at("09:30:04")) as s:
        sell = {"account": "sim", "code": CODE, "side": "sell", "volume": 500}
        beyond = await s.error("place_conditional_order", **sell, trigger={"type": "price_at_or_below", "price": 8.5},
                               order={"order_type": "market"})
        assert beyond["code"] == "PRICE_LIMIT" and "9.00" in beyond["hint"]
        too_many = await s.error("place_conditional_order", **{**sell, "volume": 5000},
                                 trigger={"type": "price_at_or_below", "price": 9.5}, order={"order_type": "market"})
        assert too_many["code"] == "INSUFFICIENT_POSITION"
        off_tick = await s.error("place_conditional_order", **sell, trigger={"type": "price_at_or_below", "price": 9.5},
                                 order={"order_type": "limit", "price": 9.555})
        assert off_tick["code"] == "PRICE_TICK"
        no_trail = await s.error("place_conditional_order", **sell, trigger={"type": "trailing_stop"})
        assert no_trail["code"] == "INVALID_ARGUMENT"
        odd_lot = await s.error("place_conditional_order", **{**sell, "side": "buy", "volume": 150},
                                trigger={"type": "price_at_or_below", "price": 9.5},
                                order={"order_type": "limit", "price": 9.5})
        assert odd_lot["code"] == "LOT_SIZE"
        reserved = await s.error("place_conditional_order", **sell, client_order_id="ext-1",
                                 trigger={"type": "price_at_or_below", "price": 9.5})
        assert reserved["code"] == "INVALID_ARGUMENT"
        assert (await s.ok("list_conditional_orders", account="sim"))["conditions"] == []


async def test_the_same_client_order_id_replays_the_condition_and_a_different_one_conflicts(
    clock: ManualClock, tmp_path: Path,
) -> None:
    async with market(tmp_path, clock, STOP_PATH, at("09:30:04")) as s:
        args = {"account": "sim", "code": CODE, "side": "sell", "volume": 500, "client_order_id": "my-stop",
                "trigger": {"type": "price_at_or_below", "price": 9.5}, "order": {"order_type": "market"}}
        first = await s.ok("place_conditional_order", **args)
        again = await s.ok("place_conditional_order", **args)
        assert again["idempotent_replay"] is True and again["condition"] == first["condition"]
        assert first["condition"]["client_order_id"] == "my-stop"
        other = await s.error("place_conditional_order", **{**args, "volume": 400})
        assert other["code"] == "IDEMPOTENCY_CONFLICT"
        canceled = (await s.ok("cancel_conditional_order", account="sim",
                               condition_id=first["condition"]["condition_id"]))["condition"]
        twice = (await s.ok("cancel_conditional_order", account="sim",
                            condition_id=first["condition"]["condition_id"]))["condition"]
        assert canceled["status"] == twice["status"] == "canceled"
        missing = await s.error("cancel_conditional_order", account="sim", condition_id="cd-nope")
        assert missing["code"] == "ORDER_NOT_FOUND"
    # Arming and canceling are state changes: audited with the condition they answered.
    trail = [json.loads(line) for line in (tmp_path / "home" / "audit.jsonl").read_text().splitlines()]
    audited = [(r["call"], r["outcome"].get("condition", {}).get("status")) for r in trail
               if r["call"].endswith("conditional_order") and r["outcome"]["ok"]]
    assert audited == [("place_conditional_order", "armed"), ("place_conditional_order", "armed"),
                       ("cancel_conditional_order", "canceled"), ("cancel_conditional_order", "canceled")]


async def test_a_refusal_when_it_fires_fails_it_with_the_code_and_the_kill_switch_spares_a_protective_sell(
    clock: ManualClock, tmp_path: Path,
) -> None:
    async with market(tmp_path, clock, STOP_PATH, at("09:30:04"), risk={"kill_switch": True}) as s:
        dip_buy = (await s.ok("place_conditional_order", account="sim", code=CODE, side="buy", volume=100,
                              trigger={"type": "price_at_or_below", "price": 9.85},
                              order={"order_type": "limit", "price": 9.80}))["condition"]
        stop = (await s.ok("place_conditional_order", account="sim", code=CODE, side="sell", volume=500,
                           trigger={"type": "price_at_or_below", "price": 9.85},
                           order={"order_type": "limit", "price": 9.80}))["condition"]
        await at_quote(s, at("09:30:10"))
        failed = await condition(s, dip_buy["condition_id"])
        assert failed["status"] == "failed"
        assert failed["status_msg"].startswith("refused when it fired: RISK_REJECT")
        assert not broker_orders(s, dip_buy["client_order_id"])
        events = (await s.ok("get_order_events", account="sim"))["events"]
        (why,) = [e for e in events if e["type"] == "condition_failed"]
        assert (why["error_code"], why["rule"]) == ("RISK_REJECT", "KILL_SWITCH")
        assert why["condition_id"] == dip_buy["condition_id"]
        assert (await condition(s, stop["condition_id"]))["status"] == "triggered"
        assert len(broker_orders(s, stop["client_order_id"])) == 1


async def test_arming_on_a_live_account_needs_a_token_bound_to_the_whole_condition(
    clock: ManualClock, tmp_path: Path,
) -> None:
    live = {"sim": {"account_id": "88000001", "live": True, "positions": {CODE: 1000}}}
    async with market(tmp_path, clock, STOP_PATH, at("09:30:04"), accounts=live) as s:
        args = {"account": "sim", "code": CODE, "side": "sell", "volume": 500,
                "trigger": {"type": "price_at_or_below", "price": 9.85}, "order": {"order_type": "limit", "price": 9.8}}
        first = await s.error("place_conditional_order", **args)
        assert first["code"] == "CONFIRM_REQUIRED" and first["details"]["condition"]["status"] == "armed"
        assert first["details"]["preview"]["estimate"]["amount"] == 4900.0   # 500 x 9.80: show the person
        token = first["details"]["confirm_token"]
        assert (await s.ok("list_conditional_orders", account="sim"))["conditions"] == []
        for changed in ({"volume": 400}, {"trigger": {"type": "price_at_or_below", "price": 9.7}},
                        {"order": {"order_type": "market"}}, {"oco_group": "g"}):
            err = await s.error("place_conditional_order", **{**args, **changed}, confirm_token=token)
            assert err["code"] == "CONFIRM_MISMATCH", changed
        armed = (await s.ok("place_conditional_order", **args, confirm_token=token))["condition"]
        assert armed["status"] == "armed" and armed["live"] is True
        used = await s.error("place_conditional_order", **args, confirm_token=token)
        assert used["code"] == "CONFIRM_USED"
        # Firing does not wait for a person or a token: the order goes when the trigger is met.
        await at_quote(s, at("09:30:10"))
        assert len(broker_orders(s, armed["client_order_id"])) == 1


async def test_where_approval_asks_for_a_person_arming_waits_for_one_and_firing_does_not(
    clock: ManualClock, tmp_path: Path,
) -> None:
    async with market(tmp_path, clock, STOP_PATH, at("09:30:04"), approval={"human": "all"}) as s:
        args = {"account": "sim", "code": CODE, "side": "sell", "volume": 500,
                "trigger": {"type": "price_at_or_below", "price": 9.85}, "order": {"order_type": "limit", "price": 9.8}}
        waiting = (await s.ok("place_conditional_order", **args))["condition"]
        assert waiting["status"] == "pending_approval" and "qmt-mcp approve" in waiting["approval"]["hint"]
        other = (await s.ok("place_conditional_order", **args))["condition"]
        approvals = s.worker.service.approvals
        listed = (await approvals.list_approvals(ListApprovalsArgs()))["approvals"]
        assert [(a["kind"], a["order"]["client_order_id"]) for a in listed] == [
            ("condition", waiting["client_order_id"]), ("condition", other["client_order_id"])]
        await at_quote(s, at("09:30:10"))   # through the stop, but neither is armed yet
        assert not s.counter.orders
        decided = await approvals.decide_approval(DecideApprovalArgs(
            approval_id=waiting["approval"]["approval_id"], decision="approve", note="ok", channel="cli"))
        assert decided["condition"]["status"] == "armed"
        denied = await approvals.decide_approval(DecideApprovalArgs(
            approval_id=other["approval"]["approval_id"], decision="deny", channel="cli"))
        assert denied["condition"]["status"] == "canceled"
        await at_quote(s, at("09:30:13"))   # armed now: it fires without asking anyone
        assert (await condition(s, waiting["condition_id"]))["status"] == "triggered"
        assert len(broker_orders(s, waiting["client_order_id"])) == 1 and not broker_orders(s, other["client_order_id"])
        with pytest.raises(QmtError) as again:
            await approvals.decide_approval(DecideApprovalArgs(
                approval_id=other["approval"]["approval_id"], decision="approve", channel="cli"))
        assert again.value.code is ErrorCode.INVALID_ARGUMENT


def test_a_buy_trailing_stop_follows_the_low_and_fires_on_the_rebound() -> None:
    """The trigger logic itself (domain/conditions.py): a buy's mark is the low, its stop above it."""
    t = make_trigger("trailing_stop", None, None, Decimal("0.30"), None)
    c = Condition(condition_id="cd-1", client_order_id="c-1", account="sim", code=CODE, name="浦发银行",
                  side=Side.BUY, volume=100, trigger=t, order=None, status=ConditionStatus.ARMED,
                  created_at="2024-03-01T09:30:04.000+08:00", high_water=Decimal("10.00"))
    path = []
    for last in ("10.20", "9.80", "9.90", "9.60", "9.85", "9.90"):
        mark = moved_mark(c, Decimal(last))
        if mark is not None:
            c = replace(c, high_water=mark)
        path.append((str(c.high_water), str(stop_level(c)), fires(c, Decimal(last), at("09:31:00"))))
    assert path == [("10.00", "10.30", False), ("9.80", "10.10", False), ("9.80", "10.10", False),
                    ("9.60", "9.90", False), ("9.60", "9.90", False), ("9.60", "9.90", True)]


async def test_an_unsent_triggered_order_found_at_start_waits_for_a_session_that_takes_it(
    clock: ManualClock, tmp_path: Path,
) -> None:
    """What a worker killed between the trigger and the order record leaves (test_conditions_restart.py
    makes it with kill -9), met by a worker that starts at lunch: it sends nothing until 13:00, then once."""
    rows = [(DAY, "11:00:00", 10.00), (DAY, "13:00:03", 9.90)]
    async with market(tmp_path, clock, rows, at("11:00:01")) as s:
        c = (await s.ok("place_conditional_order", account="sim", code=CODE, side="sell", volume=300,
                        trigger={"type": "price_at_or_below", "price": 9.5},
                        order={"order_type": "limit", "price": 9.8}))["condition"]
        conds = s.worker.service.conditions
        armed = conds.find("sim", c["condition_id"])
        conds.save(armed.advanced(ConditionStatus.TRIGGERED, triggered_at=c["created_at"]))
    clock.set(at("11:40:00"))
    worker = make_worker(parse_config(sections(tmp_path / "data")), tmp_path / "home", clock)
    try:
        async with open_session(worker, clock) as again:
            await at_quote(again, at("11:40:01"))
            await at_quote(again, at("12:59:59"))
            assert not broker_orders(again, c["client_order_id"])
            assert (await condition(again, c["condition_id"]))["order_status"] is None
            for when in ("13:00:04", "13:00:07"):
                await at_quote(again, at(when))
            assert len(broker_orders(again, c["client_order_id"])) == 1
            assert (await condition(again, c["condition_id"]))["order_status"] == "succeeded"
    finally:
        await worker.close()


async def test_a_condition_written_in_a_batch_that_does_not_commit_is_not_taken_from_the_watchers_view(
    clock: ManualClock, tmp_path: Path,
) -> None:
    # The watcher keeps the armed conditions in memory beside the journal: a write whose batch rolls
    # back (a full disk at the commit, say) must leave that view as the journal has it, still armed.
    async with market(tmp_path, clock, STOP_PATH, at("09:30:04")) as s:
        placed = await s.ok("place_conditional_order", account="sim", code=CODE, side="sell", volume=500,
                            trigger={"type": "price_at_or_below", "price": 9.85},
                            order={"order_type": "limit", "price": 9.80})
        conds = s.worker.service.conditions
        armed = conds.active()[placed["condition"]["condition_id"]]
        with pytest.raises(RuntimeError), s.worker.service.journal.batch():
            conds.save(armed.advanced(ConditionStatus.CANCELED, status_msg="never committed"))
            raise RuntimeError("the commit fails")
        assert conds.active()[armed.condition_id].status is ConditionStatus.ARMED
        assert (await condition(s, armed.condition_id))["status"] == "armed"
        await at_quote(s, at("09:30:10"))   # and it still fires
        assert len(broker_orders(s, armed.client_order_id)) == 1


async def test_a_round_that_fires_on_its_first_code_still_fires_later_codes_and_writes_every_mark(
    clock: ManualClock, tmp_path: Path,
) -> None:
    """One round over two codes: the stop of the first (600000.SH, sorted first) fires and cancels its
    OCO sibling; the later code's take-profit fires in the same round, its trailing stop's mark moves and
    is written, and its stop far below stays armed (the round looks only at the triggers a quote can
    meet). Each fires once: the next rounds send nothing more."""
    other = "600519.SH"
    write_ticks(tmp_path / "data", [(DAY, "09:30:03", 100.00), (DAY, "09:30:06", 103.00)], code=other)
    accounts = {"sim": {"account_id": "88000001", "positions": {CODE: 1000, other: 1000}}}
    rows = [(DAY, "09:30:03", 10.00), (DAY, "09:30:06", 9.80)]
    async with market(tmp_path, clock, rows, at("09:30:04"), accounts=accounts) as s:
        def arm(code: str, trigger: dict[str, Any], price: float, oco: str | None = None) -> Any:
            return s.ok("place_conditional_order", account="sim", code=code, side="sell", volume=200, trigger=trigger,
                        order={"order_type": "limit", "price": price}, oco_group=oco)
        stop = (await arm(CODE, {"type": "price_at_or_below", "price": 9.85}, 9.80, "exit"))["condition"]
        sibling = (await arm(CODE, {"type": "price_at_or_above", "price": 10.50}, 10.50, "exit"))["condition"]
        profit = (await arm(other, {"type": "price_at_or_above", "price": 102}, 102.00))["condition"]
        trail = (await arm(other, {"type": "trailing_stop", "trail_percent": 5}, 90.00))["condition"]
        far = (await arm(other, {"type": "price_at_or_below", "price": 91}, 91.00))["condition"]
        assert trail["high_water"] == 100.00
        conds = s.worker.service.conditions
        assert [c.condition_id for c in conds.armed_in_group("sim", "exit")] == [stop["condition_id"],
                                                                                 sibling["condition_id"]]
        await at_quote(s, at("09:30:07"))   # 9.80 and 103.00: one round
        got = {c["condition_id"]: c for c in (await s.ok("list_conditional_orders", account="sim"))["conditions"]}
        assert got[stop["condition_id"]]["status"] == "triggered"
        assert got[sibling["condition_id"]]["status"] == "canceled"
        won = got[profit["condition_id"]]
        assert (won["status"], won["triggered_price"]) == ("triggered", 103)
        assert got[trail["condition_id"]]["status"] == "armed" and got[trail["condition_id"]]["high_water"] == 103.00
        assert got[far["condition_id"]]["status"] == "armed"
        for later in ("09:30:10", "09:30:13"):
            await at_quote(s, at(later))
        for c in (stop, profit):
            assert len(broker_orders(s, c["client_order_id"])) == 1
        assert not broker_orders(s, sibling["client_order_id"]) and not broker_orders(s, far["client_order_id"])
        # The mark, as the journal has it: a new worker on the state dir would read 103.
        stored = s.worker.service.journal.conditions("sim", condition_id=trail["condition_id"])
        assert Decimal(json.loads(stored[0])["high_water"]) == 103
        # The watcher's views by code and by group are the armed view's, in its order.
        assert conds.armed_in_group("sim", "exit") == []
        by_code = conds.armed_by_code()
        assert {cid: c for group in by_code.values() for cid, c in group.items()} == conds.active()
        assert {code: list(group) for code, group in by_code.items()} == \
            {code: [cid for cid, c in conds.active().items() if c.code == code] for code in by_code}
        assert list(by_code[other]) == [trail["condition_id"], far["condition_id"]]
