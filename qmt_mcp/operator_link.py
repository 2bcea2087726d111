"""How a person's tools (the operator CLI, the console) reach the worker, and with which credentials.

A worker is in one of two places, as the MCP server sees it (cli.cmd_serve):

- **Local**: the worker a `qmt-mcp serve` on this state dir spawned, found through worker.json, trusted
  only if this user owns it and nobody else can write it (server/supervisor.read_worker_info); reads
  use the worker token worker.json carries, the person's calls the operator key `operator.key` which
  that worker wrote into this state dir.
- **Remote**: `[worker] url` is set (a standalone `qmt-mcp worker`, say on the Windows host next to
  miniQMT, through an SSH tunnel). Reads use the worker token from `$<worker.token_env>`, as the MCP
  server does; the person's calls the operator key from `worker.operator_key_file` (default
  `operator.key` in this state dir): a copy the person made of that worker's own operator.key. It is
  the person's key, never the agent's: the MCP server neither reads nor needs it.

Either key file is used only if it is this user's own regular file that nobody else can read or write
(the key flips the kill switch and approves orders), and every refusal says what to do about it.
"""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import WorkerConfig
from .domain.errors import ErrorCode, QmtError
from .server.wire import Target
from .server.worker_client import Endpoint, WorkerClient, WorkerGone
from .statedir import distrust
from .worker.operator import KEY_FILE

TUNNEL = "ssh -N -L 8766:127.0.0.1:8766 you@windows-host"


def no_local_worker(home: Path, why: str = "") -> QmtError:
    return QmtError(
        f"no worker is running on {home}{': ' + why if why else ''}", code=ErrorCode.WORKER_UNAVAILABLE,
        hint="start one with `qmt-mcp serve` (as your MCP client does), then run this again; for a standalone "
             "`qmt-mcp worker` elsewhere (the Windows host), set [worker] url in this state dir's config.toml",
    )


def key_path(home: Path, worker: WorkerConfig) -> Path:
    """Where the operator key is read: worker.operator_key_file (relative: to the state dir) with a remote
    worker, else operator.key in the state dir."""
    if worker.url and worker.operator_key_file:
        return home / Path(worker.operator_key_file).expanduser()   # an absolute one replaces `home`
    return home / KEY_FILE


def _private(path: Path) -> str | None:
    """Why the key file at `path` is not this user's private file, None if it is ("missing" if absent)."""
    why = distrust(path, "file")
    if why is not None or sys.platform == "win32":
        return why
    mode = os.lstat(path).st_mode
    if mode & 0o077:
        return f"{path} can be read by other users (mode {oct(stat.S_IMODE(mode))})"
    return None


