"""`qmt-mcp worker --supervise` with real processes: a worker killed with SIGKILL is restarted, a worker
that stops answering its health check (SIGSTOP) is killed and restarted, and SIGTERM ends both."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from pathlib import Path

import anyio
import httpx
import pytest
from anyio.abc import Process

pytestmark = [pytest.mark.anyio, pytest.mark.skipif(sys.platform == "win32", reason="signals and Unix sockets")]
TOKEN = "watchdog-token"


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                out.append(int(entry.name))
    return out


async def healthy_child(watchdog: Process, sock: Path, not_pid: int | None = None) -> int:
    """Wait (bounded) until a worker child other than `not_pid` answers its health check."""
    transport = httpx.AsyncHTTPTransport(uds=str(sock))
    async with httpx.AsyncClient(transport=transport, timeout=1) as http:
        with anyio.fail_after(60):
            while True:
                kids = [k for k in children(watchdog.pid) if k != not_pid]
                if kids:
                    try:
                        r = await http.post("http://worker/v1/health", json={},
                                            headers={"Authorization": f"Bearer {TOKEN}"})
                        if r.status_code == 200:
                            return kids[0]

                    except httpx.HTTPError:
                        pass   # not listening yet
                await anyio.sleep(0.05)


async def test_the_watchdog_restarts_a_killed_worker_and_a_hung_one(tmp_path: Path) -> None:
    sock = Path(tempfile.mkdtemp(prefix="qmt-wd-")) / "w.sock"
    env = {**os.environ, "QMT_MCP_HOME": str(tmp_path / "home"), "QMT_WORKER_TOKEN": TOKEN}
    watchdog = await anyio.open_process(
        [sys.executable, "-m", "qmt_mcp", "worker", "--supervise", "--uds", str(sock), "--health-interval", "0.2",
         "--health-timeout", "0.5", "--health-misses", "2", "--health-startup", "3"], env=env, stdout=None,
        stderr=None)
    try:
        first = await healthy_child(watchdog, sock)
        os.kill(first, signal.SIGKILL)                         # a crash
        second = await healthy_child(watchdog, sock, not_pid=first)
        os.kill(second, signal.SIGSTOP)                        # a hang: alive but silent
        third = await healthy_child(watchdog, sock, not_pid=second)
        assert len({first, second, third}) == 3
        assert not await anyio.Path(f"/proc/{second}").exists()   # the hung one was killed and reaped
        watchdog.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            assert await watchdog.wait() == 0
        assert not await anyio.Path(f"/proc/{third}").exists()    # and it took its worker with it
    finally:
        if watchdog.returncode is None:
            watchdog.kill()
            await watchdog.wait()
