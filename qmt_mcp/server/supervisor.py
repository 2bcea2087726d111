"""Finds or starts the local worker, and keeps one answering.

The first `qmt-mcp serve` on a state dir spawns the worker as its child (a Unix socket under
$QMT_MCP_HOME, loopback TCP on Windows, a bearer token made fresh for each spawn) and writes where it
listens and its token to `worker.json` (mode 0600). Another server on the same state dir (say Claude
Desktop and Claude Code at once, or `qmt-mcp health`) attaches to that worker instead: one worker per
state dir, because it alone may hold the paper counter and the journal. Whoever sees the worker die
brings one back (its own child is restarted; an attached server attaches again or spawns), and
`restarts` counts it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process

from ..domain.errors import QmtError
from ..statedir import private_dir
from .worker_client import Endpoint, WorkerClient

log = logging.getLogger("qmt_mcp.server")
READY_TIMEOUT_S = 30.0
ATTACHED_CHECK_S = 1.0


class WorkerStartError(RuntimeError):
    """The spawned worker exited before answering (for example: another one holds the state dir)."""


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
        self.client = WorkerClient(None, "", timeout_s, supervised=True)
        self.restarts = 0
        self.attached = False
        self._process: Process | None = None
        self._stopping = False

    @property
    def info_path(self) -> Path:
        return self.home / "worker.json"

    # ----- attach to a running worker
    def _read_info(self) -> dict[str, Any] | None:
        try:
            info = json.loads(self.info_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return info if isinstance(info, dict) and isinstance(info.get("token"), str) else None

    def _write_info(self, info: dict[str, Any]) -> None:
        tmp = self.info_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(info, f)
        os.replace(tmp, self.info_path)

    async def _try_attach(self) -> bool:
        info = self._read_info()
        if info is None or (self._process is not None and info.get("pid") == self._process.pid):
            return False
        uds, url = info.get("uds"), info.get("url")
        try:
            endpoint = Endpoint(uds if isinstance(uds, str) else None, url if isinstance(url, str) else None)
            await self.client.rebind(endpoint, info["token"])
        except ValueError:
            return False  # a damaged file: it says nothing usable about where a worker listens
        try:
            await self.client.call("health", {}, budget_s=2.0)
        except QmtError:
            return False
        self.attached = True
        log.info("attached to the running worker (pid %s)", info.get("pid"))
        return True

    # ----- spawn our own
    async def _spawn(self) -> None:
        private_dir(self.home)   # worker.json below carries the worker's bearer token
        token = secrets.token_urlsafe(32)
        cmd = [sys.executable, "-m", "qmt_mcp", "worker"]
        if self.config_path is not None:
            cmd += ["--config", str(self.config_path)]
        uds: str | None = None
        url: str | None = None
        if os.name == "nt":
            port = _free_port()
            url = f"http://127.0.0.1:{port}"
            cmd += ["--host", "127.0.0.1", "--port", str(port)]
        else:
            uds = str(socket_path(self.home))
            cmd += ["--uds", uds]
        env = {**os.environ, "QMT_WORKER_TOKEN": token, "QMT_MCP_HOME": str(self.home)}
        # The worker's stdout must never reach ours: on stdio, ours is the MCP transport.
        self._process = await anyio.open_process(
            cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=None
        )
        await self.client.rebind(Endpoint(uds, url), token)
        await self._wait_ready(self._process)
        self.attached = False
        self._write_info({"uds": uds, "url": url, "token": token, "pid": self._process.pid})

    async def _wait_ready(self, proc: Process) -> None:
        with anyio.fail_after(READY_TIMEOUT_S):
            while True:
                if proc.returncode is not None:
                    self._process = None
                    raise WorkerStartError(f"the worker exited during start (code {proc.returncode})")
                try:
                    await self.client.call("health", {}, budget_s=2.0)
                    return
                except QmtError:
                    await anyio.sleep(0.05)

    async def _connect(self) -> None:
        """Attach to a live worker, else start one; if another server wins the race to start it,
        attach to theirs once it answers."""
        if await self._try_attach():
            return
        try:
            await self._spawn()
        except WorkerStartError:
            # Another worker holds the state dir; it answers once its server has written worker.json.
            for _ in range(int(READY_TIMEOUT_S / 0.1)):
                if await self._try_attach():
                    return
                await anyio.sleep(0.1)
            raise

    async def start(self) -> WorkerClient:
        await self._connect()
        return self.client

    async def watch(self) -> None:
        """Bring a worker back whenever ours exits or the one we attached to stops answering."""
        while not self._stopping:
            proc = self._process
            if proc is not None:
                code = await proc.wait()
                if self._stopping:
                    return
                self._process = None
                log.warning("worker exited with code %s; restarting", code)
            else:
                await anyio.sleep(ATTACHED_CHECK_S)
                try:
                    await self.client.call("health", {}, budget_s=5.0)
                    continue
                except QmtError:
                    if self._stopping:
                        return
                    log.warning("the attached worker stopped answering; reconnecting")
            self.restarts += 1
            try:
                await self._connect()
            except Exception:
                log.exception("bringing the worker back failed; trying again")
                await anyio.sleep(1.0)

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    async def stop(self) -> None:
        self._stopping = True
        await self.client.aclose()
        proc = self._process
        if proc is None:
            return
        info = self._read_info()
        if info is not None and info.get("pid") == proc.pid:
            self.info_path.unlink(missing_ok=True)
        if proc.returncode is None:
            proc.terminate()
            with anyio.move_on_after(5):
                await proc.wait()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
