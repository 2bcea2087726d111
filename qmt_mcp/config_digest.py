"""A digest of the configuration a worker acts on, one per top-level section.

Several servers on one state dir share one worker, and the worker runs the configuration it was
started with. A server that attaches compares these digests with its own, so a change it was started
with (`kill_switch = true`, an account made `live`) is never silently not in force; per section, so
the refusal can say which part differs without either side sending the configuration itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from .config import Config

# Read by the MCP server alone (its transport, its HTTP address and token, whether it asks a person):
# two servers may differ there and still share a worker.
SERVER_ONLY = frozenset({"server"})


def section_digests(cfg: Config) -> dict[str, str]:
    """{section: 16 hex digits of the sha256 of its canonical JSON} for every section the worker uses."""
    data = cfg.model_dump(mode="json")
    return {name: _digest(value) for name, value in sorted(data.items()) if name not in SERVER_ONLY}


def differing(ours: Mapping[str, str], theirs: Mapping[str, str]) -> list[str]:
    """The sections whose digests differ (or that only one side has), sorted."""
    return sorted(name for name in set(ours) | set(theirs) if ours.get(name) != theirs.get(name))


def _digest(value: object) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
