"""A real `qmt-mcp worker` process on a state dir, for the tests that need one (start-up, kill -9)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio

from qmt_mcp.domain.errors import QmtError
from qmt_mcp.server.worker_client import WorkerClient


class WorkerProcess:
    """`qmt-mcp worker` on a state dir, reached through its HTTP API on a Unix socket, or with `port` on
    loopback TCP (`--host 127.0.0.1 --port`: the standalone worker a config's worker.url names)."""

    def __init__(self, home: Path, n: int, env: dict[str, str] | None = None, timeout_s: float = 10,
                 port: int | None = None) -> None:
        self.sock = home / f"w{n}.sock"
        self.url = f"http://127.0.0.1:{port}" if port is not None else None
        self.log = home.parent / f"worker-{n}.log"
        env = {**os.environ, "QMT_MCP_HOME": str(home), "QMT_WORKER_TOKEN": f"token-{n}", **(env or {})}
        listen = ["--uds", str(self.sock)] if port is None else ["--host", "127.0.0.1", "--port", str(port)]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "qmt_mcp", "worker", *listen],
                                         env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
        self.client = (WorkerClient.for_uds(str(self.sock), f"token-{n}", timeout_s=timeout_s) if self.url is None
                       else WorkerClient.for_url(self.url, f"token-{n}", timeout_s=timeout_s))

    async def ready(self) -> None:
        for _ in range(600):  # another process: polled, bounded
            if self.proc.poll() is not None:
                raise AssertionError(f"the worker exited at start: {self.stderr()}")
            try:
                await self.client.call("health", {})
                return
            except QmtError:
                await anyio.sleep(0.05)
        raise AssertionError("the worker did not start")

    async def buy(self, cid: str) -> dict[str, Any]:
        q = (await self.client.call("get_quote", {"codes": ["600000.SH"]}))["quotes"][0]
        return await self.client.call("place_order", {"account": "sim", "code": "600000.SH", "side": "buy",
                                                      "volume": 100, "price": q["ask_prices"][0],
                                                      "client_order_id": cid})

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    async def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        await self.client.aclose()

    async def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        await self.client.aclose()
