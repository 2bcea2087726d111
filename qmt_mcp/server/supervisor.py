"""Spawns the local worker as a child process and keeps it running.

The worker listens on a Unix socket under $QMT_MCP_HOME (loopback TCP on Windows) with a bearer
token made fresh for each spawn. If it dies, it is started again and `restarts` counts it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import anyio
from anyio.abc import Process

from .worker_client import WorkerClient

log = logging.getLogger("qmt_mcp.server")
READY_TIMEOUT_S = 30.0


def socket_path(home: Path) -> Path:
    path = home / "worker.sock"
    if len(str(path)) <= 100:
        return path
    # AF_UNIX paths are limited to ~107 bytes; a deep home dir gets a short stand-in.
    digest = hashlib.sha256(str(home).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"qmt-mcp-{digest}.sock"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WorkerSupervisor:
    def __init__(self, home: Path, config_path: Path | None, timeout_s: float) -> None:
        self.home = home
        self.config_path = config_path
        self.timeout_s = timeout_s
        self.token = secrets.token_urlsafe(32)
        self.restarts = 0
        self._process: Process | None = None
        self._stopping = False
        self._uds: Path | None = None
        self._port: int | None = None
        self.client: WorkerClient | None = None

    def _command(self) -> list[str]:
        cmd = [sys.executable, "-m", "qmt_mcp", "worker"]
        if self.config_path is not None:
            cmd += ["--config", str(self.config_path)]
        if os.name == "nt":
            self._port = _free_port()
            cmd += ["--host", "127.0.0.1", "--port", str(self._port)]
        else:
            self._uds = socket_path(self.home)
            cmd += ["--uds", str(self._uds)]
        return cmd

    async def _spawn(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        cmd = self._command()
        env = {**os.environ, "QMT_WORKER_TOKEN": self.token, "QMT_MCP_HOME": str(self.home)}
        # The worker's stdout must never reach ours: on stdio, ours is the MCP transport.
        self._process = await anyio.open_process(
            cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=None
        )
        if self.client is None:
            if self._uds is not None:
                self.client = WorkerClient.for_uds(str(self._uds), self.token, self.timeout_s)
            else:
                self.client = WorkerClient.for_url(f"http://127.0.0.1:{self._port}", self.token, self.timeout_s)
        await self._wait_ready()

    async def _wait_ready(self) -> None:
        assert self.client is not None  # noqa: S101 - set by _spawn just before
        with anyio.fail_after(READY_TIMEOUT_S):
            while True:
                if self._process is not None and self._process.returncode is not None:
                    raise RuntimeError(f"the worker exited during start (code {self._process.returncode})")
                try:
                    await self.client.call("health", {})
                    return
                except Exception:
                    await anyio.sleep(0.05)

    async def start(self) -> WorkerClient:
        await self._spawn()
        assert self.client is not None  # noqa: S101
        return self.client

    async def watch(self) -> None:
        """Restart the worker whenever it exits, until stop()."""
        while not self._stopping:
            proc = self._process
            if proc is None:
                return
            code = await proc.wait()
            if self._stopping:
                return
            self.restarts += 1
            log.warning("worker exited with code %s; restarting (restart #%d)", code, self.restarts)
            try:
                await self._spawn()
            except Exception:
                log.exception("worker restart failed; trying again")
                await anyio.sleep(1.0)

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    async def stop(self) -> None:
        self._stopping = True
        if self.client is not None:
            await self.client.aclose()
        proc = self._process
        if proc is not None and proc.returncode is None:
            proc.terminate()
            with anyio.move_on_after(5):
                await proc.wait()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
