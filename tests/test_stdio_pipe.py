"""The stdio transport's input and output on the event loop (server/stdio_pipe.py), on real pipes:
what is written arrives whole and in order, a reader that does not read makes the writer wait on the
loop (other tasks go on), requests are read whole however the client's writes split them, and each
wire is moved off its fd while serving and put back after."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest

from qmt_mcp.server.stdio_pipe import PipeIn, claimed_input, claimed_pipe

pytestmark = [pytest.mark.anyio, pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipes")]


async def _read_all(fd: int, n: int) -> bytes:
    got = b""
    while len(got) < n:
        await anyio.wait_readable(fd)
        got += os.read(fd, 65536)
    return got


async def test_a_full_pipe_makes_the_writer_wait_on_the_loop_and_every_byte_arrives_in_order(tmp_path: Path) -> None:
    r, w = os.pipe()
    os.set_blocking(w, False)   # a write that would block raises instead of hanging the test
    spare_in = os.open(tmp_path / "in", os.O_RDONLY | os.O_CREAT)
    null = os.open(os.devnull, os.O_WRONLY)
    done = anyio.Event()
    lines = [f'{{"n": {i}, "pad": "{"x" * 900}"}}\n' for i in range(400)]   # ~360 KB: several pipes full
    try:
        with claimed_pipe(w, spare_in, divert_to=null) as out:
            assert out is not None
            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    async def write_all() -> None:
                        for line in lines:
                            await out.write(line)
                            await out.flush()
                        done.set()
                    tg.start_soon(write_all)
                    await anyio.wait_all_tasks_blocked()
                    # Nobody has read: the writer waits for room, and this task runs meanwhile.
                    assert not done.is_set()
                    got = await _read_all(r, sum(len(s) for s in lines))
                assert done.is_set()
        assert got.decode().splitlines(keepends=True) == lines
    finally:
        for fd in (r, w, spare_in, null):
            os.close(fd)


def test_the_wire_moves_off_its_fd_while_serving_and_comes_back(tmp_path: Path) -> None:
    wire_r, wire_w = os.pipe()
    side_r, side_w = os.pipe()
    spare_in = os.open(tmp_path / "in", os.O_RDONLY | os.O_CREAT)
    try:
        with claimed_pipe(wire_w, spare_in, divert_to=side_w) as out:
            assert out is not None
            os.write(wire_w, b"stray\n")              # a print on "stdout" while serving...
            anyio.run(out.write, "{}\n")
            anyio.run(out.flush)
        assert os.read(side_r, 100) == b"stray\n"     # ...lands on the diverted fd
        assert os.read(wire_r, 100) == b"{}\n"        # and only the transport's output on the wire
        os.write(wire_w, b"after\n")                  # afterwards the fd is the wire again
        assert os.read(wire_r, 100) == b"after\n"
    finally:
        for fd in (wire_r, wire_w, side_r, side_w, spare_in):
            os.close(fd)


def test_anything_but_a_pipe_of_its_own_keeps_the_sdk_transport(tmp_path: Path) -> None:
    f = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    r, w = os.pipe()
    try:
        with claimed_pipe(f, r) as out:           # a file
            assert out is None
        with claimed_pipe(w, w) as out:           # the same pipe as stdin (one FIFO both ways)
            assert out is None
        os.write(f, b"untouched")
        assert (tmp_path / "out").read_bytes() == b"untouched"
    finally:
        for fd in (f, r, w):
            os.close(fd)


async def test_requests_are_read_as_whole_lines_however_the_client_splits_its_writes() -> None:
    r, w = os.pipe()
    inp = PipeIn(r)
    got: list[str] = []
    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                async def read_all() -> None:
                    async for line in inp:
                        got.append(line)
                tg.start_soon(read_all)
                text = '{"a": "浦发银行"}\n{"b": 2}\n{"c": 3}\n{"last": "no newline"}'.encode()
                split = text.index("发".encode()) + 1   # in the middle of a character, and of a line
                for piece in (text[:split], text[split:split + 20], text[split + 20:]):
                    os.write(w, piece)
                    await anyio.wait_all_tasks_blocked()   # the reader has taken what arrived, and waits
                os.close(w)
                w = -1
        assert got == ['{"a": "浦发银行"}\n', '{"b": 2}\n', '{"c": 3}\n', '{"last": "no newline"}']
    finally:
        for fd in (r, w):
            if fd >= 0:
                os.close(fd)


def test_the_input_wire_moves_off_its_fd_while_serving_and_comes_back(tmp_path: Path) -> None:
    wire_r, wire_w = os.pipe()
    f = os.open(tmp_path / "file", os.O_RDONLY | os.O_CREAT)
    saved = os.dup(0)
    try:
        os.dup2(wire_r, 0)
        os.write(wire_w, b'{"jsonrpc": "2.0"}\n')
        with claimed_input(0) as inp:
            assert inp is not None
            assert os.read(0, 100) == b""   # a child or a stray read sees the null device's EOF
            assert anyio.run(inp.__anext__) == '{"jsonrpc": "2.0"}\n'
        os.write(wire_w, b"after\n")
        assert os.read(0, 100) == b"after\n"   # afterwards fd 0 is the wire again
        with claimed_input(f) as inp:   # a file keeps the SDK's reader
            assert inp is None
    finally:
        os.dup2(saved, 0)
        for fd in (saved, wire_r, wire_w, f):
            os.close(fd)
