"""Reading the worker's server-sent event streams (its journal's events, its quotes): one reader for
the MCP server's event feed, its quote hub and the operator console's relay."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

import httpx


def sse_frames(resp: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """The stream's frames as (event, data): `sse_events` of its body."""
    return sse_events(resp.aiter_bytes())


async def sse_events(chunks: AsyncIterable[bytes]) -> AsyncIterator[tuple[str, str]]:
    """The frames of a stream's body as (event, data). Lines are split at LF only (CR LF tolerated), not by
    `aiter_lines`, which also splits at U+2028, U+2029 and U+0085, which may sit inside a frame's text.
    A frame without an `event:` line (a comment, a `retry:`) is skipped."""
    kind, data, buffer = "", "", b""
    async for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            line = raw.removesuffix(b"\r").decode("utf-8", errors="replace")
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif line == "":
                if kind:
                    yield kind, data
                kind, data = "", ""
