"""Deliberate crashes for the fault suite (tests/test_crash_points.py).

`QMT_MCP_CRASH_AT="site:n"` makes the worker kill itself with SIGKILL the n-th time it passes `site`
after its first order request arrives, exactly as `kill -9` from outside would: no cleanup, no flush,
no atexit. A seeded list of (site, n) pairs puts the crash at chosen points of the order path, so a
run is repeatable. Unset, which is always outside the fault suite, `reached` returns at once.
"""

from __future__ import annotations

import os
import signal

ENV = "QMT_MCP_CRASH_AT"
SITES = (
    "journal.commit",     # a journal transaction is about to commit
    "journal.committed",  # ... and has
    "broker.send",        # an order is about to go to the broker
    "broker.sent",        # the broker has taken it, its answer not yet recorded
    "api.answer",         # a call's answer is ready, not yet sent
)
# A conditional order's own point (worker/conditions.py): armed -> triggered is committed, its order
# not yet recorded. Apart from SITES, whose rotation the order-path crash plan draws from.
CONDITION_SITES = ("condition.triggered",)


def _plan(raw: str | None) -> tuple[str, int] | None:
    if not raw:
        return None
    site, _, n = raw.partition(":")
    if site not in SITES + CONDITION_SITES or not n.isdigit() or int(n) < 1:
        raise ValueError(f"{ENV} must be <site>:<n> with a site from {', '.join(SITES + CONDITION_SITES)}, "
                         f"not {raw!r}")
    return site, int(n)


_PLAN = _plan(os.environ.get(ENV))
_armed = False
_passes = 0


def arm() -> None:
    """Start counting (at the first order request: start-up writes are not the point)."""
    global _armed
    _armed = True


def reached(site: str) -> None:
    global _passes
    if _PLAN is None or not _armed or site != _PLAN[0]:
        return
    _passes += 1
    if _passes == _PLAN[1]:
        kill = getattr(signal, "SIGKILL", None)
        if kill is None:  # Windows: the nearest thing to kill -9
            os._exit(137)
        os.kill(os.getpid(), kill)
