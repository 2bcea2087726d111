"""The MCP server's client of the worker API, over a Unix socket or TCP.

Calls go through `wire.WirePool` (lean, kept-alive HTTP/1.1), the event and quote streams each through
a connection of that kind of its own (wire_stream.py); httpx is kept for raw requests (the tests').
Transport failures become contract errors here. A call that changes broker state and fails after its request
may have been sent is SUBMIT_INDETERMINATE, never retried.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx
import pydantic_core

from ..calls import STATE_CHANGING
from ..domain.errors import ErrorCode, QmtError, StateChanged, SubmitIndeterminate
from .wire import WireConnectError, WireError, WirePool

log = logging.getLogger("qmt_mcp.server")


class WorkerGone(QmtError):
    """Nothing listens where the worker was, or a different worker (another token) answers there.

    Nothing was sent to a worker that could act on it. The supervisor tells this apart from a worker
    that is merely slow to answer: only this one means the worker has to be found or started again."""

    code = ErrorCode.WORKER_UNAVAILABLE


@dataclass(frozen=True)
class Endpoint:
    """Where a worker listens: a Unix socket, or an http(s) URL."""

    uds: str | None = None
    url: str | None = None

    def http(self) -> httpx.AsyncClient:
        if self.uds is not None:
            return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=self.uds), base_url="http://worker")
        return httpx.AsyncClient(base_url=(self.url or "").rstrip("/"))

    def wire(self) -> WirePool:
        return WirePool(self.uds, self.url)


class WorkerClient:
    """One logical connection to "the worker"; `rebind` points it at a restarted or another worker."""

    def __init__(
        self, endpoint: Endpoint | None, token: str, timeout_s: float = 40.0, *, supervised: bool = False
    ) -> None:
        self._http = endpoint.http() if endpoint else None
        self._wire = endpoint.wire() if endpoint else None
        self._headers = {"Authorization": f"Bearer {token}"}
        self._timeout = timeout_s
        # A supervised local worker gets a fresh token per spawn: a 401 means it was replaced.
        self._supervised = supervised

    @classmethod
    def for_uds(cls, path: str, token: str, timeout_s: float = 40.0) -> WorkerClient:
        return cls(Endpoint(uds=path), token, timeout_s)

    @classmethod
    def for_url(cls, url: str, token: str, timeout_s: float = 40.0) -> WorkerClient:
        return cls(Endpoint(url=url), token, timeout_s)

    async def rebind(self, endpoint: Endpoint, token: str) -> None:
        old_http, old_wire = self._http, self._wire
        wire = endpoint.wire()  # first: it is what refuses a malformed URL, before anything is opened
        self._http, self._wire = endpoint.http(), wire
        self._headers = {"Authorization": f"Bearer {token}"}
        if old_http is not None:
            await old_http.aclose()
        if old_wire is not None:
            await old_wire.aclose()

    @property
    def http(self) -> httpx.AsyncClient | None:
        """For raw requests (the tests'); calls go through `call`, streams through `wire`."""
        return self._http

    @property
    def wire(self) -> WirePool | None:
        """For the event and quote streams (wire_stream.py); calls go through `call`."""
        return self._wire

    @property
    def headers(self) -> dict[str, str]:
        return dict(self._headers)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        if self._wire is not None:
            await self._wire.aclose()

    async def call(
        self, name: str, args: dict[str, Any], extra_timeout: float = 0.0, budget_s: float | None = None
    ) -> dict[str, Any]:
        """The worker's payload; raises QmtError with the worker's code on an error answer."""
        if self._wire is None:
            raise QmtError("no worker is connected yet", code=ErrorCode.WORKER_UNAVAILABLE)
        try:
            status, raw = await self._wire.post(
                f"/v1/{name}", pydantic_core.to_json(args), self._headers,
                (budget_s or self._timeout) + extra_timeout, retry_safe=name not in STATE_CHANGING,
            )
        except WireConnectError as exc:
            # Nothing was sent: safe to say no state changed.
            raise WorkerGone("the worker is not reachable") from exc
        except WireError as exc:
            if name == "place_order":
                raise SubmitIndeterminate(
                    "the worker stopped answering after the order was sent",
                    details={"client_order_id": args.get("client_order_id")},
                ) from exc
            state: StateChanged = "unknown" if name in STATE_CHANGING else "no"
            raise QmtError("the worker did not answer", code=ErrorCode.WORKER_UNAVAILABLE,
                           state_changed=state) from exc
        try:
            body = pydantic_core.from_json(raw)   # compiled: a third of json.loads's time
        except ValueError as exc:
            raise QmtError(f"the worker answered HTTP {status} without JSON",
                           code=ErrorCode.INTERNAL, state_changed="unknown") from exc
        if not isinstance(body, dict):
            raise QmtError("the worker answered with a non-object", code=ErrorCode.INTERNAL)
        if body.get("ok") is True:
            body.pop("ok")
            return body
        if status == 401 and self._supervised:
            raise WorkerGone("the worker was restarted; reconnecting")
        err = body.get("error") if isinstance(body.get("error"), dict) else {}
        raise QmtError.from_dict(err or {"code": "INTERNAL", "message": f"HTTP {status}"})
