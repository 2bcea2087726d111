"""The audit trail: every state-changing request and its outcome, appended, fsync'd, hash-chained.

Each line is JSON with `n` (1, 2, ...), `prev` (the previous line's hash) and `hash` (SHA-256 of the
line without its hash). `verify` names the first line that was edited, reordered or cut.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

GENESIS = "0" * 64


def _hash(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class AuditLog:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._n, self._prev = 0, GENESIS
        if path is not None and path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    rec = json.loads(line)
                    self._n, self._prev = int(rec["n"]), str(rec["hash"])

    def append(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        with self._lock:
            rec = {"n": self._n + 1, "prev": self._prev, **record}
            rec["hash"] = _hash(rec)
            line = json.dumps(rec, ensure_ascii=False) + "\n"
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            self._n, self._prev = rec["n"], rec["hash"]


def verify(path: Path) -> tuple[bool, str]:
    if not path.exists():
        return True, f"no audit trail at {path} yet (nothing state-changing has happened)"
    prev, n = GENESIS, 0
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            rec = json.loads(line)
        except ValueError:
            return False, f"line {i}: not JSON (edited or cut)"
        if rec.get("n") != n + 1:
            return False, f"line {i}: record number {rec.get('n')} where {n + 1} was expected (reordered or removed)"
        if rec.get("prev") != prev:
            return False, f"line {i} (record {rec.get('n')}): does not follow the previous record (reordered)"
        if rec.get("hash") != _hash(rec):
            return False, f"line {i} (record {rec.get('n')}): content does not match its hash (edited)"
        prev, n = rec["hash"], rec["n"]
    return True, f"audit trail intact: {n} records"
