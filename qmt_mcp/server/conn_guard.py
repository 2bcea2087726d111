"""Bounds on what a client without the token can hold open on the HTTP transports.

uvicorn waits for a request head as long as a client takes, and keeps every connection it accepts.
A client with no token could open connection after connection, each with half a head, until the
server runs out of file descriptors; from then on every accept fails, and asyncio logs each failure
with a traceback (tens of thousands of lines a second). The ASGI app cannot help (it sees only
complete heads), so this works on uvicorn's connection protocol:

- a connection must deliver a complete request head carrying the right bearer token (any complete
  head when the server runs without a token) within HEAD_TIMEOUT_S of opening, or it is closed;
- at most MAX_PENDING connections wait for that at once; one more closes the oldest waiting one, so a
  flood cannot crowd out a real client (which sends its head at once and so is never the oldest);
- closed connections are logged as one line per LOG_EVERY_S with counts, and asyncio's
  accept failures likewise, without their traceback.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable

from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("qmt_mcp.server")
HEAD_TIMEOUT_S = 5.0
MAX_PENDING = 64
LOG_EVERY_S = 10.0
MAX_HEAD_BYTES = 16 * 1024   # for uvicorn's h11_max_incomplete_event_size: a head larger than this is a 400
ACCEPT_FAILED = "socket.accept() out of system resource"


class Tally:
    """Counts of things worth one log line, written at most once per `every_s` seconds."""

    def __init__(self, what: str, every_s: float = LOG_EVERY_S, now: Callable[[], float] = time.monotonic) -> None:
        self.what = what
        self.every_s = every_s
        self._now = now
        self._last = -every_s
        self.counts: Counter[str] = Counter()

    def add(self, kind: str) -> bool:
        """Count one; True when this one was logged (with everything counted since the last line)."""
        self.counts[kind] += 1
        now = self._now()
        if now - self._last < self.every_s:
            return False
        self._last = now
        detail = ", ".join(f"{n} {k}" for k, n in sorted(self.counts.items()))
        log.warning("%s: %s (at most one such line per %.0f s)", self.what, detail, self.every_s)
        self.counts.clear()
        return True


def guarded_h11(token: str) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with the bounds above, for `uvicorn.run(..., http=guarded_h11(token))`."""
    expected = f"Bearer {token}".encode()
    pending: OrderedDict[H11Protocol, None] = OrderedDict()   # oldest first
    tally = Tally("closed connections that sent no authorized request head")

    def authorized(headers: list[tuple[bytes, bytes]]) -> bool:
        if not token:
            return True
        supplied = next((value for name, value in headers if name == b"authorization"), b"")
        return hmac.compare_digest(supplied, expected)

    class GuardedH11(H11Protocol):
        _timer: asyncio.TimerHandle | None = None
        _admitted = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(pending) >= MAX_PENDING:
                oldest, _ = pending.popitem(last=False)
                oldest._shut(f"beyond {MAX_PENDING} waiting at once")  # type: ignore[attr-defined]
            pending[self] = None
            self._timer = self.loop.call_later(HEAD_TIMEOUT_S, self._shut, f"no head in {HEAD_TIMEOUT_S:.0f} s")

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            # uvicorn sets `headers` once a whole head has arrived (before the app runs).
            if not self._admitted and self.headers is not None and authorized(self.headers):
                self._admitted = True
                self._forget()

        def connection_lost(self, exc: Exception | None) -> None:
            self._forget()
            super().connection_lost(exc)

        def _forget(self) -> None:
            pending.pop(self, None)
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _shut(self, why: str) -> None:
            self._forget()
            if not self.transport.is_closing():
                tally.add(why)
                self.transport.close()

    return GuardedH11


class _AcceptFailures(logging.Filter):
    """asyncio logs a failed accept (no file descriptor left) once per waiting connection, each with a
    traceback: let one line through per LOG_EVERY_S, without the traceback."""

    def __init__(self) -> None:
        super().__init__()
        self._last = -LOG_EVERY_S
        self._dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if _retry_on_closed_listener(record):
            return False
        if not str(record.msg).startswith(ACCEPT_FAILED):
            return True
        now = time.monotonic()
        if now - self._last < LOG_EVERY_S:
            self._dropped += 1
            return False
        self._last = now
        record.msg = f"{ACCEPT_FAILED}: no file descriptor left ({self._dropped} more since the last such line)"
        record.args = None
        record.exc_info = None
        record.exc_text = None
        self._dropped = 0
        return True


def _retry_on_closed_listener(record: logging.LogRecord) -> bool:
    """After a failed accept asyncio stops listening and retries a second later; when the server has
    closed its listening socket meanwhile (it is shutting down), the retry finds descriptor -1 and
    asyncio logs a traceback. Nothing was lost: the listener is gone on purpose."""
    exc = record.exc_info[1] if record.exc_info else None
    return ("_start_serving" in str(record.msg) and isinstance(exc, ValueError)
            and "Invalid file descriptor" in str(exc))


def quiet_accept_failures() -> None:
    logging.getLogger("asyncio").addFilter(_AcceptFailures())
