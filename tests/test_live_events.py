"""Live events: the worker's resumable SSE stream, resource update notifications on both protocol
eras, long-poll that returns on the first event, and progress while an order call waits."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import TOKEN, Session, make_worker, open_session, serve_worker
from mcp import MCPDeprecationWarning
from mcp.types import ResourceUpdatedNotification

from qmt_mcp.clock import ManualClock
from qmt_mcp.config import parse_config
from qmt_mcp.domain.events import RiskEvent
from qmt_mcp.server.supervisor import socket_path

pytestmark = pytest.mark.anyio


async def _frames(wc: Any, after: int, count: int) -> list[tuple[str, dict[str, Any]]]:
    frames: list[tuple[str, dict[str, Any]]] = []
    headers = {"Authorization": f"Bearer {TOKEN}", "Last-Event-ID": str(after)}
    async with wc.http.stream("GET", "/v1/events", headers=headers) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        kind = ""
        async for line in resp.aiter_lines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                frames.append((kind, json.loads(line[5:])))
                if len(frames) == count:
                    return frames
    return frames


async def test_worker_stream_says_hello_resumes_after_last_event_id_and_beats_when_quiet(
    clock: ManualClock, tmp_path: Path,
) -> None:
    worker = make_worker(parse_config({"worker": {"heartbeat_s": 0.05}}), tmp_path / "h", clock)
    for i in range(3):
        worker.journal.append(RiskEvent(account="sim", rule="RESET", message=str(i)), clock.now())
    async with serve_worker(worker, socket_path(tmp_path / "s")) as wc:
        with anyio.fail_after(10):
            frames = await _frames(wc, 1, 4)
        assert frames[0][0] == "hello" and frames[0][1]["journal_id"] == worker.journal.journal_id
        assert [(k, f["seq"]) for k, f in frames[1:3]] == [("journal", 2), ("journal", 3)]
        assert frames[3][0] == "heartbeat" and frames[3][1]["last_seq"] == 3
        r = await wc.http.get("/v1/events")  # no token
        assert r.status_code == 401
    await worker.close()


async def _place_resting(s: Session, cid: str) -> dict[str, Any]:
    q = (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
    return (await s.ok("place_order", account="sim", code="600000.SH", side="buy", volume=100,
                       price=q["bid_prices"][0], client_order_id=cid))["order"]


async def _advance_until_filled(s: Session, cid: str) -> None:
    for _ in range(3000):
        await s.advance(3)
        rec = s.worker.journal.order_by_client_id("sim", cid)
        if rec is not None and rec.status.value == "succeeded":
            return
    raise AssertionError("never filled")


async def test_listen_subscription_gets_updates_and_the_resource_shows_the_fill(session: Session) -> None:
    order = await _place_resting(session, "sub-1")
    uri = f"qmt://accounts/sim/orders/{order['order_id']}"
    with anyio.fail_after(30):
        async with session.client.listen(resource_subscriptions=[uri, "qmt://accounts/sim/positions"]) as sub:
            await _advance_until_filled(session, "sub-1")
            seen: set[str] = set()
            async for event in sub:
                seen.add(str(event.uri))  # type: ignore[union-attr]
                if seen == {uri, "qmt://accounts/sim/positions"}:
                    break
    body = json.loads((await session.client.read_resource(uri)).contents[0].text)  # type: ignore[union-attr]
    assert body["order"]["status"] == "succeeded"
    assert any(e["type"] == "trade" for e in body["events"])


async def test_legacy_subscribe_gets_resource_updated_notifications(clock: ManualClock, tmp_path: Path) -> None:
    got: list[str] = []
    arrived = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            got.append(str(message.params.uri))
            arrived.set()

    worker = make_worker(parse_config({}), tmp_path / "h", clock)
    async with open_session(worker, clock, mode="legacy", message_handler=on_message) as s:
        caps = s.client.server_capabilities
        assert caps is not None and caps.resources is not None and caps.resources.subscribe is True
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)  # removed in 2026-07-28; still ours to serve
            await s.client.subscribe_resource("qmt://accounts/sim/events")
        q = (await s.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
        await s.ok("place_order", account="sim", code="600000.SH", side="buy", volume=100, price=q["ask_prices"][0])
        with anyio.fail_after(10):
            await arrived.wait()
        assert "qmt://accounts/sim/events" in got
    await worker.close()


async def test_long_poll_returns_as_soon_as_an_event_arrives(session: Session) -> None:
    start_seq = (await session.ok("get_order_events", account="sim"))["next_seq"]
    result: dict[str, Any] = {}

    async def poll() -> None:
        t0 = time.monotonic()
        result.update(await session.ok("get_order_events", account="sim", after_seq=start_seq, wait_seconds=30))
        result["elapsed"] = time.monotonic() - t0

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(poll)
            await anyio.sleep(0.2)  # let the long-poll start waiting
            await _place_resting(session, "poke-1")
    assert result["events"] and result["events"][0]["client_order_id"] == "poke-1"
    assert result["elapsed"] < 10  # far short of the 30 s it would wait for nothing


async def test_waiting_place_order_reports_progress_for_each_event(session: Session) -> None:
    q = (await session.ok("get_quote", codes=["600000.SH"]))["quotes"][0]
    progress: list[str] = []

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        progress.append(message or "")

    out: dict[str, Any] = {}

    async def place() -> None:
        res = await session.client.call_tool(
            "place_order", {"account": "sim", "code": "600000.SH", "side": "buy", "volume": 100,
                            "price": q["bid_prices"][0], "client_order_id": "prog-1", "wait_seconds": 30},
            progress_callback=on_progress)
        out.update(res.structured_content or {})

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(place)
            for _ in range(500):
                if session.worker.journal.order_by_client_id("sim", "prog-1") is not None:
                    break
                await anyio.sleep(0.01)
            await _advance_until_filled(session, "prog-1")
    assert out["order"]["status"] == "succeeded"
    assert any(m.startswith("order_status: succeeded") for m in progress), progress
    assert any(m.startswith("trade:") for m in progress), progress
