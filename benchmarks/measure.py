"""What the benchmark scripts share: percentiles, a tool result's payload, a server process on a free
port, memory."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ok(res: Any) -> dict[str, Any]:
    """The structured payload of a successful tool result; anything else stops the run."""
    data = res.structured_content
    if res.is_error or not isinstance(data, dict) or not data.get("ok"):
        raise RuntimeError(f"tool failed: {data or res.content}")
    return data


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_port(port: int) -> None:
    with anyio.fail_after(60):
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                await anyio.sleep(0.05)


@asynccontextmanager
async def http_process(argv: list[str], env: dict[str, str], port: int) -> AsyncIterator[subprocess.Popen[bytes]]:
    """A server started with `argv`, once it listens on `port`; terminated after."""
    proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL)  # noqa: ASYNC220
    try:
        await wait_port(port)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def rss_mb(pid: int) -> float | None:
    """A process's resident memory (VmRSS) in MB; None where /proc does not say."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def worker_pid(home: Path) -> int | None:
    """The pid of the worker a server spawned on `home` (its worker.json), if any."""
    try:
        return int(json.loads((home / "worker.json").read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
