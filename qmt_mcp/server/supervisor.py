"""Finds or starts the local worker, holds it, and keeps one answering.

The first `qmt-mcp serve` on a state dir spawns the worker as its child (a Unix socket under
$QMT_MCP_HOME, loopback TCP on Windows, a bearer token made fresh for each spawn) and writes where it
listens and its token to `worker.json` (mode 0600). Another server on the same state dir (say Claude
Desktop and Claude Code at once, or `qmt-mcp health`) attaches to that worker instead: one worker per
state dir, because it alone may hold the paper counter and the journal.

- **Trust.** worker.json, the state dir and the socket are used only if this user owns them and
  nobody else can write them (statedir.distrust); otherwise this server starts a worker of its own.
- **One configuration.** Every server holds a lease on the worker (worker/leases.py), taken with
  the digests of its configuration. A worker on another configuration is refused, naming the
  sections that differ, while another server uses it; one that nobody holds is stopped and replaced.
- **No orphans.** The lease is renewed every LEASE_RENEW_S and lapses LEASE_TTL_S after the last
  renewal. A worker a server started exits once nobody holds it, so a server killed even with
  kill -9 does not leave its worker running.
- **Restarts are real ones.** Whoever finds the worker gone (its process exited; nothing listens at
  its address, or another worker does) brings one back: its own child is restarted, an attached
  server attaches again or spawns. A worker that is only slow to answer is waited for (the owner
  kills its own child after HUNG_MISSES unanswered renewals in a row: a hang). `restarts` counts how
  often the worker this server holds turned out to be another process than before.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process

from ..config import Config, ConfigError
from ..config_digest import differing, section_digests
from ..domain.errors import ErrorCode, QmtError
from ..statedir import Kind, distrust, private_dir
from .worker_client import Endpoint, WorkerClient, WorkerGone

log = logging.getLogger("qmt_mcp.server")
READY_TIMEOUT_S = 30.0
LEASE_TTL_S = 10.0       # the worker forgets a server this long after its last renewal
LEASE_RENEW_S = 2.0      # how often a server renews (it is also how a server checks on the worker)
RENEW_BUDGET_S = 5.0
HUNG_MISSES = 3
# Another holder silent this long has most likely been killed: its lease lapses within LEASE_TTL_S.
STALE_AFTER_S = 2 * LEASE_RENEW_S + 1


class WorkerStartError(RuntimeError):
    """The spawned worker exited before answering (for example: another one holds the state dir)."""


class WorkerMismatch(ConfigError):
    """The running worker runs another configuration than this server's, and is not replaced."""

    def __init__(self, message: str, *, others: int = 0, quiet_s: float = 0.0) -> None:
        super().__init__(message)
        self.others = others     # other servers holding it
        self.quiet_s = quiet_s   # since the most recent renewal by one of them


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


def read_worker_info(home: Path, say: Callable[[str], None], instead: str) -> dict[str, Any] | None:
    """What `home`/worker.json says (where the worker listens, its token), or None when it is missing,
    damaged or cannot be trusted (statedir.distrust; `say` is told why, and what happens `instead`).
    The operator CLI finds the worker the same way (operator_cli.py)."""
    info_path = home / "worker.json"
    checks: tuple[tuple[Path, Kind], ...] = ((home, "dir"), (info_path, "file"))
    for path, kind in checks:
        why = distrust(path, kind)
        if why is not None:
            if why != "missing":
                say(f"not using {info_path}: {why}; {instead}")
            return None
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and isinstance(info.get("token"), str) else None


def worker_endpoint(info: dict[str, Any], say: Callable[[str], None]) -> Endpoint | None:
    """Where worker.json's worker listens, if that place can be trusted."""
    uds, url = info.get("uds"), info.get("url")
    if os.name == "nt":
        return Endpoint(None, url) if isinstance(url, str) else None
    # On POSIX our servers always use a socket: any local user could open a loopback port.
    if not isinstance(uds, str):
        return None
    sock = Path(uds)
    why = distrust(sock.parent, "dir") or distrust(sock, "socket")
    if why is not None:
        if why != "missing":
            say(f"not using the worker socket {sock}: {why}")
        return None
    return Endpoint(uds, None)


