"""`qmt-mcp worker --supervise`: keep a worker process alive on the miniQMT host.

The watchdog starts the worker as a child process and asks its health every `interval` seconds.
It restarts the worker when the process exits (a crash) or when the health check goes unanswered
`misses` times in a row (a hang: xtquant's sync calls and quote cache can wedge a process). Restarts
back off from 1 s to 60 s and reset after a healthy minute. It stops, and stops the worker, on
SIGINT/SIGTERM (Ctrl+C, or the Scheduled Task ending it).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

log = logging.getLogger("qmt_mcp.watchdog")


@dataclass
class Watch:
    argv: list[str]          # the worker's own command line
    url: str                 # where its health answers (http://host:port or http://uds)
    uds: str | None
    token: str
    interval: float = 10.0
    timeout: float = 5.0
    misses: int = 3
    startup: float = 60.0    # seconds a new worker has to answer at all (xtquant's first connect is slow)


def run(watch: Watch) -> int:
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    backoff = 1.0
    restarts = 0
    while not stopping:
        child = subprocess.Popen(watch.argv, env=os.environ.copy())  # noqa: S603 - our own command line
        log.warning("watchdog: worker started (pid %d, restarts %d)", child.pid, restarts)
        started = time.monotonic()
        reason = _watch(watch, child, lambda: stopping)
        _end(child, hung="health" in reason or "healthy" in reason)
        if stopping:
            break
        restarts += 1
        backoff = 1.0 if time.monotonic() - started > 60 else min(backoff * 2, 60.0)
        log.warning("watchdog: worker %s; restarting in %.0f s", reason, backoff)
        _pause(backoff, lambda: stopping)
    return 0


def _watch(watch: Watch, child: subprocess.Popen[bytes], stopping: Callable[[], bool]) -> str:
    transport = httpx.HTTPTransport(uds=watch.uds) if watch.uds else None
    missed = 0
    up = False   # misses count once the worker has answered; before that it may still be starting
    born = time.monotonic()
    with httpx.Client(transport=transport, timeout=watch.timeout) as http:
        while not stopping():
            if child.poll() is not None:
                return f"exited with code {child.returncode}"
            try:
                r = http.post(f"{watch.url}/v1/health", json={},
                              headers={"Authorization": f"Bearer {watch.token}"})
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            up = up or ok
            missed = 0 if ok else missed + up
            if missed >= watch.misses:
                return f"did not answer its health check {missed} times"
            if not up and time.monotonic() - born > watch.startup:
                return f"did not become healthy within {watch.startup:.0f} s"
            _pause(watch.interval if up else 0.2, stopping)
    return "stopping"


def _pause(seconds: float, stopping: Callable[[], bool]) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end and not stopping():
        time.sleep(min(0.1, max(0.0, end - time.monotonic())))


def _end(child: subprocess.Popen[bytes], hung: bool) -> None:
    if child.poll() is not None:
        return
    if hung:
        child.kill()   # a hung process will not shut down cleanly; the journal makes this safe
        child.wait(timeout=10)
        return
    child.terminate()
    try:
        child.wait(timeout=10)
    except subprocess.TimeoutExpired:
        child.kill()   # a hung process may ignore SIGTERM
        child.wait(timeout=10)


def worker_argv(argv: list[str]) -> list[str]:
    """The worker's command line: this one without the watchdog's own flags."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--supervise",):
            continue
        if arg in ("--health-interval", "--health-timeout", "--health-misses", "--health-startup"):
            skip = True
            continue
        out.append(arg)
    return [sys.executable, "-m", "qmt_mcp", *out]
