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
# How long the stream waits after a change before it reads the journal. A change is usually a call's
# (an order placed or cancelled), whose answer the worker writes at once; the MCP server relays that
# answer, then reads these events. Sent together they arrive together, and the server's event feed
# then takes its turn in the middle of relaying the answer (on stdio 0.15-0.3 ms of every place and
# cancel). A moment later they arrive once the answer is on its way, and whatever else changed in that
# moment comes in the same write.
SETTLE_S = 0.002


# JSON leaves these raw, but line readers (Python's str.splitlines, some SSE parsers) end a line at
# each: one in a note or a broker remark would cut a frame in two. Escaped, they stay the same text.
_LINE_BREAKS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"})


def sse(event: str, data: dict[str, Any], event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    body = json.dumps(data, ensure_ascii=False).translate(_LINE_BREAKS)
    return f"{head}event: {event}\ndata: {body}\n\n".encode()


async def event_frames(
    journal: Journal, after: int, next_change: Callable[[], anyio.Event], heartbeat_s: float,
    settle_s: float = SETTLE_S,
) -> AsyncIterator[bytes]:
    """The stream's bytes: the frames of each read of the journal in one piece."""
    last = journal.last_seq()
    if after < 0:
        after = last  # "latest": only what happens from now on
    yield sse("hello", {"journal_id": journal.journal_id, "last_seq": last, "after": after})
    cursor = after
    while True:
        changed = next_change()  # taken before reading, so no event slips between read and wait
        events = journal.events_after(cursor, BATCH)
        if events:
            cursor = events[-1]["seq"]
            yield b"".join(sse("journal", ev, ev["seq"]) for ev in events)
            continue
        with anyio.move_on_after(heartbeat_s) as scope:
            await changed.wait()
        if scope.cancelled_caught:
            yield sse("heartbeat", {"last_seq": cursor})
        elif settle_s > 0:
            await anyio.sleep(settle_s)
