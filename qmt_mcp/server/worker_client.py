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


class WorkerClient:
    def __init__(self, http: httpx.AsyncClient, token: str, timeout_s: float = 40.0) -> None:
        self._http = http
        self._headers = {"Authorization": f"Bearer {token}"}
        self._timeout = timeout_s

    @classmethod
    def for_uds(cls, path: str, token: str, timeout_s: float = 40.0) -> WorkerClient:
        transport = httpx.AsyncHTTPTransport(uds=path)
        return cls(httpx.AsyncClient(transport=transport, base_url="http://worker"), token, timeout_s)

    @classmethod
    def for_url(cls, url: str, token: str, timeout_s: float = 40.0) -> WorkerClient:
        return cls(httpx.AsyncClient(base_url=url.rstrip("/")), token, timeout_s)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(self, name: str, args: dict[str, Any], extra_timeout: float = 0.0) -> dict[str, Any]:
        """The worker's payload; raises QmtError with the worker's code on an error answer."""
        try:
            resp = await self._http.post(
                f"/v1/{name}", json=args, headers=self._headers, timeout=self._timeout + extra_timeout
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
        err = body.get("error") if isinstance(body.get("error"), dict) else {}
        raise QmtError.from_dict(err or {"code": "INTERNAL", "message": f"HTTP {resp.status_code}"})
