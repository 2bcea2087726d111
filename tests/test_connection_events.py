"""What the broker says about its connection reaches agents: a trader disconnect and a change in an
account's status at the counter are journaled as `disconnected` and `account_status` events, listed
by get_order_events and announced to `qmt://health` subscribers. Over the xtquant backend: the
wheel's own xttrader.py above the simulated native layer, through the MCP client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import Session, make_worker, open_session

from qmt_mcp.backends.xtq.adapter import XtQuantBroker
from qmt_mcp.backends.xtq.constants import ACCOUNT_STATUS
from qmt_mcp.clock import ManualClock
from qmt_mcp.config import parse_config
from qmt_mcp.domain.events import AccountStatus

pytestmark = pytest.mark.anyio
HEALTH = "qmt://health"


@asynccontextmanager
async def xtq_session(clock: ManualClock, home: Path) -> AsyncIterator[Session]:
    cfg = parse_config({"worker": {"backend": "xtquant", "call_timeout_s": 1.0, "submit_timeout_s": 1.0},
                        "xtquant": {"native": "sim"}, "risk": {"enabled": False}})
    worker = make_worker(cfg, home, clock)
    try:
        async with open_session(worker, clock) as s:
            yield s
    finally:
        await worker.close()


def broker_of(s: Session) -> XtQuantBroker:
    broker = s.worker.broker
    assert isinstance(broker, XtQuantBroker)
    return broker


async def events_of(s: Session, kind: str, count: int = 1) -> list[dict[str, Any]]:
    """The account's events of one type, once `count` of them are journaled (pushes arrive from
    xtquant's own threads); bounded by the caller's fail_after."""
    while True:
        changed = s.worker.service.next_change()
        found = [e for e in (await s.ok("get_order_events", account="sim"))["events"] if e["type"] == kind]
        if len(found) >= count:
            return found
        await changed.wait()


async def health_updated_after(s: Session, act: Any) -> None:
    """Run `act` while listening to qmt://health; return once the resource is announced as updated."""
    async with s.client.listen(resource_subscriptions=[HEALTH]) as sub:
        act()
        async for update in sub:
            if str(update.uri) == HEALTH:  # type: ignore[union-attr]
                return


async def test_a_trader_disconnect_is_a_disconnected_event_and_a_health_update(
    clock: ManualClock, tmp_path: Path
) -> None:
    async with xtq_session(clock, tmp_path / "home") as s:
        await s.ok("get_asset", account="sim")   # connected, the account subscribed
        with anyio.fail_after(10):
            await health_updated_after(s, broker_of(s).native.disconnect_all)
            [event] = await events_of(s, "disconnected")
        trader = (await s.ok("health"))["accounts"]["sim"]["trader"]
        assert trader["state"] == "lost"
        assert event["account"] == "sim" and event["time"] == trader["last_disconnect_at"]
        assert "miniQMT" in event["message"] and event["order_id"] is None


async def test_one_drop_is_one_disconnected_event_and_the_next_drop_another(
    clock: ManualClock, tmp_path: Path
) -> None:
    async with xtq_session(clock, tmp_path / "home") as s:
        await s.ok("get_asset", account="sim")
        broker = broker_of(s)
        with anyio.fail_after(10):
            broker.native.disconnect_all()
            await events_of(s, "disconnected")
            broker.on_disconnected()   # xtquant reporting the same drop again
            await s.worker.service.tick()   # reconnects with a fresh session
            assert (await s.ok("health"))["accounts"]["sim"]["trader"]["state"] == "alive"
            clock.advance(5)
            broker.native.disconnect_all()
            events = await events_of(s, "disconnected", 2)
        assert len(events) == 2 and events[0]["time"] < events[1]["time"]


async def test_an_account_status_change_at_the_counter_is_an_account_status_event_and_a_health_update(
    clock: ManualClock, tmp_path: Path
) -> None:
    async with xtq_session(clock, tmp_path / "home") as s:
        await s.ok("get_asset", account="sim")
        native = broker_of(s).native
        account_id = s.worker.service.cfg.accounts["sim"].account_id
        with anyio.fail_after(10):
            await health_updated_after(s, lambda: native.report_account_status(account_id, 6))   # after the close
            [closed] = await events_of(s, "account_status")
            native.report_account_status(account_id, 42)   # a number xtquant does not define
            events = await events_of(s, "account_status", 2)
        assert (closed["account"], closed["status"]) == ("sim", "closed")
        assert events[1]["status"] == "unknown"
        assert account_id not in str(events)   # named by the account's name, never its id


def test_every_xtquant_account_status_number_has_its_own_word() -> None:
    # xtconstant ACCOUNT_STATUS_INVALID (-1) .. ACCOUNT_STATUS_DISABLEBYUSER (9)
    assert sorted(ACCOUNT_STATUS) == list(range(-1, 10))
    assert len(set(ACCOUNT_STATUS.values())) == 11 and AccountStatus.UNKNOWN not in ACCOUNT_STATUS.values()