class WorkerSupervisor:
    def __init__(
        self, home: Path, config_path: Path | None, timeout_s: float, cfg: Config | None = None, *,
        compare: bool = True,
    ) -> None:
        """`cfg` is the configuration this server runs on; with `compare`, a running worker on another
        one is not used (`qmt-mcp health` reports on whatever runs, so it does not compare)."""
        self.home = home
        self.config_path = config_path
        self.timeout_s = timeout_s
        self.client = WorkerClient(None, "", timeout_s, supervised=True)
        self.restarts = 0
        self.attached = False
        self.sections = section_digests(cfg) if cfg is not None and compare else None
        # The spawned worker reads its token from the variable its config names (default QMT_WORKER_TOKEN).
        self.token_env = cfg.worker.token_env if cfg is not None else "QMT_WORKER_TOKEN"
        self.holder = secrets.token_hex(8)   # this server's name in the worker's leases
        self._instance: str | None = None
        self._process: Process | None = None
        self._stopping = False
        self._said: set[str] = set()

    @property
    def info_path(self) -> Path:
        return self.home / "worker.json"

    def _say_once(self, text: str) -> None:
        if text not in self._said:
            self._said.add(text)
            log.warning("%s", text)

    # ----- what worker.json says, if it can be trusted
    def _read_info(self) -> dict[str, Any] | None:
        return read_worker_info(self.home, self._say_once, "starting a worker of this server's own")

    def _endpoint(self, info: dict[str, Any]) -> Endpoint | None:
        return worker_endpoint(info, self._say_once)

    # ----- attach to a running worker
    async def _try_attach(self) -> bool:
        """Attach to the worker worker.json names, if it can be trusted and answers; raises
        WorkerMismatch when it runs another configuration and cannot be replaced."""
        info = self._read_info()
        if info is None or (self._process is not None and info.get("pid") == self._process.pid):
            return False
        endpoint = self._endpoint(info)
        if endpoint is None:
            return False
        try:
            probe = WorkerClient(endpoint, info["token"], self.timeout_s, supervised=True)
        except ValueError:
            return False  # a damaged file: it says nothing usable about where a worker listens
        try:
            answer = await self._first_lease(probe)
        except QmtError:
            return False
        finally:
            await probe.aclose()
        if answer is None:
            return False   # it was asked to stop: the next attempt starts ours
        # Only now, with the lease held, do calls go there.
        await self.client.rebind(endpoint, info["token"])
        self._adopt(answer)
        self.attached = True
        log.info("attached to the running worker (pid %s)", answer.get("pid"))
        return True

    async def _lease(self, client: WorkerClient, config: dict[str, str] | None = None) -> dict[str, Any]:
        args = {"holder": self.holder, "ttl_s": LEASE_TTL_S, "config": config}
        return await client.call("lease", args, budget_s=RENEW_BUDGET_S)

    async def _first_lease(self, client: WorkerClient) -> dict[str, Any] | None:
        """The lease answer; None when the worker ran another configuration, nobody else held it, and it
        is now stopping to be replaced. Raises WorkerMismatch when it cannot be replaced."""
        try:
            answer = await self._lease(client, self.sections)
        except QmtError as exc:
            if exc.code is not ErrorCode.INVALID_ARGUMENT:
                raise
            # No `lease` call there: a worker from before leases, which cannot say what it runs.
            raise WorkerMismatch(
                f"the running worker on {self.home} is from an older qmt-mcp and cannot say which configuration "
                "it runs; stop it (and the servers using it), then start this server again") from None
        if answer.get("granted") is True:
            return answer
        theirs = answer.get("config")
        sections = differing(self.sections or {}, theirs if isinstance(theirs, dict) else {})
        what = ", ".join(f"[{s}]" for s in sections) or "its configuration"
        pid, others = answer.get("pid"), answer.get("others")
        others = others if isinstance(others, int) else 0
        if others == 0 and answer.get("stoppable") is True:
            done = await client.call("release", {"holder": self.holder, "stop": True}, budget_s=RENEW_BUDGET_S)
            if done.get("stopping") is True:
                log.warning("the running worker (pid %s) runs another configuration (%s differs) and no other "
                            "server uses it: replacing it with one on this server's configuration", pid, what)
                return None
            others = done.get("others") if isinstance(done.get("others"), int) else others
        head = f"the running worker on {self.home} (pid {pid}) was started with another configuration: {what} differs"
        if not others:
            raise WorkerMismatch(f"{head}. It was not started by a server (qmt-mcp worker, by hand or under "
                                 "--supervise), so it is not replaced: stop it or give it this configuration")
        quiet = answer.get("others_quiet_s")
        raise WorkerMismatch(
            f"{head}, and {others} other server(s) use it, so this one will not run on a configuration that is "
            "not in force. Stop the other servers on this state dir (a killed one lets go within "
            f"{LEASE_TTL_S:.0f} s) and start again, or give this one a state dir of its own (QMT_MCP_HOME)",
            others=others, quiet_s=float(quiet) if isinstance(quiet, int | float) else 0.0)

    def _adopt(self, answer: dict[str, Any]) -> None:
        """Remember which worker we hold; holding a different one than before means it was restarted."""
        instance = answer.get("instance")
        instance = instance if isinstance(instance, str) else None
        if self._instance is not None and instance != self._instance:
            self.restarts += 1
        self._instance = instance

    # ----- spawn our own
    def _write_info(self, info: dict[str, Any]) -> None:
        tmp = self.info_path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)   # O_EXCL below: never write through a file (or link) someone left
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(info, f)
        os.replace(tmp, self.info_path)

    async def _spawn(self) -> None:
        private_dir(self.home)   # worker.json below carries the worker's bearer token
        token = secrets.token_urlsafe(32)
        # --exit-when-unleased: the worker goes when the last server holding it does (or is killed).
        cmd = [sys.executable, "-m", "qmt_mcp", "worker", "--exit-when-unleased"]
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
        env = {**os.environ, "QMT_WORKER_TOKEN": token, self.token_env: token, "QMT_MCP_HOME": str(self.home)}
        # The worker's stdout must never reach ours: on stdio, ours is the MCP transport.
        self._process = await anyio.open_process(
            cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=None
        )
        await self.client.rebind(Endpoint(uds, url), token)
        answer = await self._wait_ready(self._process)
        self._adopt(answer)
        self.attached = False
        self._write_info({"uds": uds, "url": url, "token": token, "pid": self._process.pid})

    async def _wait_ready(self, proc: Process) -> dict[str, Any]:
        """The first lease on our new worker, once it answers. Not compared: it runs our config file."""
        with anyio.fail_after(READY_TIMEOUT_S):
            while True:
                if proc.returncode is not None:
                    self._process = None
                    raise WorkerStartError(f"the worker exited during start (code {proc.returncode})")
                try:
                    return await self._lease(self.client)
                except QmtError:
                    await anyio.sleep(0.05)

    async def _connect(self) -> None:
        """Attach to a live worker, else start one. When another worker holds the state dir (one starting
        for another server, or one on its way out), attach to it once it answers, or outlast it."""
        deadline = time.monotonic() + READY_TIMEOUT_S + LEASE_TTL_S
        next_spawn = 0.0
        mismatch_since: float | None = None
        while True:
            try:
                if await self._try_attach():
                    return
            except WorkerMismatch as exc:
                # The servers holding it may have been killed, and a lease renewed just before cannot
                # tell: watch for STALE_AFTER_S whether they renew. If they stop, their leases lapse
                # and it can be replaced; if they do renew, they are alive and this server is refused.
                now = time.monotonic()
                mismatch_since = now if mismatch_since is None else mismatch_since
                alive = exc.quiet_s <= STALE_AFTER_S and now - mismatch_since > STALE_AFTER_S + LEASE_RENEW_S
                if not exc.others or alive or now > deadline:
                    raise
                self._say_once("the running worker runs another configuration and is held by other servers; "
                               "waiting a few seconds to see whether they are still there")
            else:
                if time.monotonic() >= next_spawn:
                    try:
                        await self._spawn()
                        return
                    except WorkerStartError:
                        if time.monotonic() > deadline:
                            raise
                        # Attach to the other worker once its server has written worker.json; spawn
                        # again later in case it was one on its way out.
                        next_spawn = time.monotonic() + 3.0
            await anyio.sleep(0.2)

    async def start(self) -> WorkerClient:
        """Attach or spawn; raises WorkerMismatch (a ConfigError) when the running worker runs another
        configuration and other servers use it, WorkerStartError when no worker could be started."""
        await self._connect()
        return self.client

    # ----- hold it, and bring one back
    async def watch(self) -> None:
        """Renew the lease for as long as this server runs; bring a worker back when it is gone."""
        while not self._stopping:
            why = await self._hold()
            if self._stopping:
                return
            log.warning("%s; reconnecting", why)
            backoff = 1.0
            while not self._stopping:
                try:
                    await self._connect()
                    break
                except (ConfigError, WorkerStartError, TimeoutError) as exc:
                    log.warning("bringing the worker back failed: %s; trying again in %.0f s", exc, backoff)
                except Exception:
                    log.exception("bringing the worker back failed; trying again in %.0f s", backoff)
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def _hold(self) -> str:
        """Renew every LEASE_RENEW_S until the worker is gone; returns why it is."""
        misses = 0
        while not self._stopping:
            proc = self._process
            with anyio.move_on_after(LEASE_RENEW_S):
                if proc is None:
                    await anyio.sleep_forever()
                else:
                    code = await proc.wait()
                    self._process = None
                    return f"the worker exited with code {code}"
            try:
                answer = await self._lease(self.client)
            except WorkerGone:
                if proc is None:
                    return "the worker is gone (nothing answers at its address, or another worker does)"
                misses += 1   # our own child is alive but not listening: a hang on its way out, or in start
            except QmtError:
                misses += 1   # no answer in time: busy or hung, not gone
            else:
                if answer.get("instance") != self._instance:
                    return "another worker answers at the worker's address"
                misses = 0
                continue
            if misses == 1:
                log.warning("the worker did not answer its lease renewal within %.0f s (busy or hung)",
                            RENEW_BUDGET_S)
            if proc is not None and misses >= HUNG_MISSES:
                log.error("the worker (pid %s) did not answer %d renewals in a row: killing it as hung",
                          proc.pid, misses)
                proc.kill()   # a hung process will not shut down cleanly; the journal makes this safe
        return "stopping"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    async def stop(self) -> None:
        self._stopping = True
        # Let go at once: a worker nobody else holds need not wait for the lease to lapse. Gone already,
        # or not answering: the lease lapses by itself.
        with anyio.CancelScope(shield=True), anyio.move_on_after(3), contextlib.suppress(QmtError):
            await self.client.call("release", {"holder": self.holder}, budget_s=2.0)
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
