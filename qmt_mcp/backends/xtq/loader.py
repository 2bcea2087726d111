"""Importing xtquant safely, once per process.

`xtquant/__init__.py` checks PyPI for a newer version at import (an HTTP request with a 10 s timeout)
and prints the answer to stdout, which on a stdio MCP transport would corrupt the protocol. We import
it with `requests` made unimportable (the check fails at once, inside xtquant's own bare `try`) and
with stdout sent to stderr. With `native = "sim"` the stand-in for the Windows-only
`xtquant.xtpythonclient` is installed first, so the wheel's own `xttrader.py` runs over the simulator.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from types import ModuleType

_lock = threading.Lock()


def load_xtdata() -> ModuleType:
    """The wheel's xtdata on a real miniQMT host. Its native `datacenter` library is Windows-only."""
    with _lock, contextlib.redirect_stdout(sys.stderr):
        try:
            from xtquant import xtdata
        except ImportError as exc:
            raise RuntimeError(
                f"xtquant's native libraries cannot load here ({exc}); they exist for Windows only. "
                "Run this worker on the Windows host next to miniQMT, or set [xtquant] native = \"sim\""
            ) from None
    module: ModuleType = xtdata
    return module


def load_xttrader(native_sim: bool) -> ModuleType:
    with _lock:
        loaded = sys.modules.get("xtquant.xttrader")
        if loaded is not None:
            return loaded
        with contextlib.redirect_stdout(sys.stderr):
            saved = sys.modules.get("requests", None)
            sys.modules["requests"] = None  # type: ignore[assignment]  # makes `import requests` fail fast
            try:
                import xtquant
            finally:
                if saved is None:
                    sys.modules.pop("requests", None)
                else:
                    sys.modules["requests"] = saved
            if native_sim:
                from .simnative import MODULE
                sys.modules["xtquant.xtpythonclient"] = MODULE  # type: ignore[assignment]
                xtquant.xtpythonclient = MODULE
            from xtquant import xttrader
        module: ModuleType = xttrader
        return module
