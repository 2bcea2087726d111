"""Which MCP servers hold this worker, and the configuration check they attach through.

Each server on the state dir takes a lease (`lease`, renewed every few seconds) and gives it back when
it stops (`release`). The lease does two jobs:

- **Same configuration.** A new holder sends the digests of its configuration (config_digest); one
  that differs is not granted, and learns which sections differ and whether anyone else holds the
  worker, so it can refuse to start or, when nobody else does, ask this worker to stop and start one
  on its own configuration.
- **No orphans.** A worker that `qmt-mcp serve` started (`--exit-when-unleased`) exits once nobody
  holds it: at the last release, or when the last lease lapses because its server was killed
  (kill -9 gives no chance to release; the lease's time limit still runs out). A worker run by hand
  or under `--supervise` keeps running without servers.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..domain.errors import InvalidArgument, Unavailable

log = logging.getLogger("qmt_mcp.worker")
CHECK_S = 1.0          # how often lapsed leases are looked for
QUIET_CHECKS = 3       # checks in a row with no holder before exiting: a server just resumed from sleep renews
START_GRACE_S = 30.0   # a new worker waits this long for its first holder (its server is still starting)
MAX_HOLDERS = 64
HOLDER = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass
class _Lease:
    expires: float
    renewed: float


class Leases:
    def __init__(self, sections: dict[str, str], now: Callable[[], float] = time.monotonic) -> None:
        self.sections = dict(sections)
        # Tells a reconnecting server whether it reached the same worker or a new one (a restart).
        self.instance = secrets.token_hex(8)
        self._now = now
        self._born = now()
        self._held: dict[str, _Lease] = {}
        self._ever_held = False
        self._quiet = 0
        self._exit: Callable[[], None] | None = None
        self.stopping = False

    def exit_when_unleased(self, stop: Callable[[], None]) -> None:
        """From now on, call `stop` (once) when no server holds this worker any more."""
        self._exit = stop

    # ----- the worker calls
    async def lease(self, args: dict[str, Any]) -> dict[str, Any]:
        """Grant or renew `holder`'s lease for `ttl_s` seconds. A new holder whose `config` digests
        differ from this worker's is not granted (a holder that sends none is not compared)."""
        holder = _holder(args)
        ttl = args.get("ttl_s")
        if not isinstance(ttl, int | float) or isinstance(ttl, bool) or not 1 <= ttl <= 300:
            raise InvalidArgument("ttl_s must be a number of seconds from 1 to 300", details={"argument": "ttl_s"})
        config = args.get("config")
        if config is not None and not (isinstance(config, dict) and all(
                isinstance(k, str) and isinstance(v, str) for k, v in config.items())):
            raise InvalidArgument("config must map section names to digests", details={"argument": "config"})
        if self.stopping:
            raise Unavailable("the worker is stopping")
        now = self._now()
        self._lapse(now)
        known = holder in self._held
        granted = known or config is None or config == self.sections
        if granted:
            if not known and len(self._held) >= MAX_HOLDERS:
                raise Unavailable("too many servers hold this worker")
            self._held[holder] = _Lease(now + float(ttl), now)
            self._ever_held = True
            self._quiet = 0
        others = [lease for name, lease in self._held.items() if name != holder]
        return {
            "granted": granted, "instance": self.instance, "pid": os.getpid(), "config": self.sections,
            "others": len(others),
            # How long the most recently renewed other holder has been silent: a server that was killed
            # stops renewing, so its lease is about to lapse even though it still counts.
            "others_quiet_s": round(min((now - lease.renewed for lease in others), default=0.0), 1),
            "stoppable": self._exit is not None,
        }

    async def release(self, args: dict[str, Any]) -> dict[str, Any]:
        """Drop `holder`'s lease. With `stop`, also stop this worker if nobody else holds it and it is
        one a server started (used to replace a worker running another configuration)."""
        holder = _holder(args)
        stop = args.get("stop", False)
        if not isinstance(stop, bool):
            raise InvalidArgument("stop must be true or false", details={"argument": "stop"})
        now = self._now()
        self._held.pop(holder, None)
        self._lapse(now)
        stopping = not self._held and self._exit is not None and (stop or self._ever_held)
        if stopping:
            log.info("the last server let go of this worker; exiting")
            self._stop()
        return {"others": len(self._held), "stopping": stopping}

    # ----- the periodic check
    async def check(self) -> None:
        if self._exit is None or self.stopping:
            return
        now = self._now()
        self._lapse(now)
        if self._held or (not self._ever_held and now - self._born < START_GRACE_S):
            self._quiet = 0
            return
        self._quiet += 1
        if self._quiet >= QUIET_CHECKS:
            log.warning("no server holds this worker any more (its last lease lapsed); exiting")
            self._stop()

    def _lapse(self, now: float) -> None:
        for name in [n for n, lease in self._held.items() if lease.expires <= now]:
            del self._held[name]
            log.info("lease of server %s lapsed", name)

    def _stop(self) -> None:
        self.stopping = True
        if self._exit is not None:
            self._exit()


def _holder(args: dict[str, Any]) -> str:
    holder = args.get("holder")
    if not isinstance(holder, str) or not HOLDER.match(holder):
        raise InvalidArgument("holder must be 1-64 letters, digits, - or _", details={"argument": "holder"})
    return holder
