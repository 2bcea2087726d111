"""The console's live event feed: GET /events, Server-Sent Events relayed from the worker's journal.

The console reads the worker's own stream (GET /v1/events, worker.py's token, as the MCP server reads
it) and passes each journal event on to the page as `event: journal` with its seq as the SSE id, so a
browser that reconnects (EventSource does, by itself) sends `Last-Event-ID` and misses nothing; a new
page starts at the journal's end. The worker's heartbeats become SSE comments, which keep the
connection open without reaching the page. When the worker is gone or restarted the relay ends with
an `event: down` frame, and the browser's reconnect finds the worker afresh.

The page appends each event with textContent (never markup), so a note or a broker name in an event
is text.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import httpx

from ..domain.errors import QmtError
from ..sse import sse_frames

if TYPE_CHECKING:
    from .app import Worker

log = logging.getLogger("qmt_mcp.console")
RETRY_MS = 1000   # how soon a browser tries again after the relay ended


def frame(event: str, data: dict[str, object], event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def resume_from(last_event_id: str | None) -> str:
    """Where to start in the worker's journal: after the seq the browser last saw, else its end."""
    raw = (last_event_id or "").strip()
    return raw if raw.isascii() and raw.isdigit() and len(raw) <= 19 else "latest"


async def relay(worker: Worker, last_event_id: str | None) -> AsyncIterator[bytes]:
    yield f"retry: {RETRY_MS}\n\n".encode()
    try:
        endpoint, token = worker.stream_endpoint()
    except QmtError as exc:
        yield frame("down", {"code": exc.code.value, "message": exc.message})
        return
    headers = {"Authorization": f"Bearer {token}", "Last-Event-ID": resume_from(last_event_id)}
    try:
        async with endpoint.http() as http, http.stream(
                "GET", "/v1/events", headers=headers, timeout=httpx.Timeout(10.0, read=90.0)) as resp:
            if resp.status_code != 200:
                yield frame("down", {"code": "WORKER_UNAVAILABLE",
                                     "message": f"the worker's event stream answered HTTP {resp.status_code}"})
                return
            async for kind, data in sse_frames(resp):
                out = _passed_on(kind, data)
                if out:
                    yield out
    except (httpx.HTTPError, OSError) as exc:
        log.debug("worker event stream dropped: %r", exc)
    yield frame("down", {"code": "WORKER_UNAVAILABLE", "message": "the worker's event stream ended"})


def _passed_on(kind: str, data: str) -> bytes:
    if kind == "heartbeat":
        return b": heartbeat\n\n"
    try:
        payload = json.loads(data) if data else {}
    except ValueError:
        return b""
    if not isinstance(payload, dict):
        return b""
    if kind == "hello":
        return frame("hello", {"last_seq": payload.get("last_seq")})
    if kind == "journal" and isinstance(payload.get("seq"), int):
        return frame("journal", payload, payload["seq"])
    return b""
