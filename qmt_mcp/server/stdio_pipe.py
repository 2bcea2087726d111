"""The stdio transport's input and output read and written from the event loop when they are pipes.

The SDK's stdio server writes each message to stdout through anyio's file wrapper: a write and a
flush, each handed to a worker thread and back. Two thread round trips per message sit on the path
of every notification, one after the other (its writer takes the next message only when the last is
flushed): a burst of 50 quote notifications waited ~25 ms on them alone. On a pipe the same bytes can
be written from the loop without ever blocking it: while the pipe has a free page, a write of up to
PIPE_BUF bytes does not block, and when it is full the writer waits on the loop for room (the reader
is slow: that wait is the backpressure the SDK's writer had, minus the threads).

Its reader likewise reads each line in a worker thread, so every request woke a thread, which then
woke the loop: one more wakeup per call, on the path of every tool call. On a pipe the loop waits
until the pipe is readable and reads what is there (never blocking: a readable pipe answers a read
at once).

Anything but a pipe (a file, a terminal, a socket shared with stdin, Windows) keeps the SDK's own
transport, for each side on its own. Like the SDK's, this one moves the wire off fd 1 while serving
(fd 1 then points at stderr, so a stray print or a child's output cannot corrupt the protocol) and
fd 0 off the client's pipe (to the null device), and puts them back after.
"""

from __future__ import annotations

import codecs
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


class PipeIn:
    """An async text file as the SDK's stdio reader uses it (`async for line in ...`) over a pipe's fd."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._pending = bytearray()
        self._eof = False

    def __aiter__(self) -> PipeIn:
        return self

    async def __anext__(self) -> str:
        while True:
            cut = self._pending.find(b"\n")
            if cut >= 0:
                line = bytes(self._pending[:cut + 1])
                del self._pending[:cut + 1]
                # Whole lines only: a newline byte is never part of a longer UTF-8 character.
                return _decode(line)
            if self._eof:
                if not self._pending:
                    raise StopAsyncIteration
                rest = bytes(self._pending)
                self._pending.clear()
                return _decode(rest)
            await anyio.wait_readable(self.fd)
            chunk = os.read(self.fd, 65536)
            if chunk:
                self._pending += chunk
            else:
                self._eof = True


def _decode(line: bytes) -> str:
    return codecs.decode(line, "utf-8", errors="replace")   # as the SDK's reader decodes


def _is_pipe(fd: int) -> bool:
    try:
        return stat.S_ISFIFO(os.fstat(fd).st_mode)
    except OSError:
        return False


def _is_own_pipe(out_fd: int, in_fd: int) -> bool:
    """fd `out_fd` is a pipe that is not also `in_fd` (one bidirectional FIFO as both would be)."""
    try:
        out, inp = os.fstat(out_fd), os.fstat(in_fd)
    except OSError:
        return False
    return stat.S_ISFIFO(out.st_mode) and (out.st_dev, out.st_ino) != (inp.st_dev, inp.st_ino)


@contextmanager
def _moved(fd: int, stand_in: int) -> Iterator[int]:
    """The wire on `fd` as a private duplicate (close-on-exec, above the standard fds), with `fd`
    pointing at `stand_in` meanwhile; `fd` is the wire again afterwards."""
    import fcntl

    wire = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    try:
        os.dup2(stand_in, fd)
        try:
            yield wire
        finally:
            os.dup2(wire, fd)
    finally:
        os.close(wire)


@contextmanager
def claimed_pipe(out_fd: int = 1, in_fd: int = 0, divert_to: int = 2) -> Iterator[PipeOut | None]:
    """The wire on fd `out_fd` as a PipeOut on a private duplicate, with `out_fd` pointed at
    `divert_to` meanwhile; None (nothing touched) when `out_fd` is not a pipe of its own, or off POSIX."""
    if sys.platform == "win32" or not hasattr(select, "poll") or not _is_own_pipe(out_fd, in_fd):
        yield None
        return
    with _moved(out_fd, divert_to) as wire:
        yield PipeOut(wire)


@contextmanager
def claimed_input(in_fd: int = 0) -> Iterator[PipeIn | None]:
    """The wire on fd `in_fd` as a PipeIn on a private duplicate, with `in_fd` pointed at the null
    device meanwhile (as the SDK does: a child or a stray read finds EOF, not the client's requests);
    None (nothing touched) when `in_fd` is not a pipe, or off POSIX."""
    if sys.platform == "win32" or not _is_pipe(in_fd):
        yield None
        return
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with _moved(in_fd, null) as wire:
            yield PipeIn(wire)
    finally:
        os.close(null)


async def serve_stdio(server: MCPServer) -> None:
    """`server.run_stdio_async()`, with the input and the output on the loop where they are pipes."""
    with claimed_pipe() as out:
        if out is None:
            await server.run_stdio_async()
            return
        with claimed_input() as inp:
            low = server._lowlevel_server   # what run_stdio_async runs, given our stdin and stdout
            async with stdio_server(stdin=inp, stdout=out) as (read_stream, write_stream):  # type: ignore[arg-type]
                await low.run(read_stream, write_stream, low.create_initialization_options())
