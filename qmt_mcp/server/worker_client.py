"""The MCP server's client of the worker API (httpx; Unix socket, TCP, or in-process ASGI for tests).

Transport failures become contract errors here. A call that changes broker state and fails after
its request may have been sent is SUBMIT_INDETERMINATE, never retried.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from ..domain.errors import ErrorCode, QmtError, StateChanged, SubmitIndeterminate

log = logging.getLogger("qmt_mcp.server")
STATE_CHANGING = {"place_order", "cancel_order", "reset_risk"}


def http_for(uds: str | None, url: str | None) -> httpx.AsyncClient:
    if uds is not None:
        return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=uds), base_url="http://worker")
    return httpx.AsyncClient(base_url=(url or "").rstrip("/"))


class WorkerClient:
    """One logical connection to "the worker"; `rebind` points it at a restarted or another worker."""

    def __init__(
        self, http: httpx.AsyncClient | None, token: str, timeout_s: float = 40.0, *, supervised: bool = False
    ) -> None:
        self._http = http
        self._headers = {"Authorization": f"Bearer {token}"}
        self._timeout = timeout_s
        # A supervised local worker gets a fresh token per spawn: a 401 means it was replaced.
        self._supervised = supervised

    @classmethod
    def for_uds(cls, path: str, token: str, timeout_s: float = 40.0) -> WorkerClient:
        return cls(http_for(path, None), token, timeout_s)

    @classmethod
    def for_url(cls, url: str, token: str, timeout_s: float = 40.0) -> WorkerClient:
        return cls(http_for(None, url), token, timeout_s)

    async def rebind(self, http: httpx.AsyncClient, token: str) -> None:
        old, self._http = self._http, http
        self._headers = {"Authorization": f"Bearer {token}"}
        if old is not None:
            await old.aclose()

    @property
    def http(self) -> httpx.AsyncClient | None:
        return self._http

    @property
    def headers(self) -> dict[str, str]:
        return dict(self._headers)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def call(
        self, name: str, args: dict[str, Any], extra_timeout: float = 0.0, budget_s: float | None = None
    ) -> dict[str, Any]:
        """The worker's payload; raises QmtError with the worker's code on an error answer."""
        if self._http is None:
            raise QmtError("no worker is connected yet", code=ErrorCode.WORKER_UNAVAILABLE)
        try:
            resp = await self._http.post(
                f"/v1/{name}", json=args, headers=self._headers,
                timeout=(budget_s or self._timeout) + extra_timeout,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # Nothing was sent: safe to say no state changed.
            raise QmtError("the worker is not reachable", code=ErrorCode.WORKER_UNAVAILABLE) from exc
        except httpx.HTTPError as exc:
            if name == "place_order":
                raise SubmitIndeterminate(
                    "the worker stopped answering after the order was sent",
                    details={"client_order_id": args.get("client_order_id")},
                ) from exc
            state: StateChanged = "unknown" if name in STATE_CHANGING else "no"
            raise QmtError("the worker did not answer", code=ErrorCode.WORKER_UNAVAILABLE,
                           state_changed=state) from exc
        try:
            body = resp.json()
        except ValueError as exc:
            raise QmtError(f"the worker answered HTTP {resp.status_code} without JSON",
                           code=ErrorCode.INTERNAL, state_changed="unknown") from exc
        if not isinstance(body, dict):
            raise QmtError("the worker answered with a non-object", code=ErrorCode.INTERNAL)
        if body.get("ok") is True:
            body.pop("ok")
            return body
        if resp.status_code == 401 and self._supervised:
            raise QmtError("the worker was restarted; reconnecting", code=ErrorCode.WORKER_UNAVAILABLE)
        err = body.get("error") if isinstance(body.get("error"), dict) else {}
        raise QmtError.from_dict(err or {"code": "INTERNAL", "message": f"HTTP {resp.status_code}"})
