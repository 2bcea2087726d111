"""What the benchmark scripts share: percentiles, a tool result's payload, a free port, memory."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any


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
