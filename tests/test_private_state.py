"""State files are private to their owner: the state dir is 0700 and every file in it 0600, whatever
the umask, on a fresh start and after an older, looser one; one worker per state dir, for real."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
import uvicorn
from conftest import make_worker
from mcp import Client, StdioServerParameters

from qmt_mcp.clock import ManualClock
from qmt_mcp.config import Config
from qmt_mcp.server.supervisor import socket_path
from qmt_mcp.statedir import private_unix_socket

pytestmark = [pytest.mark.anyio, pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")]


def _modes(home: Path) -> dict[str, str]:
    """Every entry of the state dir (and the dir itself as "."), with its permission bits."""
    out = {".": oct(home.stat().st_mode & 0o777)}
    for entry in home.iterdir():
        out[entry.name] = oct(entry.lstat().st_mode & 0o777)
    return out


def _private(modes: dict[str, str]) -> dict[str, str]:
    return {name: "0o700" if name == "." else "0o600" for name in modes}


def _umask_000(*args: str) -> list[str]:
    """A qmt-mcp command line run under umask 000: only the package itself can make its files private."""
    return ["sh", "-c", f"umask 000 && exec {sys.executable} -m qmt_mcp {' '.join(args)}"]


async def _call(c: Client, tool: str, **args: Any) -> dict[str, Any]:
    res = await c.call_tool(tool, args)
    assert res.structured_content is not None and res.structured_content["ok"], res.structured_content
    return res.structured_content


async def test_a_served_session_leaves_a_0700_state_dir_with_every_file_0600(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cmd = _umask_000("serve")
    params = StdioServerParameters(command=cmd[0], args=cmd[1:], env={"QMT_MCP_HOME": str(home)})
    with anyio.fail_after(60):
        async with Client(params) as c:
            q = (await _call(c, "get_quote", codes=["600000.SH"]))["quotes"][0]
            await _call(c, "place_order", account="sim", code="600000.SH", side="buy", volume=100,
                        price=q["ask_prices"][0], client_order_id="private-1", wait_seconds=5)
            await _call(c, "reset_risk", account="sim", note="audited")
            running = _modes(home)
            assert {"sim.sqlite-wal", "worker.sqlite-wal", "audit.jsonl", "confirm.key", "operator.key", "worker.json",
                    "worker.lock"} <= set(running)
            assert running == _private(running)
            sock = socket_path(home)
            assert stat.S_ISSOCK(sock.stat().st_mode) and oct(sock.stat().st_mode & 0o777) == "0o600"
    after = _modes(home)
    assert after == _private(after)


def test_config_init_writes_the_config_0600_in_a_0700_dir(tmp_path: Path) -> None:
    home = tmp_path / "home"
    res = subprocess.run(_umask_000("config", "init"), env={**os.environ, "QMT_MCP_HOME": str(home)},
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    assert _modes(home) == {".": "0o700", "config.toml": "0o600"}


async def test_a_loose_state_dir_from_before_is_tightened_with_a_warning(
    clock: ManualClock, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    home = tmp_path / "home"
    await make_worker(Config(), home, clock).close()   # the files an earlier run left
    (home / "worker.sqlite").write_bytes(b"this is not a database" * 100)   # and one got damaged
    for path in [home, *home.iterdir()]:
        path.chmod(0o755 if path == home else 0o644)
    with caplog.at_level("WARNING", logger="qmt_mcp.statedir"):
        worker = make_worker(Config(), home, clock)
    try:
        assert any(r.levelname == "WARNING" and r.name == "qmt_mcp.statedir" for r in caplog.records)
        modes = _modes(home)
        assert any(".corrupt-" in name for name in modes)   # the quarantined copy is private too
        assert modes == _private(modes)
    finally:
        await worker.close()


async def test_a_second_worker_on_the_same_state_dir_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "QMT_MCP_HOME": str(home), "QMT_WORKER_TOKEN": "t"}
    first_sock = tmp_path / "first.sock"
    worker = [sys.executable, "-m", "qmt_mcp", "worker", "--uds"]
    first = await anyio.open_process([*worker, str(first_sock)], env=env)
    try:
        with anyio.fail_after(30):
            while not first_sock.exists():
                assert first.returncode is None, "the first worker exited"
                await anyio.sleep(0.05)
            second = await anyio.run_process([*worker, str(tmp_path / "second.sock")], env=env, check=False)
        assert second.returncode == 2   # ConfigError: another worker holds the state dir
        assert first.returncode is None and first_sock.exists()
    finally:
        first.terminate()
        with anyio.fail_after(10):
            await first.wait()


# ----- what another local user could have written is not trusted

NOBODY = 65534


@asynccontextmanager
async def _fake_worker(sock: Path) -> AsyncIterator[list[bytes]]:
    """A stand-in "worker" that answers every request with ok and records the bearer token it was sent."""
    seen: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        seen.append(dict(scope["headers"]).get(b"authorization", b""))
        body = b'{"ok": true, "granted": true, "instance": "fake", "pid": 1, "config": {}, "others": 0}'
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    # Bound 0600 like the real worker's socket (only what a case changes is wrong with it), and
    # listening before uvicorn serves it, so a connection waits in the backlog instead of failing.
    listening = private_unix_socket(sock)
    listening.listen(16)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [listening])
        try:
            yield seen
        finally:
            server.should_exit = True


def _plant(home: Path, sock: Path) -> None:
    home.mkdir(mode=0o700)
    (home / "worker.json").write_text(json.dumps({"uds": str(sock), "url": None, "token": "t", "pid": 1}))
    (home / "worker.json").chmod(0o600)


TAMPER = {
    "worker_file_of_another_user": lambda home, sock: os.chown(home / "worker.json", NOBODY, NOBODY),
    "worker_file_others_may_write": lambda home, sock: (home / "worker.json").chmod(0o666),
    "socket_of_another_user": lambda home, sock: os.chown(sock, NOBODY, NOBODY),
    "socket_in_a_dir_others_may_write": lambda home, sock: sock.parent.chmod(0o777),
}


@pytest.mark.parametrize("case", sorted(TAMPER))
async def test_a_worker_file_or_socket_another_user_could_have_written_is_not_trusted(
    tmp_path: Path, case: str,
) -> None:
    if "another_user" in case and os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")
    home, fake_dir = tmp_path / "home", tmp_path / "fake"
    fake_dir.mkdir(mode=0o755)
    sock = fake_dir / "w.sock"
    with anyio.fail_after(60):
        async with _fake_worker(sock) as seen:
            _plant(home, sock)
            TAMPER[case](home, sock)
            params = StdioServerParameters(command=sys.executable, args=["-m", "qmt_mcp", "serve"],
                                           env={"QMT_MCP_HOME": str(home)})
            async with Client(params) as c:
                health = await _call(c, "health")
                assert health["worker"]["state"] == "up"
                ours = json.loads((home / "worker.json").read_text())
            assert seen == []   # the stand-in never heard from the server, let alone its token
            assert ours["uds"] == str(socket_path(home)) and ours["token"] != "t"