@dataclass(frozen=True)
class Link:
    """One worker, where it listens and the credentials to ask it, found afresh for each use (a local
    worker restarted by its server writes another worker.json)."""

    endpoint: Endpoint
    where: str            # "the worker at <url> (worker.url)", for messages
    token: str            # the worker token; "" when $token_env is not set (remote only)
    key_file: Path
    token_env: str = ""   # remote only: the variable the token comes from
    home: Path | None = None   # local only

    @property
    def remote(self) -> bool:
        return self.home is None

    def worker_token(self) -> str:
        if not self.token:
            raise QmtError(
                f"no worker token for {self.where}: ${self.token_env} is not set", code=ErrorCode.UNAUTHORIZED,
                hint=f"set ${self.token_env} to the token that worker was started with (the one the MCP server "
                     "is given), then run this again")
        return self.token

    def operator_key(self) -> str:
        path = self.key_file
        why = _private(path)
        if why == "missing" and self.home is not None:
            raise no_local_worker(self.home, f"no {KEY_FILE} yet (a worker writes it when it starts)")
        if why == "missing":
            raise QmtError(
                f"no operator key at {path} for {self.where}", code=ErrorCode.UNAUTHORIZED,
                hint=f"copy {KEY_FILE} from that worker's state dir (on a Windows host "
                     f"%USERPROFILE%\\.qmt_mcp\\{KEY_FILE}; the worker makes it at its first start) to {path} and "
                     f"`chmod 600 {path}`, or point [worker] operator_key_file at your copy. It is the person's key: "
                     "keep it away from the agent and the MCP server's config")
        if why is not None:
            raise QmtError(f"not using the operator key {path}: {why}", code=ErrorCode.UNAUTHORIZED,
                           hint=f"make it yours and private (`chmod 600 {path}`), then run this again")
        key = path.read_text(encoding="utf-8").strip()
        if not key:
            raise QmtError(f"the operator key {path} is empty", code=ErrorCode.UNAUTHORIZED,
                           hint=f"copy {KEY_FILE} from the worker's state dir again")
        return key

    def refused(self, exc: QmtError, operator: bool) -> QmtError:
        """The worker's answer `exc`, with a hint naming the credential when it refused the bearer (a
        refusal for a channel left out of approval.channels carries details and keeps its own; one
        that says the call needs the operator key means the key file holds the server's token)."""
        if exc.code is not ErrorCode.UNAUTHORIZED:
            return exc
        if "channel" in exc.details and exc.details.get("needs") != "operator_key":
            return exc
        if operator:
            hint = (f"{self.key_file} is not the operator key of {self.where} (a key from another state dir, or "
                    f"the worker token?): copy {KEY_FILE} from that worker's state dir again")
        elif self.remote:
            hint = f"${self.token_env} is not the token {self.where} was started with: set it to that one"
        else:
            return exc
        return QmtError(exc.message, code=exc.code, hint=hint, details=exc.details)

    def gone(self) -> QmtError:
        if self.home is not None:
            return no_local_worker(self.home, "worker.json names one that does not answer")
        return QmtError(
            f"nothing answers at {self.where}", code=ErrorCode.WORKER_UNAVAILABLE,
            hint=f"check that the worker runs there and that the SSH tunnel to it is open ({TUNNEL}, or "
                 "scripts/windows/tunnel.sh), then run this again")

    async def call(self, name: str, args: dict[str, Any], timeout_s: float, operator: bool = False,
                   ) -> dict[str, Any]:
        """The worker's answer to `name`: with the operator key for a person's call, else the worker token.
        Raises QmtError (UNAUTHORIZED or WORKER_UNAVAILABLE with a hint saying what to fix)."""
        client = WorkerClient(self.endpoint, self.operator_key() if operator else self.worker_token(), timeout_s)
        try:
            return await client.call(name, args)
        except WorkerGone:
            raise self.gone() from None
        except QmtError as exc:
            raise self.refused(exc, operator) from None
        finally:
            await client.aclose()


def find(home: Path, worker: WorkerConfig) -> Link:
    """The worker this person's tools reach from the state dir `home` with the config's [worker]: worker.url
    when set, else the one worker.json names. Raises QmtError (WORKER_UNAVAILABLE) when none is found."""
    if worker.url:
        url = worker.url.rstrip("/")
        try:
            Target.parse(None, url)   # what refuses a URL the worker client cannot use, before any request
        except ValueError as exc:
            raise QmtError(f"worker.url {worker.url!r}: {exc}", code=ErrorCode.WORKER_UNAVAILABLE,
                           hint="set [worker] url to http://host:port (the SSH tunnel's local end)") from None
        return Link(Endpoint(None, url), f"the worker at {url} (worker.url)", os.environ.get(worker.token_env, ""),
                    key_path(home, worker), token_env=worker.token_env)
    from .server.supervisor import read_worker_info, worker_endpoint

    said: list[str] = []
    info = read_worker_info(home, said.append, "not sending the operator key there")
    endpoint = None if info is None else worker_endpoint(info, said.append)
    if info is None or endpoint is None:
        raise no_local_worker(home, "; ".join(said))
    return Link(endpoint, f"the worker of {home}", str(info["token"]), home / KEY_FILE, home=home)
