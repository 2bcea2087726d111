"""One worker per state dir: two would each hold the paper counter in memory and diverge.

The lock is an OS lock on `worker.lock`, taken without waiting: `flock` on POSIX, `msvcrt.locking`
on Windows. The OS drops it when the process ends, however it ends, so a killed worker never leaves
a stale lock behind (the file itself stays, empty, 0600).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import TracebackType

from ..config import ConfigError
from ..statedir import PRIVATE_FILE, tighten


class HomeLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def __enter__(self) -> HomeLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
        tighten(self.path)
        try:
            _lock(fd)
        except OSError as exc:
            os.close(fd)
            raise ConfigError(f"another worker is running on {self.path.parent}") from exc
        self._fd = fd
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            _unlock(self._fd)
            os.close(self._fd)
            self._fd = None


if sys.platform == "win32":
    import msvcrt

    def _lock(fd: int) -> None:
        # Byte 0 of the file, whatever its size (Windows lets a lock reach past the end); LK_NBLCK
        # raises OSError at once when another process holds it.
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)   # OSError (EWOULDBLOCK) when held elsewhere

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
