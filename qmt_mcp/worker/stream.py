"""The worker's event stream: GET /v1/events, Server-Sent Events, resumable by seq.

Frames: first `event: hello` (journal_id, last_seq), then `event: journal` frames with `id: <seq>`
in seq order, and `event: heartbeat` when nothing happened for `heartbeat_s` seconds, so a reader can
tell a quiet market from a wedged worker. Resume with `Last-Event-ID: <seq>` (or `?after=<seq>`):
the journal is durable and seq is never reused, so a resumed reader misses nothing;
`Last-Event-ID: latest` starts after the last event (a new reader with nothing to catch up on). A reader that
knew another journal_id must re-read state: its seq means nothing here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio

from .journal import Journal

BATCH = 500


# JSON leaves these raw, but line readers (Python's str.splitlines, some SSE parsers) end a line at
# each: one in a note or a broker remark would cut a frame in two. Escaped, they stay the same text.
_LINE_BREAKS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"})


def sse(event: str, data: dict[str, Any], event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    body = json.dumps(data, ensure_ascii=False).translate(_LINE_BREAKS)
    return f"{head}event: {event}\ndata: {body}\n\n".encode()


async def event_frames(
    journal: Journal, after: int, next_change: Callable[[], anyio.Event], heartbeat_s: float,
) -> AsyncIterator[bytes]:
    last = journal.last_seq()
    if after < 0:
        after = last  # "latest": only what happens from now on
    yield sse("hello", {"journal_id": journal.journal_id, "last_seq": last, "after": after})
    cursor = after
    while True:
        changed = next_change()  # taken before reading, so no event slips between read and wait
        events = journal.events_after(cursor, BATCH)
        for ev in events:
            cursor = ev["seq"]
            yield sse("journal", ev, cursor)
        if events:
            continue
        with anyio.move_on_after(heartbeat_s) as scope:
            await changed.wait()
        if scope.cancelled_caught:
            yield sse("heartbeat", {"last_seq": cursor})
