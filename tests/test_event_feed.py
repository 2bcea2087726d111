"""The server's event feed resumes after the worker's stream drops without missing a seq, notices a
journal it was not following, and the worker API survives garbage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import START, TOKEN, make_worker, serve_worker
from mcp.server.subscriptions import InMemorySubscriptionBus

from qmt_mcp.clock import ManualClock
from qmt_mcp.config import parse_config
from qmt_mcp.domain.events import RiskEvent
from qmt_mcp.server.events import EventFeed, LegacySubscriptions
from qmt_mcp.server.supervisor import socket_path
from qmt_mcp.server.worker_client import Endpoint, WorkerClient
from qmt_mcp.worker.stream import event_frames

pytestmark = pytest.mark.anyio


def _append(worker: Any, n: int) -> None:
    for i in range(n):
        worker.journal.append(RiskEvent(account="sim", rule="RESET", message=str(i)), START)
        worker.service.notify()


async def _until(pred: Any) -> None:
    for _ in range(1000):  # bounded; the caller's fail_after bounds it in time too
        if pred():
            return
        await anyio.sleep(0.01)
    raise AssertionError("condition never held")


async def test_feed_resumes_after_the_stream_drops_with_no_missing_seq(clock: ManualClock, tmp_path: Path) -> None:
    worker = make_worker(parse_config({"worker": {"heartbeat_s": 0.1}}), tmp_path / "h", clock)
    sock = socket_path(tmp_path / "s")
    seqs: list[int] = []
    client = WorkerClient(None, TOKEN)
    bus = InMemorySubscriptionBus()
    updated: list[str] = []
    bus.subscribe(lambda ev: updated.append(str(ev.uri)))  # type: ignore[attr-defined]
    feed = EventFeed(client, bus, LegacySubscriptions(), on_event=lambda ev: seqs.append(ev["seq"]))
    with anyio.fail_after(30):
        async with serve_worker(worker, sock), anyio.create_task_group() as tg:
            await client.rebind(Endpoint(str(sock)), TOKEN)
            tg.start_soon(feed.run)
            await feed.first_hello.wait()  # it starts at the journal's end
            _append(worker, 3)
            await _until(lambda: feed.last_seq == 3)
            # The worker becomes unreachable (its stream drops, reconnects fail) while its journal grows.
            await client.rebind(Endpoint(str(tmp_path / "nothing-here.sock")), TOKEN)
            await _until(lambda: not feed.connected)
            _append(worker, 4)
            await client.rebind(Endpoint(str(sock)), TOKEN)
            _append(worker, 2)
            await _until(lambda: feed.last_seq == 9)
            tg.cancel_scope.cancel()
    await client.aclose()
    assert seqs == list(range(1, 10))
    assert updated.count("qmt://health") == 9
    assert feed.gaps == 0
    await worker.close()


async def test_feed_notices_a_journal_it_was_not_following(clock: ManualClock, tmp_path: Path) -> None:
    first = make_worker(parse_config({}), tmp_path / "a", clock)
    second = make_worker(parse_config({}), tmp_path / "b", clock)  # a fresh journal, seq from 1 again
    sock_a, sock_b = socket_path(tmp_path / "sa"), socket_path(tmp_path / "sb")
    client = WorkerClient(None, TOKEN)
    bus = InMemorySubscriptionBus()
    updated: list[str] = []
    bus.subscribe(lambda ev: updated.append(str(ev.uri)))  # type: ignore[attr-defined]
    feed = EventFeed(client, bus, LegacySubscriptions())
    with anyio.fail_after(30):
        async with serve_worker(first, sock_a), serve_worker(second, sock_b), anyio.create_task_group() as tg:
            await client.rebind(Endpoint(str(sock_a)), TOKEN)
            tg.start_soon(feed.run)
            await feed.first_hello.wait()
            _append(first, 5)
            await _until(lambda: feed.last_seq == 5)
            updated.clear()
            await client.rebind(Endpoint(str(sock_b)), TOKEN)
            _append(second, 2)
            await _until(lambda: feed.gaps == 1 and feed.last_seq == 3)  # 2 events and the gap note
            tg.cancel_scope.cancel()
    await client.aclose()
    assert feed.journal_id == second.journal.journal_id
    assert "qmt://health" in updated
    gap = [e for e in second.journal.events("sim", 0, 100) if e["type"] == "gap"]
    assert len(gap) == 1 and gap[0]["previous_last_seq"] == 5
    await first.close()
    await second.close()


async def test_worker_answers_garbage_with_4xx_and_stays_up(clock: ManualClock, tmp_path: Path) -> None:
    worker = make_worker(parse_config({}), tmp_path / "h", clock)
    async with serve_worker(worker, socket_path(tmp_path / "s")) as wc:
        http = wc.http
        assert http is not None
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert (await http.post("/v1/get_quote", content=b"\x00\xffnot json", headers=auth)).status_code == 400
        assert (await http.post("/v1/get_quote", content=b"[1,2]", headers=auth)).status_code == 400
        assert (await http.post("/v1/get_quote", content=b"x" * 70_000, headers=auth)).status_code == 413
        assert (await http.post("/v1/no_such_call", json={}, headers=auth)).status_code == 404
        assert (await http.get("/v1/events", headers={**auth, "Last-Event-ID": "abc"})).status_code == 400
        r = await http.post("/v1/get_quote", json={"codes": 5}, headers=auth)
        assert r.status_code == 200 and r.json()["error"]["code"] == "INVALID_ARGUMENT"
        assert (await wc.call("health", {}))["worker"]["state"] == "up"
    await worker.close()


async def test_a_line_separator_in_a_note_does_not_stop_the_feed(session: Any) -> None:
    """U+2028 (or U+2029, U+0085) in any text, here a risk-reset note, once cut the frame in two and
    the feed then failed on it for good: no notification ever again."""
    feed = session.server.feed
    await session.ok("reset_risk", account="sim", note="checked\u2028with\u2029the desk\x85ok")
    placed = await session.ok("place_order", **await session.marketable_buy("after-sep"))
    with anyio.fail_after(10):
        await feed.reached(placed["journal_seq"] if "journal_seq" in placed else session.worker.journal.last_seq())
    assert feed.bad_frames == 0 and feed.connected
    notes = [e for e in (await session.ok("get_order_events", account="sim"))["events"] if e.get("rule") == "RESET"]
    assert notes[0]["message"] == "checked\u2028with\u2029the desk\x85ok"


async def test_a_frame_the_feed_cannot_read_is_counted_and_skipped() -> None:
    feed = EventFeed(WorkerClient(None, TOKEN), InMemorySubscriptionBus(), LegacySubscriptions())
    for bad in ("{not json", "[1, 2]", '{"no": "seq"}'):
        await feed._dispatch("journal", bad)
    await feed._dispatch("journal", '{"seq": 1, "account": "sim", "type": "risk"}')
    assert feed.bad_frames == 3 and feed.last_seq == 1


async def test_a_new_feed_starts_at_the_journals_end_instead_of_replaying_history(
    clock: ManualClock, tmp_path: Path,
) -> None:
    worker = make_worker(parse_config({"worker": {"heartbeat_s": 0.1}}), tmp_path / "h", clock)
    _append(worker, 50)  # a long history before this server started
    sock = socket_path(tmp_path / "s")
    client = WorkerClient(None, TOKEN)
    seqs: list[int] = []
    feed = EventFeed(client, InMemorySubscriptionBus(), LegacySubscriptions(),
                     on_event=lambda ev: seqs.append(ev["seq"]))
    with anyio.fail_after(30):
        async with serve_worker(worker, sock), anyio.create_task_group() as tg:
            await client.rebind(Endpoint(str(sock)), TOKEN)
            tg.start_soon(feed.run)
            await feed.first_hello.wait()
            assert feed.last_seq == 50
            _append(worker, 2)
            await _until(lambda: feed.last_seq == 52)
            tg.cancel_scope.cancel()
    await client.aclose()
    assert seqs == [51, 52]
    await worker.close()


async def test_the_event_stream_refuses_a_seq_it_cannot_read_with_an_envelope(session: Any) -> None:
    http = session.server.deps.client.http
    for bad in ("\u00b2".encode("latin-1"), b"1.5", b"-3", b"9" * 30):
        headers = {**session.server.deps.client.headers, "Last-Event-ID": bad}
        resp = await http.get("/v1/events", headers=headers)
        assert resp.status_code == 400 and resp.json()["error"]["code"] == "INVALID_ARGUMENT", bad


async def test_the_worker_stream_sends_the_events_of_one_read_in_one_piece(clock: ManualClock, tmp_path: Path) -> None:
    """What one read of the journal finds goes out as one write of whole frames, in seq order; a change
    after that is read once the stream has settled (worker/stream.py), and resumes after the last."""
    worker = make_worker(parse_config({}), tmp_path / "h", clock)
    _append(worker, 3)
    frames = event_frames(worker.journal, 0, worker.service.next_change, heartbeat_s=30, settle_s=0.001)
    with anyio.fail_after(10):
        hello = await anext(frames)
        first = await anext(frames)
        _append(worker, 2)
        second = await anext(frames)
    await frames.aclose()
    assert hello.startswith(b"event: hello\n")

    def seqs(chunk: bytes) -> list[int]:
        parts = [p for p in chunk.decode().split("\n\n") if p]
        assert all(p.split("\n")[1] == "event: journal" for p in parts)
        return [int(p.split("\n")[0].removeprefix("id: ")) for p in parts]

    assert seqs(first) == [1, 2, 3] and seqs(second) == [4, 5]
    await worker.close()
