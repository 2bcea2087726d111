"""The stdio transport's output written from the event loop when stdout is a pipe.

The SDK's stdio server writes each message to stdout through anyio's file wrapper: a write and a
flush, each handed to a worker thread and back. Two thread round trips per message sit on the path
of every notification, one after the other (its writer takes the next message only when the last is
flushed): a burst of 50 quote notifications waited ~25 ms on them alone. On a pipe the same bytes can
be written from the loop without ever blocking it: while the pipe has a free page, a write of up to
PIPE_BUF bytes does not block, and when it is full the writer waits on the loop for room (the reader
is slow: that wait is the backpressure the SDK's writer had, minus the threads).

Anything but a pipe (a file, a terminal, a socket shared with stdin, Windows) keeps the SDK's own
transport. Like the SDK's, this one moves the wire off fd 1 while serving (fd 1 then points at stderr,
so a stray print or a child's output cannot corrupt the protocol) and puts it back after.
"""

from __future__ import annotations

import os
import select
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import anyio
from mcp.server.stdio import stdio_server

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

CHUNK = select.PIPE_BUF if hasattr(select, "PIPE_BUF") else 512   # a write this size never blocks on a free page


class PipeOut:
    """An async text file as the SDK's stdio writer uses it (`write`, then `flush`) over a pipe's fd."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._pending = bytearray()
        self._poll = select.poll()
        self._poll.register(fd, select.POLLOUT)

    async def write(self, text: str) -> int:
        self._pending += text.encode("utf-8")
        return len(text)

    async def flush(self) -> None:
        while self._pending:
            if not self._poll.poll(0):   # full: the reader is behind; wait on the loop, not a thread
                await anyio.wait_writable(self.fd)
                continue
            written = os.write(self.fd, self._pending[:CHUNK])
            del self._pending[:written]


def _is_own_pipe(out_fd: int, in_fd: int) -> bool:
    """fd `out_fd` is a pipe that is not also `in_fd` (one bidirectional FIFO as both would be)."""
    try:
        out, inp = os.fstat(out_fd), os.fstat(in_fd)
    except OSError:
        return False
    return stat.S_ISFIFO(out.st_mode) and (out.st_dev, out.st_ino) != (inp.st_dev, inp.st_ino)


@contextmanager
def claimed_pipe(out_fd: int = 1, in_fd: int = 0, divert_to: int = 2) -> Iterator[PipeOut | None]:
    """The wire on fd `out_fd` as a PipeOut on a private duplicate, with `out_fd` pointed at
    `divert_to` meanwhile; None (nothing touched) when `out_fd` is not a pipe of its own, or off POSIX."""
    if sys.platform == "win32" or not hasattr(select, "poll") or not _is_own_pipe(out_fd, in_fd):
        yield None
        return
    import fcntl

    wire = fcntl.fcntl(out_fd, fcntl.F_DUPFD_CLOEXEC, 3)
    try:
        os.dup2(divert_to, out_fd)
        try:
            yield PipeOut(wire)
        finally:
            os.dup2(wire, out_fd)
    finally:
        os.close(wire)


async def serve_stdio(server: MCPServer) -> None:
    """`server.run_stdio_async()`, with the output written from the loop when stdout is a pipe."""
    with claimed_pipe() as out:
        if out is None:
            await server.run_stdio_async()
            return
        low = server._lowlevel_server   # what run_stdio_async runs, given our stdout
        async with stdio_server(stdout=out) as (read_stream, write_stream):   # type: ignore[arg-type]
            await low.run(read_stream, write_stream, low.create_initialization_options())
