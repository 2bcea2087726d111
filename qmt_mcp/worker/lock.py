"""One worker per state dir: two would each hold the paper counter in memory and diverge."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import IO

from ..config import ConfigError


class HomeLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def __enter__(self) -> HomeLock:
        self._file = open(self.path, "a+")
        if os.name != "nt":
            import fcntl

            try:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                self._file.close()
                raise ConfigError(f"another worker is running on {self.path.parent}") from exc
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._file is not None:
            self._file.close()
