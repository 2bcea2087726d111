"""`audit_status`: the audit chain's state for a person's screen (the operator console).

The worker answers it, not the console, because the trail lives where the worker runs (a Windows host
behind an SSH tunnel, say): the same `verify` as `qmt-mcp audit verify`, over the worker's own file and
its journal's anchor, plus the head the worker last wrote. `verify` reads the whole file, so it runs in a
thread: a long trail must not stall the order path.
"""

from __future__ import annotations

from typing import Any

import anyio

from ..calls import NoArgs
from .audit import AuditLog, verify
from .journal import Journal


class AuditStatus:
    def __init__(self, audit: AuditLog, journal: Journal) -> None:
        self.audit, self.journal = audit, journal

    async def audit_status(self, args: NoArgs) -> dict[str, Any]:
        """{intact, found (the message naming the first bad line), records, head_hash, anchored_records}.
        A worker without a trail (in memory) says so, intact with no records."""
        records, head = self.audit.head
        anchor = self.journal.audit_head()
        if self.audit.path is None:
            intact, found = True, "no audit trail: this worker keeps its state in memory"
        else:
            path = self.audit.path
            intact, found = await anyio.to_thread.run_sync(lambda: verify(path, anchor))
        return {"intact": intact, "found": found, "records": records, "head_hash": head,
                "anchored_records": None if anchor is None else anchor[0]}
